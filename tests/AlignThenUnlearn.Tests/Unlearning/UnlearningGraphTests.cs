using AlignThenUnlearn.Models;
using AlignThenUnlearn.Onnx;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Tests.Models;
using AlignThenUnlearn.Tests.Support;
using AlignThenUnlearn.Unlearning;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Tests.Unlearning;

/// <summary>The alignment and unlearning graphs on a tiny random decoder with a linear head (the transformer head plugs in
/// through the same interface): alignment moves only the head and raises the cosine to the references; unlearning moves
/// only the LLM, lowers the cosine to the target, and does nothing at all once every cosine is below tau.</summary>
public class UnlearningGraphTests
{
    sealed class LinearHead(int hidden, int dim) : IPredictionHead
    {
        public IReadOnlyList<ParameterSpec> Parameters { get; } = [new("head.weight", [dim, hidden], DataType.Float)];
        public string Emit(GraphBuilder b, string h, bool training, string? keyMask = null)   // per position: nothing to mask
        {
            b.Input("head.weight", DataType.Float, dim, hidden);
            return b.MatMul(h, b.Transpose("head.weight", 1, 0));
        }
    }

    const int Dim = 6, Layer = 1;
    static readonly DecoderConfig Config = DecoderBuilderTests.Named("llama");
    static readonly long[] Ids = [5, 17, 2, 5, 28, 0, 11, 3, 9, 20, 4, 1];

    static ParameterStore Store(IPredictionHead head, bool headTrainable)
    {
        var store = new ParameterStore(GradCheck.Cpu);
        foreach (var (name, value) in RandomInit.Create(DecoderBuilder.Parameters(Config), seed: 2, std: 0.2, normStd: 0.2))
            store.Add(name, (float[])value.Data, value.Shape, trainable: !headTrainable);
        var random = new Random(4);
        foreach (var p in head.Parameters)
            store.Add(p.Name, Enumerable.Range(0, (int)p.ElementCount).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray(), p.Shape, trainable: headTrainable);
        return store;
    }

    static HostTensor Floats(int n, int seed, params long[] shape) { var r = new Random(seed); return HostTensor.Of(Enumerable.Range(0, n).Select(_ => (float)(r.NextDouble() * 2 - 1)).ToArray(), shape); }

    [Fact]
    public void Alignment_trains_only_the_head_and_raises_the_cosine_to_the_windows()
    {
        var head = new LinearHead(Config.HiddenSize, Dim);
        var graph = UnlearningGraphs.Alignment(Config, Layer, head, Dim);
        Assert.Equal(["head.weight"], graph.Training.Gradients.Keys);   // the LLM gets no backward nodes
        using var store = Store(head, headTrainable: true);
        var llmBefore = store.Read("model.layers.0.mlp.down_proj.weight");
        using var session = new TrainSession(GradCheck.Cpu, graph.Training, store, UnlearningGraphs.Loss, [UnlearningGraphs.MeanCosine]);
        using var optimizer = new Optimizer(store, new AdamWSettings(LearningRate: 0.05, WeightDecay: 0));
        var batch = new Dictionary<string, HostTensor>
        {
            ["input_ids"] = HostTensor.Of(Ids, 2, 6),
            [UnlearningGraphs.WindowEmbeddings] = Floats(2 * 6 * Dim, 7, 2, 6, Dim),
            [UnlearningGraphs.WindowFull] = HostTensor.Of([1f, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 0], 2, 6),
            [UnlearningGraphs.TokenMask] = HostTensor.Of(Enumerable.Repeat(1f, 12).ToArray(), 2, 6),
        };
        var first = session.Run(batch).Loss;
        for (int step = 0; step < 60; step++) { session.Run(batch); optimizer.Step(session.Gradients, 0.05); }
        var last = session.Run(batch);
        Assert.True(last.Loss < first - 0.2, $"alignment loss {first} -> {last.Loss}");
        Assert.Equal(-last.Loss, last.Metrics[UnlearningGraphs.MeanCosine][0], 6);
        Assert.Equal(llmBefore, store.Read("model.layers.0.mlp.down_proj.weight"));
    }

