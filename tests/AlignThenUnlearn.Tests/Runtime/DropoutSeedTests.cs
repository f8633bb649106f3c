using AlignThenUnlearn.Autodiff;
using AlignThenUnlearn.Onnx;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Tests.Support;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Tests.Runtime;

/// <summary>TrainGraphs.WithDropoutSeed: a fresh session of the same seed draws the same masks, another seed other masks,
/// and the graph it was given keeps its own seeds.</summary>
public sealed class DropoutSeedTests
{
    static GradientGraph Graph()
    {
        var b = new GraphBuilder("dropout");
        var x = b.Input("x", DataType.Float, 4096);
        var ratio = b.Initializer(Tensors.FromFloat("ratio", [0.5f]));
        var training = b.Initializer(Tensors.FromBool("training", [true]));
        var y = b.Node("Dropout", [x, ratio, training], 1, [Attr.Int("seed", 7)])[0];
        var loss = b.Node("ReduceSum", [y], 1, [Attr.Int("keepdims", 0)], outputNames: ["loss"])[0];
        b.Output(loss, DataType.Float);
        b.Node("Identity", [y], 1, outputNames: ["y"]);
        b.Output("y", DataType.Float, 4096);
        return Gradients.Build(b.ToModel(), loss, ["x"]);
    }

    static float[] Mask(GradientGraph graph)
    {
        using var session = GradCheck.Cpu.Open(graph.Model);
        var outputs = ExecutionDevice.Run(session, new Dictionary<string, HostTensor> { ["x"] = HostTensor.Of(Enumerable.Repeat(1f, 4096).ToArray(), 4096) });
        return outputs["y"].Floats;
    }

    [Fact]
    public void Same_seed_same_masks_in_a_new_session_other_seed_other_masks()
    {
        var graph = Graph();
        var a = Mask(TrainGraphs.WithDropoutSeed(graph, 1));
        Assert.Equal(a, Mask(TrainGraphs.WithDropoutSeed(graph, 1)));
        var c = Mask(TrainGraphs.WithDropoutSeed(graph, 2));
        Assert.NotEqual(a, c);
        Assert.InRange(a.Count(v => v == 0), 1700, 2400);   // about half dropped: the ratio is kept
        Assert.Equal(7, graph.Model.Graph.Node.Single(n => n.OpType == "Dropout").Attribute.Single(at => at.Name == "seed").I);
    }
}
