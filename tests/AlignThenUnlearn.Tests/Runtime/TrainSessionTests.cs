using AlignThenUnlearn.Autodiff;
using AlignThenUnlearn.Onnx;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Tests.Support;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Tests.Runtime;

/// <summary>The train session: gradients on the device, and fused accumulation equal to the sum of separate runs.</summary>
public class TrainSessionTests
{
    /// <summary>loss = sum(tanh(x @ w)) + sum(b * b), with x a batch input and w, b parameters.</summary>
    static GradientGraph Graph()
    {
        var g = new GraphBuilder("toy");
        var x = g.Input("x", DataType.Float, "batch", 3);
        var w = g.Input("w", DataType.Float, 3, 2);
        var b = g.Input("b", DataType.Float, 2);
        var loss = g.Add(g.ReduceSum(g.Tanh(g.MatMul(x, w)), [], keepDims: false), g.ReduceSum(g.Mul(b, b), [], keepDims: false));
        g.Output(loss, DataType.Float);
        return Gradients.Build(g.ToModel(), loss, ["w", "b"]);
    }

    static Dictionary<string, HostTensor> Batch(Random random, int rows) =>
        new() { ["x"] = HostTensor.Of(Enumerable.Range(0, rows * 3).Select(_ => (float)random.NextDouble() - 0.5f).ToArray(), rows, 3) };

    [Fact]
    public void Accumulated_gradients_equal_the_sum_of_each_micro_batch_gradients()
    {
        var device = TestDevice.Current;
        var graph = Graph();
        using var store = new ParameterStore(device);
        store.Add("w", [0.1f, -0.2f, 0.3f, 0.4f, -0.5f, 0.6f], [3, 2], trainable: true);
        store.Add("b", [1.5f, -2f], [2], trainable: true);
        using var session = new TrainSession(device, graph, store, graph.Model.Graph.Output[0].Name, allowAccumulation: true);
        var random = new Random(4);
        var batches = new[] { Batch(random, 2), Batch(random, 3), Batch(random, 1) };

        var separate = batches.Select(batch =>
        {
            session.Run(batch);
            return session.Gradients.ToDictionary(kv => kv.Key, kv => device.Download<float>(kv.Value));
        }).ToList();
        double lossSum = 0;
        for (int k = 0; k < batches.Length; k++) lossSum += session.Run(batches[k], accumulate: k > 0).Loss;

        foreach (var p in new[] { "w", "b" })
        {
            var accumulated = device.Download<float>(session.Gradients[p]);
            var expected = Enumerable.Range(0, accumulated.Length).Select(i => separate.Sum(s => (double)s[p][i])).ToArray();
            for (int i = 0; i < expected.Length; i++) Assert.Equal(expected[i], accumulated[i], 1e-6);
        }
        Assert.Equal([3f, -4f], separate[0]["b"]);   // d sum(b^2) / db = 2b, independent of the batch
    }
}
