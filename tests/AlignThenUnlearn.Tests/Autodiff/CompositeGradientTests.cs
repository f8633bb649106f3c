using AlignThenUnlearn.Autodiff;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Onnx;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Tests.Support;
using AlignThenUnlearn.Unlearning;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Tests.Autodiff;

/// <summary>End-to-end gradients of composite graphs against central finite differences in double precision
/// on the CPU execution provider (issue 2): an MLP with a cosine-distance loss, and one decoder layer of each
/// family with the margin loss of Align-then-Unlearn.</summary>
public class CompositeGradientTests
{
    [Fact]
    public void Two_layer_mlp_with_cosine_distance_loss_matches_finite_differences()
    {
        const int batch = 3, inputs = 4, hidden = 5, outputs = 3;
        var random = new Random(11);
        var b = new GraphBuilder("mlp");
        var x = b.Input("x", DataType.Double, "batch", inputs);
        var w1 = b.Input("w1", DataType.Double, inputs, hidden);
        var b1 = b.Input("b1", DataType.Double, hidden);
        var w2 = b.Input("w2", DataType.Double, hidden, outputs);
        var b2 = b.Input("b2", DataType.Double, outputs);
        var t = b.Input("t", DataType.Double, "batch", outputs);
        var p = b.Add(b.MatMul(b.Tanh(b.Add(b.MatMul(x, w1), b1)), w2), b2);
        var loss = b.ReduceMean(Losses.CosineDistance(b, p, t), [], keepDims: false);
        b.Output(loss, DataType.Double);

        HostTensor Rand(params long[] shape) => HostTensor.Of(Normal(random, shape.Aggregate(1L, (a, d) => a * d), 1.0), shape);
        var feeds = new Dictionary<string, HostTensor>
        {
            ["x"] = Rand(batch, inputs), ["w1"] = Rand(inputs, hidden), ["b1"] = Rand(hidden),
            ["w2"] = Rand(hidden, outputs), ["b2"] = Rand(outputs), ["t"] = Rand(batch, outputs),
        };
        GradCheck.Check(b.ToModel(), loss, feeds, ["w1", "b1", "w2", "b2", "x"]);
    }

    [Theory]
    [InlineData(ModelFamily.Phi3)]    // fused qkv_proj and gate_up_proj
    [InlineData(ModelFamily.Llama)]   // grouped KV heads
    [InlineData(ModelFamily.Qwen2)]   // q/k/v biases
    public void One_decoder_layer_with_margin_loss_matches_finite_differences(ModelFamily family)
    {
        var config = TinyConfig(family);
        var decoder = DecoderBuilder.Build(config, DecoderGraphOptions.UpToHiddenState(1, DataType.Double));
        var feeds = Bind(decoder, seed: 5);
        var hidden = GradCheck.Cpu.Run(decoder.Model, feeds)[decoder.HiddenStates[1]].Doubles;

        // Choose tau in the widest gap between the sorted cosines, away from both ends, so the hinge is
        // active at some positions and not at others, and no finite-difference step crosses its kink.
        var random = new Random(6);
        var target = Normal(random, config.HiddenSize, 1.0);
        var cosines = Cosines(hidden, target);
        var sorted = cosines.Order().ToArray();
        int gap = Enumerable.Range(1, sorted.Length - 3).MaxBy(i => sorted[i + 1] - sorted[i]);
        double tau = (sorted[gap] + sorted[gap + 1]) / 2;
        Assert.True(cosines.All(c => Math.Abs(c - tau) > 1e-3), "tau lies too close to a cosine");

        var model = decoder.Model.Clone();
        var b = new GraphBuilder(model.Graph);
        var t = b.Input("target", DataType.Double, config.HiddenSize);
        var tauInput = b.Input("tau", DataType.Double);
        var loss = Losses.MarginLoss(b, decoder.HiddenStates[1], t, tauInput);
        b.Output(loss, DataType.Double);
        feeds["target"] = HostTensor.Of(target, config.HiddenSize);
        feeds["tau"] = HostTensor.Of(new[] { tau });

        // The loss value itself, against the hinge computed here from the hidden states.
        double expected = cosines.Average(c => Math.Max(0, c - tau));
        Assert.Equal(expected, GradCheck.Cpu.Run(model, feeds, [loss])[loss].Doubles[0], 12);

        GradCheck.Check(model, loss, feeds, decoder.Parameters.Select(p => p.Name));
    }

