namespace AlignThenUnlearn.Runtime;

/// <summary>What <see cref="ExecutionDevice"/> opens every session with, as plain data: ONNX Runtime's session config
/// entries, the intra-op threads, the CUDA provider's options (null on the CPU) and whether the scatter-add gradients
/// are rewritten. Kept apart from <c>SessionOptions</c> because ONNX Runtime offers no way to read those back, and
/// building CUDA provider options loads the CUDA provider library: tests check these values on machines without a GPU.</summary>
public sealed record SessionSettings(
    IReadOnlyDictionary<string, string> ConfigEntries,
    int IntraOpThreads,
    IReadOnlyDictionary<string, string>? CudaProviderOptions,
    bool RewriteScatterAdd)
{
    /// <summary>Session config entry (ONNX Runtime 1.31 honours it; the C# SessionOptions has no property for it):
    /// reductions, scatters and cuDNN algorithms take their deterministic kernels.</summary>
    public const string DeterministicCompute = "session.use_deterministic_compute";

    /// <summary>Session config entry naming graph rewrites ONNX Runtime must not apply.</summary>
    public const string DisabledOptimizers = "optimization.disable_specified_optimizers";

    /// <summary>CUDA provider option keys (ONNX Runtime's <c>cuda::provider_option_names</c>).</summary>
    public const string CudaDeviceId = "device_id", CudaUseTf32 = "use_tf32", CudaArenaExtendStrategy = "arena_extend_strategy";

    /// <summary>Whether sessions give the same results run to run.</summary>
    public bool Deterministic => ConfigEntries.GetValueOrDefault(DeterministicCompute) == "1";

    /// <summary>Null, or ONNX Runtime profiles every session (benchmarks): each opens PREFIX_TIME.json when it is opened
    /// and writes its events there when it is disposed (<see cref="OnnxRuntimeProfile"/> reads them).</summary>
    public string? ProfilePrefix { get; init; }

    /// <summary>The settings of a device of <paramref name="kind"/>; deterministic unless <paramref name="fastCuda"/> on CUDA
    /// (the CPU ignores it).
    /// <list type="bullet">
    /// <item>Always: EliminateDropout off (that rule deletes every Dropout whose mask output is unused, training_mode or
    /// not, which would silently turn off the dropout of a training graph run forward only).</item>
    /// <item>Deterministic: <see cref="DeterministicCompute"/> = 1 (no atomic block partials in
    /// ReduceSum over leading axes and ReduceSumSquare on CUDA; the CPU's kernels are deterministic anyway, at a fixed
    /// thread count), TF32 off (float32 products as precise as the CPU's), and on CUDA the embedding gradient's
    /// atomic ScatterND rewritten into a one-hot product.</item>
    /// <item>CUDA: the arena grows by what is requested (<c>kSameAsRequested</c>) instead of the next power of two,
    /// so a 40 GB model does not reserve 64 GB.</item>
    /// </list></summary>
    public static SessionSettings For(DeviceKind kind, int threads, bool fastCuda = false)
    {
        bool deterministic = kind == DeviceKind.Cpu || !fastCuda;
        var entries = new Dictionary<string, string> { [DisabledOptimizers] = "EliminateDropout" };
        if (deterministic) entries[DeterministicCompute] = "1";
        Dictionary<string, string>? cuda = kind != DeviceKind.Cuda ? null : new()
        {
            [CudaDeviceId] = "0",
            [CudaUseTf32] = deterministic ? "0" : "1",
            [CudaArenaExtendStrategy] = "kSameAsRequested",
        };
        return new SessionSettings(entries, threads, cuda, RewriteScatterAdd: kind == DeviceKind.Cuda && deterministic);
    }
}
