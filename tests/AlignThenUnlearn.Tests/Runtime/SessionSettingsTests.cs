using AlignThenUnlearn.Autodiff;
using AlignThenUnlearn.Onnx;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Tests.Support;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Tests.Runtime;

/// <summary>What sessions are opened with (issue 23): deterministic CUDA sessions by default, <c>--fast-cuda</c> as the
/// opt-out, the CPU unchanged. The CUDA values are read from <see cref="SessionSettings"/>, which
/// <see cref="ExecutionDevice.Options"/> applies, because building CUDA provider options needs the CUDA libraries.</summary>
public class SessionSettingsTests
{
    [Fact]
    public void Cuda_sessions_are_deterministic_with_tf32_off_by_default()
    {
        var cuda = SessionSettings.For(DeviceKind.Cuda, threads: 0);
        Assert.True(cuda.Deterministic);
        Assert.Equal("1", cuda.ConfigEntries["session.use_deterministic_compute"]);
        Assert.Equal("EliminateDropout", cuda.ConfigEntries["optimization.disable_specified_optimizers"]);
        Assert.NotNull(cuda.CudaProviderOptions);
        Assert.Equal("0", cuda.CudaProviderOptions["use_tf32"]);
        Assert.Equal("kSameAsRequested", cuda.CudaProviderOptions["arena_extend_strategy"]);
        Assert.Equal("0", cuda.CudaProviderOptions["device_id"]);
        Assert.True(cuda.RewriteScatterAdd);
    }

    [Fact]
    public void Fast_cuda_allows_tf32_and_the_atomic_kernels()
    {
        var fast = SessionSettings.For(DeviceKind.Cuda, threads: 0, fastCuda: true);
        Assert.False(fast.Deterministic);
        Assert.False(fast.ConfigEntries.ContainsKey("session.use_deterministic_compute"));
        Assert.Equal("1", fast.CudaProviderOptions!["use_tf32"]);
        Assert.Equal("kSameAsRequested", fast.CudaProviderOptions["arena_extend_strategy"]);
        Assert.False(fast.RewriteScatterAdd);
        Assert.Equal("EliminateDropout", fast.ConfigEntries["optimization.disable_specified_optimizers"]);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void The_cpu_is_deterministic_whatever_fast_cuda_says(bool fastCuda)
    {
        using var device = ExecutionDevice.Create("cpu", threads: 1, fastCuda: fastCuda);
        Assert.True(device.Deterministic);
        Assert.Equal(SessionSettings.For(DeviceKind.Cpu, 1).ConfigEntries, device.Settings.ConfigEntries);   // what Options() applies
        Assert.Equal("1", device.Settings.ConfigEntries["session.use_deterministic_compute"]);
        Assert.Null(device.Settings.CudaProviderOptions);
        Assert.False(device.Settings.RewriteScatterAdd);
        Assert.Equal(1, device.Settings.IntraOpThreads);
        Assert.Equal("CPU", device.Description);
    }

    [Fact]
    public void Cpu_sessions_keep_the_scatter_add_and_repeat_their_results_bit_for_bit()
    {
        // An embedding gradient with repeated ids and a ReduceSum over leading axes, opened twice with the deterministic
        // settings: ONNX Runtime accepts the entries, the graph runs as built, and both sessions give identical bits.
        var b = new GraphBuilder("embedding");
        var table = b.Input("table", DataType.Float, 11, 4);
        var ids = b.Input("ids", DataType.Int64, 3, 5);
        var rows = b.Gather(table, ids);
        var loss = b.ReduceSum(b.Mul(b.ReduceSum(b.Tanh(rows), [0], keepDims: false), b.ReduceSum(rows, [0, 1], keepDims: false)), [], keepDims: false);
        b.Output(loss, DataType.Float);
        var grads = Gradients.Build(b.ToModel(), loss, [table]);
        var device = GradCheck.Cpu;
        Assert.Same(grads.Model, device.ForThisDevice(grads.Model));
        var random = new Random(2);
        var feeds = new Dictionary<string, HostTensor>
        {
            ["table"] = HostTensor.Of(Enumerable.Range(0, 44).Select(_ => (float)random.NextDouble() - 0.5f).ToArray(), 11, 4),
            ["ids"] = HostTensor.Of(Enumerable.Range(0, 15).Select(i => (long)(i * 7 % 4)).ToArray(), 3, 5),
        };
        var first = device.Run(grads.Model, feeds)[grads.Gradients[table]].Floats;
        var second = device.Run(grads.Model, feeds)[grads.Gradients[table]].Floats;
        Assert.Equal(first.Select(BitConverter.SingleToInt32Bits), second.Select(BitConverter.SingleToInt32Bits));
        Assert.Contains(first, v => v != 0);
    }
}
