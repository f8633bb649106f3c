using AlignThenUnlearn.Autodiff;
using AlignThenUnlearn.Onnx;
using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Onnx;

namespace AlignThenUnlearn.Runtime;

public enum DeviceKind { Cpu, Cuda }

/// <summary>Writes the values of a tensor (see <see cref="ExecutionDevice.Fill"/>).</summary>
public delegate void SpanFiller<T>(Span<T> values);

/// <summary>Reads the values of a tensor (see <see cref="ExecutionDevice.Read"/>).</summary>
public delegate void SpanReader<T>(ReadOnlySpan<T> values);

/// <summary>The one place that knows about execution providers: it creates sessions for the chosen
/// device with the highest graph optimisation level, and moves tensors in and out of them.</summary>
public sealed class ExecutionDevice : IDisposable
{
    public DeviceKind Kind { get; }
    public int Threads { get; }
    /// <summary>Whether sessions give the same results run to run (see <see cref="SessionSettings"/>): always on the CPU;
    /// on CUDA unless created with <c>fastCuda</c>.</summary>
    public bool Deterministic => Settings.Deterministic;
    public string Description { get; }
    /// <summary>What every session of this device is opened with.</summary>
    public SessionSettings Settings { get; }

    ExecutionDevice(DeviceKind kind, int threads, bool fastCuda, string? profilePrefix)
    {
        (Kind, Threads) = (kind, threads);
        Settings = SessionSettings.For(kind, threads, fastCuda) with { ProfilePrefix = profilePrefix };
        Description = kind == DeviceKind.Cpu ? "CPU" : Deterministic ? "CUDA:0 (deterministic, TF32 off)" : "CUDA:0 (--fast-cuda: TF32, non-deterministic kernels)";
    }

    /// <summary>Parses <c>cpu</c>, <c>cuda</c> or <c>auto</c>; <paramref name="threads"/> is 0 (the runtime's default) up to
    /// the number of logical processors. <c>auto</c> falls back to the CPU and
    /// reports why through <paramref name="notice"/>; <c>cuda</c> fails if CUDA cannot be loaded.
    /// <paramref name="fastCuda"/> lets CUDA sessions use TF32 and ONNX Runtime's non-deterministic kernels (atomic
    /// reductions, the scatter-add embedding gradient); it changes nothing on the CPU. With <paramref name="profilePrefix"/>
    /// every session it opens writes ONNX Runtime's profile (<see cref="SessionSettings.ProfilePrefix"/>).</summary>
    public static ExecutionDevice Create(string device = "cpu", int threads = 0, Action<string>? notice = null, bool fastCuda = false, string? profilePrefix = null)
    {
        // More intra-op threads than logical processors only costs memory (ONNX Runtime creates every one of them).
        if (threads < 0 || threads > Environment.ProcessorCount)
            throw new ArgumentException($"--threads {threads}: expected 0 (ONNX Runtime's default) to {Environment.ProcessorCount} (the logical processors of this machine)");
        switch (device.ToLowerInvariant())
        {
            case "cpu": return new ExecutionDevice(DeviceKind.Cpu, threads, fastCuda, profilePrefix);
            case "cuda":
                if (CudaProblem() is { } why) throw new InvalidOperationException($"--device cuda: the CUDA execution provider cannot be used: {why}");
                return new ExecutionDevice(DeviceKind.Cuda, threads, fastCuda, profilePrefix);
            case "auto":
                if (CudaProblem() is { } reason)
                {
                    notice?.Invoke($"device auto: using the CPU ({reason})");
                    return new ExecutionDevice(DeviceKind.Cpu, threads, fastCuda, profilePrefix);
                }
                return new ExecutionDevice(DeviceKind.Cuda, threads, fastCuda, profilePrefix);
            default: throw new ArgumentException($"unknown device '{device}': expected cpu, cuda or auto");
        }
    }