    [Fact]
    public void Unlearning_lowers_the_cosine_to_the_target_and_stops_once_all_are_below_tau()
    {
        var head = new LinearHead(Config.HiddenSize, Dim);
        var graph = UnlearningGraphs.Unlearning(Config, Layer, head, Dim);
        Assert.DoesNotContain("head.weight", graph.Training.Gradients.Keys);
        Assert.Contains("model.embed_tokens.weight", graph.Training.Gradients.Keys);
        Assert.DoesNotContain(graph.Training.Gradients.Keys, k => k.StartsWith("model.layers.1."));   // layers after the head's are never built
        using var store = Store(head, headTrainable: false);
        store.SetTrainable(graph.Training.Gradients.Keys);   // the truncated graph trains the layers it builds
        var headBefore = store.Read("head.weight");
        using var session = new TrainSession(GradCheck.Cpu, graph.Training, store, UnlearningGraphs.Loss, [UnlearningGraphs.MeanCosine]);
        using var optimizer = new Optimizer(store, new SgdSettings(LearningRate: 0.5));
        // The target is the mean prediction direction, so the cosines start high.
        var target = Floats(Dim, 1, Dim);
        Dictionary<string, HostTensor> Batch(double tau) => new()
        {
            ["input_ids"] = HostTensor.Of(Ids, 2, 6),
            [UnlearningGraphs.TokenMask] = HostTensor.Of(Enumerable.Repeat(1f, 12).ToArray(), 2, 6),
            [UnlearningGraphs.TargetEmbedding] = target,
            [UnlearningGraphs.Tau] = HostTensor.Of([(float)tau]),
        };
        var start = session.Run(Batch(-1));
        for (int step = 0; step < 40; step++) { session.Run(Batch(-1)); optimizer.Step(session.Gradients, 0.5); }
        var after = session.Run(Batch(-1));
        Assert.True(after.Metrics[UnlearningGraphs.MeanCosine][0] < start.Metrics[UnlearningGraphs.MeanCosine][0] - 0.1,
            $"mean cosine {start.Metrics[UnlearningGraphs.MeanCosine][0]} -> {after.Metrics[UnlearningGraphs.MeanCosine][0]}");
        Assert.Equal(headBefore, store.Read("head.weight"));

        // With tau above every cosine the margin loss is exactly zero, every gradient is exactly zero, and a step changes nothing.
        var idle = session.Run(Batch(1.0));
        Assert.Equal(0.0, idle.Loss);
        foreach (var (name, grad) in session.Gradients) Assert.All(GradCheck.Cpu.Download<float>(grad), g => Assert.Equal(0f, g));
        var embedBefore = store.Read("model.embed_tokens.weight");
        optimizer.Step(session.Gradients, 0.5);
        Assert.Equal(embedBefore, store.Read("model.embed_tokens.weight"));
    }

    /// <summary>"Stops once below tau" where the loss starts above zero: tau at the starting mean cosine, so the positions
    /// above it push the LLM until every cosine is at or below tau; from then on the loss and every gradient are exactly
    /// zero and a step changes nothing.</summary>
    [Fact]
    public void Unlearning_at_a_tau_with_a_nonzero_loss_stops_moving_the_LLM_once_every_cosine_is_below_it()
    {
        var head = new LinearHead(Config.HiddenSize, Dim);
        var graph = UnlearningGraphs.Unlearning(Config, Layer, head, Dim);
        using var store = Store(head, headTrainable: false);
        store.SetTrainable(graph.Training.Gradients.Keys);
        using var session = new TrainSession(GradCheck.Cpu, graph.Training, store, UnlearningGraphs.Loss, [UnlearningGraphs.MeanCosine]);
        using var optimizer = new Optimizer(store, new SgdSettings(LearningRate: 0.5));
        var target = Floats(Dim, 1, Dim);
        Dictionary<string, HostTensor> Batch(double tau) => new()
        {
            ["input_ids"] = HostTensor.Of(Ids, 2, 6),
            [UnlearningGraphs.TokenMask] = HostTensor.Of(Enumerable.Repeat(1f, 12).ToArray(), 2, 6),
            [UnlearningGraphs.TargetEmbedding] = target,
            [UnlearningGraphs.Tau] = HostTensor.Of([(float)tau]),
        };
        double tau = session.Run(Batch(-1)).Metrics[UnlearningGraphs.MeanCosine][0];
        var first = session.Run(Batch(tau));
        Assert.True(first.Loss > 1e-3, $"the loss at tau {tau} starts at {first.Loss}");
        int steps = 0;
        for (; steps < 300 && session.Run(Batch(tau)).Loss > 0; steps++) optimizer.Step(session.Gradients, 0.5);
        Assert.True(steps < 300, "the loss did not reach zero");
        Assert.True(steps > 0);
        var idle = session.Run(Batch(tau));
        Assert.Equal(0.0, idle.Loss);
        Assert.True(idle.Metrics[UnlearningGraphs.MeanCosine][0] <= tau);
        foreach (var (name, grad) in session.Gradients) Assert.All(GradCheck.Cpu.Download<float>(grad), g => Assert.Equal(0f, g));
        var before = graph.Training.Gradients.Keys.ToDictionary(n => n, store.Read);
        for (int i = 0; i < 3; i++) { session.Run(Batch(tau)); optimizer.Step(session.Gradients, 0.5); }
        foreach (var (name, values) in before) Assert.Equal(values, store.Read(name));
    }
}