    [Fact]
    public void Logits_with_tied_embeddings_match_finite_differences()
    {
        // model.embed_tokens.weight feeds the embedding Gather and lm_head: both contributions must add up.
        var config = TinyConfig(ModelFamily.Llama) with { TieWordEmbeddings = true };
        var decoder = DecoderBuilder.Build(config, new DecoderGraphOptions { ElementType = DataType.Double });
        Assert.DoesNotContain(decoder.Parameters, p => p.Name == "lm_head.weight");
        var feeds = Bind(decoder, seed: 8);
        var model = decoder.Model.Clone();
        var b = new GraphBuilder(model.Graph);
        var probe = b.Input("probe", DataType.Double, 2, 5, config.VocabSize);
        var loss = b.ReduceSum(b.Mul(decoder.Logits!, probe), [], keepDims: false);
        b.Output(loss, DataType.Double);
        feeds["probe"] = HostTensor.Of(Normal(new Random(9), 2 * 5 * config.VocabSize, 1.0), 2, 5, config.VocabSize);
        GradCheck.Check(model, loss, feeds, decoder.Parameters.Select(p => p.Name));
    }

    [Fact]
    public void Gradient_graph_runs_no_node_whose_result_nothing_reads()
    {
        // Rules also emit gradients of the rotary tables and the causal mask's operands; none of that may stay in the graph.
        var decoder = DecoderBuilder.Build(TinyConfig(ModelFamily.Llama), DecoderGraphOptions.UpToHiddenState(1));
        var model = decoder.Model.Clone();
        var b = new GraphBuilder(model.Graph);
        var loss = b.ReduceSum(decoder.HiddenStates[1], [], keepDims: false);
        b.Output(loss, DataType.Float);
        var graph = Gradients.Build(model, loss, decoder.Parameters.Select(p => p.Name)).Model.Graph;
        var read = graph.Node.SelectMany(n => n.Input).Concat(graph.Output.Select(o => o.Name)).ToHashSet();
        Assert.Empty(graph.Node.Where(n => !n.Output.Any(read.Contains)).Select(n => $"{n.OpType} '{n.Name}'"));
        Assert.Empty(graph.Initializer.Where(t => !read.Contains(t.Name)).Select(t => t.Name));
    }

    /// <summary>hidden 8, 2 heads sharing 1 KV head, intermediate 12, vocab 13: a few hundred parameters.</summary>
    internal static DecoderConfig TinyConfig(ModelFamily family, int layers = 1) => new()
    {
        Family = family, HiddenSize = 8, NumHiddenLayers = layers, NumAttentionHeads = 2, NumKeyValueHeads = 1,
        IntermediateSize = 12, VocabSize = 13, RmsNormEps = 1e-5, RopeTheta = 10000, AttentionBias = family == ModelFamily.Qwen2,
    };

    /// <summary>Random parameters (norm weights not all one) and a batch of 2 x 5 tokens in which token 3 and 9
    /// repeat, so embedding gradients accumulate over several positions.</summary>
    static Dictionary<string, HostTensor> Bind(DecoderGraph decoder, int seed)
    {
        var feeds = RandomInit.Create(decoder.Parameters, seed, std: 0.3, normStd: 0.2)
            .ToDictionary(kv => kv.Key, kv => new HostTensor(kv.Value.Data, kv.Value.Shape));
        feeds[DecoderGraph.InputIds] = HostTensor.Of(new long[] { 3, 7, 3, 1, 12, 5, 3, 9, 9, 0 }, 2, 5);
        return feeds;
    }

    static double[] Cosines(double[] vectors, double[] target)
    {
        int d = target.Length;
        return Enumerable.Range(0, vectors.Length / d).Select(i =>
        {
            var v = vectors.AsSpan(i * d, d);
            double dot = 0, vv = 0, tt = 0;
            for (int k = 0; k < d; k++) { dot += v[k] * target[k]; vv += v[k] * v[k]; tt += target[k] * target[k]; }
            return dot / Math.Sqrt(vv * tt);
        }).ToArray();
    }

    static double[] Normal(Random random, long count, double std) =>
        Enumerable.Range(0, (int)count).Select(_ => std * Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble())).ToArray();
}