    /// <summary>Why CUDA cannot be used here, or null. The CUDA 13 and cuDNN 9 libraries are probed first
    /// so the reason names the missing library instead of ONNX Runtime's generic load failure.</summary>
    static string? CudaProblem()
    {
        foreach (var lib in new[] { "libcudart.so.13", "libcublasLt.so.13", "libcublas.so.13", "libcudnn.so.9" })
        {
            if (!System.Runtime.InteropServices.NativeLibrary.TryLoad(lib, out var handle))
                return $"{lib} is not installed (the CUDA provider needs CUDA 13 and cuDNN 9)";
            System.Runtime.InteropServices.NativeLibrary.Free(handle);
        }
        var env = OrtEnv.Instance();
        var level = env.EnvLogLevel;
        env.EnvLogLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_FATAL;   // the reason is reported once, by the caller
        try
        {
            using var options = new SessionOptions();
            options.AppendExecutionProvider_CUDA(0);
            return null;
        }
        catch (Exception e) { return e.Message.Split('\n')[0]; }
        finally { env.EnvLogLevel = level; }
    }

    // ---- device memory ----
    readonly Dictionary<TensorElementType, InferenceSession> _copySessions = [];
    OrtAllocator? _cudaAllocator;
    OrtMemoryInfo? _cudaMemory;

    /// <summary>Where this device's tensors live: host memory for the CPU, GPU memory for CUDA. Binding a session's
    /// outputs here (<see cref="OrtIoBinding.BindOutputToDevice"/>) keeps them where the next run reads them.</summary>
    public OrtMemoryInfo MemoryInfo => Kind == DeviceKind.Cpu
        ? OrtMemoryInfo.DefaultInstance
        : _cudaMemory ??= new OrtMemoryInfo(OrtMemoryInfo.allocatorCUDA, OrtAllocatorType.DeviceAllocator, 0, OrtMemType.Default);

    /// <summary>Host memory for outputs that come back to the host (a loss, metrics, a norm) whatever the device: one
    /// instance for every binding, instead of a native object made per step and left to the finalizer.</summary>
    public static OrtMemoryInfo HostOutputs { get; } = new(OrtMemoryInfo.allocatorCPU, OrtAllocatorType.DeviceAllocator, 0, OrtMemType.Default);

    /// <summary>A tensor of the given type and shape in the device's memory (contents undefined).</summary>
    public DeviceTensor Allocate(TensorElementType type, long[] shape)
    {
        var allocator = Kind == DeviceKind.Cpu ? OrtAllocator.DefaultInstance : CudaAllocator(type);
        return new DeviceTensor(OrtValue.CreateAllocatedTensorValue(allocator, type, shape), (long[])shape.Clone(), type);
    }

    public DeviceTensor Upload<T>(ReadOnlySpan<T> data, long[] shape) where T : unmanaged
    {
        var tensor = Allocate(ElementTypeOf<T>(), shape);
        CopyInto(tensor, data);
        return tensor;
    }

    /// <summary>Overwrites a device tensor with host data of the same element count.</summary>
    public void CopyInto<T>(DeviceTensor destination, ReadOnlySpan<T> data) where T : unmanaged
    {
        if (data.Length != destination.ElementCount)
            throw new ArgumentException($"copying {data.Length} values into a tensor of shape [{string.Join(",", destination.Shape)}]");
        if (Kind == DeviceKind.Cpu) { data.CopyTo(destination.Value.GetTensorMutableDataAsSpan<T>()); return; }
        CopyFromHost(destination, data.ToArray());
    }

    /// <summary>Lets <paramref name="fill"/> write every value of a tensor: straight into its memory on the CPU,
    /// into one host staging array that is then copied on CUDA (so a reader converting from a file needs no
    /// buffer of its own).</summary>
    public void Fill<T>(DeviceTensor destination, SpanFiller<T> fill) where T : unmanaged
    {
        CheckElementType<T>(destination);
        if (Kind == DeviceKind.Cpu) { fill(destination.Value.GetTensorMutableDataAsSpan<T>()); return; }
        var staging = new T[destination.ElementCount];
        fill(staging);
        CopyFromHost(destination, staging);
    }

    /// <summary>Lets <paramref name="read"/> see every value of a tensor: its memory on the CPU, a downloaded copy on CUDA.</summary>
    public void Read<T>(DeviceTensor source, SpanReader<T> read) where T : unmanaged
    {
        CheckElementType<T>(source);
        if (Kind == DeviceKind.Cpu) read(source.Value.GetTensorDataAsSpan<T>());
        else read(Download<T>(source));
    }

