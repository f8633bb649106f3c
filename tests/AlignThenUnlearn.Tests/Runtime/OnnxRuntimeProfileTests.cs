using AlignThenUnlearn.Onnx;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Tests.Support;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Tests.Runtime;

/// <summary>ONNX Runtime's profile read back by op type (issue 27's `steps` benchmark): a hand-written profile whose
/// aggregates are computed by hand below, and a real one written by a session of a device opened with a profile prefix.</summary>
public sealed class OnnxRuntimeProfileTests : IDisposable
{
    readonly TempFolder _temp = new();
    public void Dispose() => _temp.Dispose();

    static string Run(long ts, long dur) => $$$"""{"cat" : "Session","pid" :1,"tid" :1,"dur" :{{{dur}}},"ts" :{{{ts}}},"ph" : "X","name" :"model_run","args" : {}}""";

    static string Kernel(string node, string op, long ts, long dur) =>
        $$$"""{"cat" : "Node","pid" :1,"tid" :1,"dur" :{{{dur}}},"ts" :{{{ts}}},"ph" : "X","name" :"{{{node}}}_kernel_time","args" : {"op_name" : "{{{op}}}","provider" : "CPUExecutionProvider"}}""";

    static string Fence(string node, string op, long ts) =>
        $$$"""{"cat" : "Node","pid" :1,"tid" :1,"dur" :0,"ts" :{{{ts}}},"ph" : "X","name" :"{{{node}}}_fence_before","args" : {"op_name" : "{{{op}}}"}}""";

    /// <summary>Three runs of a graph of two MatMuls and an Add; the first (warm-up) is slow and is skipped. The events
    /// are out of order, as ONNX Runtime records them by end time before sorting.</summary>
    static readonly string Profile = "[\n" + string.Join(",\n",
        """{"cat" : "Session","pid" :1,"tid" :1,"dur" :900,"ts" :0,"ph" : "X","name" :"session_initialization","args" : {}}""",
        Run(1000, 5000), Kernel("mm1", "MatMul", 1100, 2000), Kernel("mm2", "MatMul", 3200, 1500), Kernel("add", "Add", 4800, 1000),
        Kernel("mm1", "MatMul", 10100, 300), Fence("mm1", "MatMul", 10090), Kernel("mm2", "MatMul", 10450, 200), Kernel("add", "Add", 10700, 100),
        Run(10000, 1000),
        Run(20000, 1200), Kernel("mm1", "MatMul", 20100, 500), Kernel("mm2", "MatMul", 20650, 400), Kernel("add", "Add", 21100, 60),
        """{"cat" : "Session","pid" :1,"tid" :1,"dur" :950,"ts" :20120,"ph" : "X","name" :"SequentialExecutor::Execute","args" : {}}""") + "\n]\n";

    [Fact]
    public void Runs_after_the_skipped_ones_are_aggregated_by_op_type_slowest_first()
    {
        var profile = OnnxRuntimeProfile.Parse(Profile, skipRuns: 1);
        Assert.Equal(2, profile.Runs);
        // Runs 2 and 3: 1000 and 1200 us; their kernels: MatMul 300+200 and 500+400 us, Add 100 and 60 us.
        Assert.Equal(1.1, profile.RunMilliseconds, 12);
        Assert.Equal((300 + 200 + 100 + 500 + 400 + 60) / 2.0 / 1000, profile.KernelMilliseconds, 12);
        Assert.Equal(new[] { "MatMul", "Add" }, profile.ByOpType.Select(o => o.OpType));
        var matMul = profile.ByOpType[0];
        Assert.Equal(1400 / 2.0 / 1000, matMul.MillisecondsPerRun, 12);
        Assert.Equal(1400 / 2200.0, matMul.ShareOfRun, 12);
        Assert.Equal(2, matMul.NodesPerRun);
        Assert.Equal(160 / 2.0 / 1000, profile.ByOpType[1].MillisecondsPerRun, 12);
        Assert.Equal(1, profile.ByOpType[1].NodesPerRun);
        Assert.Equal(3, profile.NodesPerRun);

        var all = OnnxRuntimeProfile.Parse(Profile);
        Assert.Equal(3, all.Runs);
        Assert.Equal((5000 + 1000 + 1200) / 3.0 / 1000, all.RunMilliseconds, 12);
        Assert.Equal((3500 + 1400) / 3.0 / 1000, all.ByOpType[0].MillisecondsPerRun, 12);
    }

    [Fact]
    public void A_profile_that_cannot_be_read_is_refused_with_its_name()
    {
        var tooShort = Assert.Throws<InvalidDataException>(() => OnnxRuntimeProfile.Parse(Profile, skipRuns: 3, source: "p.json"));
        Assert.Contains("p.json holds 3 runs", tooShort.Message);
        Assert.Contains("not JSON", Assert.Throws<InvalidDataException>(() => OnnxRuntimeProfile.Parse("[{", source: "p.json")).Message);
        Assert.Contains("found a JSON Object", Assert.Throws<InvalidDataException>(() => OnnxRuntimeProfile.Parse("{}", source: "p.json")).Message);
        var noOp = """[{"cat" : "Session","dur" :10,"ts" :0,"name" :"model_run"},{"cat" : "Node","dur" :5,"ts" :1,"name" :"x_kernel_time","args" : {}}]""";
        Assert.Contains("event 1: kernel event 'x_kernel_time' has no args.op_name", Assert.Throws<InvalidDataException>(() => OnnxRuntimeProfile.Parse(noOp, source: "p.json")).Message);
    }

    [Fact]
    public void A_device_with_a_profile_prefix_has_each_session_write_its_profile()
    {
        Assert.Null(SessionSettings.For(DeviceKind.Cpu, 1).ProfilePrefix);
        var prefix = _temp.File("matmul");
        using var device = ExecutionDevice.Create("cpu", threads: 1, profilePrefix: prefix);
        Assert.Equal(prefix, device.Settings.ProfilePrefix);
        var b = new GraphBuilder("profiled");
        var y = b.Relu(b.MatMul(b.Input("a", DataType.Float, 2, 3), b.Input("b", DataType.Float, 3, 2)));
        b.Output(y, DataType.Float, 2, 2);
        var feeds = new Dictionary<string, HostTensor>
        {
            ["a"] = HostTensor.Of(new float[] { 1, -2, 3, 4, 5, -6 }, 2, 3),
            ["b"] = HostTensor.Of(new float[] { 1, 0, 0, 1, 1, 1 }, 3, 2),
        };
        using (var session = device.Open(b.ToModel()))
        {
            var first = ExecutionDevice.Run(session, feeds);
            Assert.Equal(new float[] { 4, 1, 0, 0 }, first[y].Floats);   // relu([1+3, -2+3; 4-6, 5-6])
            for (int i = 0; i < 2; i++) ExecutionDevice.Run(session, feeds);
        }
        var file = Assert.Single(Directory.GetFiles(_temp.Path, "matmul_*.json"));
        var profile = OnnxRuntimeProfile.Read(file, skipRuns: 1);
        Assert.Equal(2, profile.Runs);
        Assert.Equal(new[] { "MatMul", "Relu" }, profile.ByOpType.Select(o => o.OpType).Order());
        Assert.All(profile.ByOpType, o => Assert.Equal(1, o.NodesPerRun));
        Assert.InRange(profile.KernelMilliseconds, 0, profile.RunMilliseconds);
    }
}
