using AlignThenUnlearn.Onnx;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Tests.Support;
using Microsoft.ML.OnnxRuntime;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Tests.Runtime;

/// <summary>How this build uses ONNX Runtime: one native library, the Gpu package's 1.31, and sessions that keep a
/// training graph's Dropout.</summary>
public class OnnxRuntimeSetupTests
{
    [Fact]
    public void The_only_native_library_is_the_gpu_packages_1_31()
    {
        // Only the Gpu build lists the CUDA provider among those compiled in (it need not load here); the CPU package's
        // library, which the MiniLM and GenAI packages would bring, lists only the CPU provider.
        Assert.Equal("1.31.0", OrtEnv.Instance().GetVersionString());
        Assert.Contains("CUDAExecutionProvider", OrtEnv.Instance().GetAvailableProviders());
        if (!OperatingSystem.IsLinux()) return;
        var libraries = Directory.GetFiles(AppContext.BaseDirectory, "libonnxruntime.so*", SearchOption.AllDirectories)
            .Where(p => !p.Contains("linux-arm64", StringComparison.Ordinal)).ToList();
        var library = Assert.Single(libraries);
        Assert.True(File.Exists(Path.Combine(Path.GetDirectoryName(library)!, "libonnxruntime_providers_cuda.so")), $"no CUDA provider beside {library}");
    }

    [Fact]
    public void A_training_mode_dropout_whose_mask_is_unused_still_drops()
    {
        // ONNX Runtime's EliminateDropout rule would remove this node (its mask output is unused); the device's session
        // options disable that rule, so half of the ones come out as 0 and the rest as 2.
        var b = new GraphBuilder("dropout");
        var x = b.Input("x", DataType.Float, 1000);
        var ratio = b.Input("ratio", DataType.Float);
        var dropped = b.Node("Dropout", [b.Relu(x), ratio, b.Initializer(Tensors.FromBool("training", [true]))], 1, [Attr.Int("seed", 7)])[0];
        b.Output(b.Relu(dropped), DataType.Float, 1000);
        var y = GradCheck.Cpu.Run(b.ToModel(), new Dictionary<string, HostTensor> { ["x"] = HostTensor.Of(Enumerable.Repeat(1f, 1000).ToArray(), 1000), ["ratio"] = HostTensor.Of([0.5f]) }).Values.Single().Floats;
        Assert.All(y, v => Assert.True(v is 0f or 2f, $"{v}"));
        Assert.InRange(y.Count(v => v == 0f), 400, 600);
    }
}