    void CopyFromHost<T>(DeviceTensor destination, T[] data) where T : unmanaged
    {
        using var host = OrtValue.CreateTensorValueFromMemory(data, destination.Shape);
        DeviceCopy(destination.ElementType, host, destination.Value);
    }

    static void CheckElementType<T>(DeviceTensor tensor) where T : unmanaged
    {
        if (ElementTypeOf<T>() != tensor.ElementType)
            throw new ArgumentException($"a {tensor} tensor accessed as {typeof(T).Name} values");
    }

    public T[] Download<T>(DeviceTensor source) where T : unmanaged
    {
        if (Kind == DeviceKind.Cpu) return source.Value.GetTensorDataAsSpan<T>().ToArray();
        var result = new T[source.ElementCount];
        using var host = OrtValue.CreateTensorValueFromMemory(result, source.Shape);
        DeviceCopy(source.ElementType, source.Value, host);
        return result;
    }

    public static TensorElementType ElementTypeOf<T>() => default(T) switch
    {
        float => TensorElementType.Float,
        double => TensorElementType.Double,
        long => TensorElementType.Int64,
        int => TensorElementType.Int32,
        bool => TensorElementType.Bool,
        Half => TensorElementType.Float16,
        _ => throw new NotSupportedException($"element type {typeof(T).Name}"),
    };

    /// <summary>Copies between host and GPU memory through an Identity session on the CUDA provider:
    /// ONNX Runtime inserts the transfers, and the output is written into the bound destination.</summary>
    void DeviceCopy(TensorElementType type, OrtValue from, OrtValue to)
    {
        var session = CopySession(type);
        using var binding = session.CreateIoBinding();
        binding.BindInput("x", from);
        binding.BindOutput("y", to);
        using var run = new RunOptions();
        session.RunWithBinding(run, binding);
        binding.SynchronizeBoundOutputs();
    }

    InferenceSession CopySession(TensorElementType type)
    {
        if (_copySessions.TryGetValue(type, out var session)) return session;
        var b = new GraphBuilder("device_copy");
        var onnxType = (global::Onnx.TensorProto.Types.DataType)(int)type;   // ONNX and ORT share the element type numbering
        b.Graph.Input.Add(GraphBuilder.ValueInfo("x", onnxType, null));
        b.Node("Identity", ["x"], 1, outputNames: ["y"]);
        b.Graph.Output.Add(GraphBuilder.ValueInfo("y", onnxType, null));
        using var options = Options();
        options.GraphOptimizationLevel = GraphOptimizationLevel.ORT_DISABLE_ALL;
        options.EnableProfiling = false;   // a copy is not what a profile is asked for
        session = new InferenceSession(b.ToModel().ToByteArray(), options);
        _copySessions[type] = session;
        return session;
    }

    OrtAllocator CudaAllocator(TensorElementType type)
    {
        if (_cudaAllocator is not null) return _cudaAllocator;
        var memory = new OrtMemoryInfo(OrtMemoryInfo.allocatorCUDA, OrtAllocatorType.DeviceAllocator, 0, OrtMemType.Default);
        return _cudaAllocator = new OrtAllocator(CopySession(type), memory);
    }

    public void Dispose()
    {
        _cudaAllocator?.Dispose();
        _cudaMemory?.Dispose();
        foreach (var s in _copySessions.Values) s.Dispose();
        _copySessions.Clear();
    }

    /// <summary>ONNX Runtime's session options for <see cref="Settings"/>.</summary>
    public SessionOptions Options(string? optimizedModelPath = null)
    {
        var options = new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL };
        foreach (var (key, value) in Settings.ConfigEntries) options.AddSessionConfigEntry(key, value);
        // With memory patterns ONNX Runtime allocates a step's intermediates one by one in its first run and as one
        // block from the second on; the arena keeps the first run's chunks, so the block comes on top of them and a
        // training step holds its activations twice (measured on the CPU: 1,155 MiB instead of 679 MiB for a
        // phi3-shaped unlearning step, issue 23). Without them the arena reuses its chunks.
        options.EnableMemoryPattern = false;
        // ONNX Runtime warns at every load about inputs that carry a default (logits_from, batch_total.*: intended, so
        // that callers may leave them out). On the CPU its warnings say nothing else an operator needs; on CUDA they are
        // kept, since they also report nodes that fall back to the CPU.
        if (Settings.CudaProviderOptions is null) options.LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR;
        if (Settings.IntraOpThreads > 0) { options.IntraOpNumThreads = Settings.IntraOpThreads; options.InterOpNumThreads = 1; }
        if (optimizedModelPath is not null) options.OptimizedModelFilePath = optimizedModelPath;
        if (Settings.ProfilePrefix is { } prefix)
        {
            options.ProfileOutputPathPrefix = prefix;   // read when profiling is switched on, so set first
            options.EnableProfiling = true;
        }
        if (Settings.CudaProviderOptions is { } cudaSettings)
        {
            // The provider copies these values when it is appended (ONNX Runtime's provider bridge parses them, which
            // loads the CUDA provider library: that is why tests read Settings instead).
            using var cuda = new OrtCUDAProviderOptions();
            cuda.UpdateOptions(new Dictionary<string, string>(cudaSettings));
            options.AppendExecutionProvider_CUDA(cuda);
        }
        return options;
    }

    /// <summary>Opens an in-memory model. On a deterministic CUDA device the scatter-add embedding gradients
    /// (<see cref="RowScatterAdd"/>) are first rewritten into their one-hot product form.</summary>
    public InferenceSession Open(ModelProto model, string? optimizedModelPath = null)
    {
        using var options = Options(optimizedModelPath);
        return new InferenceSession(ForThisDevice(model).ToByteArray(), options);
    }

    /// <summary>The model as this device runs it: unchanged, except that a deterministic CUDA device replaces the
    /// atomic scatter-add of row gradients by a one-hot matrix product (same values; ONNX Runtime's CUDA ScatterND
    /// with reduction add sums colliding rows in whatever order its threads arrive).</summary>
    public ModelProto ForThisDevice(ModelProto model) =>
        Settings.RewriteScatterAdd && RowScatterAdd.Count(model) > 0 ? RowScatterAdd.Rewrite(model) : model;

    /// <summary>Opens a model file, letting ONNX Runtime read its external data from beside it. The file is
    /// parsed and every external-data reference checked first (ModelFile.Load without the data), so a
    /// corrupt file or a location outside the model's folder fails with our message before ONNX Runtime
    /// reads anything.</summary>
    public InferenceSession Open(string path, string? optimizedModelPath = null)
    {
        ModelFile.Load(path, loadExternalData: false);
        using var options = Options(optimizedModelPath);
        return new InferenceSession(Path.GetFullPath(path), options);
    }

    /// <summary>Opens a model held in memory whose external data files lie in <paramref name="externalDataFolder"/>
    /// (ONNX Runtime resolves every <c>location</c> there, and refuses one that leaves that folder).</summary>
    public InferenceSession OpenWithExternalData(ModelProto model, string externalDataFolder)
    {
        using var options = Options();
        options.AddSessionConfigEntry("session.model_external_initializers_file_folder_path", Path.GetFullPath(externalDataFolder));
        return new InferenceSession(ForThisDevice(model).ToByteArray(), options);
    }

    /// <summary>Runs a session on host tensors and returns the requested outputs (all by default).</summary>
    public static Dictionary<string, HostTensor> Run(InferenceSession session, IReadOnlyDictionary<string, HostTensor> inputs, IEnumerable<string>? outputs = null)
    {
        var names = (outputs ?? session.OutputMetadata.Keys).ToList();
        var values = new List<OrtValue>();
        try
        {
            foreach (var (name, tensor) in inputs)
            {
                try { values.Add(HostValues.ToOrtValue(tensor)); }
                catch (NotSupportedException e) { throw new NotSupportedException($"input '{name}': {e.Message}", e); }
            }
            using var run = new RunOptions();
            using var results = session.Run(run, inputs.Keys.ToList(), values, names);
            return names.Zip(results).ToDictionary(p => p.First, p => HostValues.ToHostTensor(p.Second));
        }
        finally { foreach (var v in values) v.Dispose(); }
    }

    /// <summary>Opens, runs and closes a session in one call (tests and one-off graphs).</summary>
    public Dictionary<string, HostTensor> Run(ModelProto model, IReadOnlyDictionary<string, HostTensor> inputs, IEnumerable<string>? outputs = null)
    {
        using var session = Open(model);
        return Run(session, inputs, outputs);
    }
}
