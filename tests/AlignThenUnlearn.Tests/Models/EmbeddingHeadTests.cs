using AlignThenUnlearn.Models;
using AlignThenUnlearn.Onnx;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Tests.Support;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Tests.Models;

/// <summary>The embedding head against a plain C# implementation of nn.TransformerDecoderLayer's equations (post-norm,
/// causal self-attention, unmasked cross-attention to the projected input), its gradients against central differences,
/// and its size at the paper's settings.</summary>
public class EmbeddingHeadTests
{
    static readonly EmbeddingHeadConfig Tiny = new(InputSize: 5, DModel: 4, Heads: 2, FeedForward: 6, Layers: 2, OutputSize: 3);
    const int Batch = 2, Seq = 4;

    static Dictionary<string, HostTensor> RandomParameters(EmbeddingHead head, int seed, bool asDouble)
    {
        var random = new Random(seed);
        return head.Parameters.ToDictionary(p => p.Name, p =>
        {
            var v = Enumerable.Range(0, (int)p.ElementCount).Select(_ => (p.Name.Contains("norm") && p.Name.EndsWith("weight") ? 1 : 0) + 0.5 * (random.NextDouble() * 2 - 1)).ToArray();
            return asDouble ? HostTensor.Of(v, p.Shape) : HostTensor.Of(v.Select(x => (float)x).ToArray(), p.Shape);
        });
    }

    static (global::Onnx.ModelProto Model, string Output) Graph(EmbeddingHead head, bool training, DataType type)
    {
        var b = new GraphBuilder("head");
        var hidden = b.Input("hidden", type, "batch", "seq", head.Config.InputSize);
        var y = head.Emit(b, hidden, training);
        b.Output(y, type, "batch", "seq", head.Config.OutputSize);
        return (b.ToModel(), y);
    }

    // ---- reference: the layer equations in plain C# ----

    static double[] Lin(double[] x, double[] w, double[] bias, int outDim, int offset = 0)
    {
        var y = new double[outDim];
        for (int o = 0; o < outDim; o++) { double a = bias[offset + o]; for (int i = 0; i < x.Length; i++) a += w[(offset + o) * x.Length + i] * x[i]; y[o] = a; }
        return y;
    }

    static double[] Norm(double[] x, double[] w, double[] bias, double eps)
    {
        double mean = x.Average(), variance = x.Select(v => (v - mean) * (v - mean)).Average();
        return x.Select((v, i) => (v - mean) / Math.Sqrt(variance + eps) * w[i] + bias[i]).ToArray();
    }

    static double[][] Mha(double[][] query, double[][] kv, Func<string, double[]> p, string prefix, int heads, bool causal)
    {
        int d = query[0].Length, hd = d / heads;
        var w = p(prefix + ".in_proj_weight"); var bias = p(prefix + ".in_proj_bias");
        var q = query.Select(x => Lin(x, w, bias, d, 0)).ToArray();
        var k = kv.Select(x => Lin(x, w, bias, d, d)).ToArray();
        var v = kv.Select(x => Lin(x, w, bias, d, 2 * d)).ToArray();
        var output = new double[query.Length][];
        for (int s = 0; s < query.Length; s++)
        {
            var context = new double[d];
            for (int h = 0; h < heads; h++)
            {
                int keys = causal ? s + 1 : kv.Length;
                var scores = Enumerable.Range(0, keys).Select(t => Enumerable.Range(0, hd).Sum(j => q[s][h * hd + j] * k[t][h * hd + j]) / Math.Sqrt(hd)).ToArray();
                double max = scores.Max(), total = scores.Sum(a => Math.Exp(a - max));
                for (int t = 0; t < keys; t++) for (int j = 0; j < hd; j++) context[h * hd + j] += Math.Exp(scores[t] - max) / total * v[t][h * hd + j];
            }
            output[s] = Lin(context, p(prefix + ".out_proj.weight"), p(prefix + ".out_proj.bias"), d);
        }
        return output;
    }

    static double[][] Reference(EmbeddingHeadConfig c, Func<string, double[]> p, double[][] hidden)
    {
        string P(string n) => EmbeddingHead.DefaultPrefix + n;
        var memory = hidden.Select(h => Lin(h, p(P("input_proj.weight")), p(P("input_proj.bias")), c.DModel)).ToArray();
        var x = memory;
        for (int i = 0; i < c.Layers; i++)
        {
            string L(string n) => P($"layers.{i}.{n}");
            var sa = Mha(x, x, p, L("self_attn"), c.Heads, causal: true);
            x = x.Select((r, s) => Norm(r.Zip(sa[s], (a, b) => a + b).ToArray(), p(L("norm1.weight")), p(L("norm1.bias")), c.LayerNormEps)).ToArray();
            var ca = Mha(x, memory, p, L("multihead_attn"), c.Heads, causal: false);
            x = x.Select((r, s) => Norm(r.Zip(ca[s], (a, b) => a + b).ToArray(), p(L("norm2.weight")), p(L("norm2.bias")), c.LayerNormEps)).ToArray();
            var ff = x.Select(r => Lin(Lin(r, p(L("linear1.weight")), p(L("linear1.bias")), c.FeedForward).Select(v => Math.Max(0, v)).ToArray(),
                p(L("linear2.weight")), p(L("linear2.bias")), c.DModel)).ToArray();
            x = x.Select((r, s) => Norm(r.Zip(ff[s], (a, b) => a + b).ToArray(), p(L("norm3.weight")), p(L("norm3.bias")), c.LayerNormEps)).ToArray();
        }
        return x.Select(r => Lin(r, p(P("output_proj.weight")), p(P("output_proj.bias")), c.OutputSize)).ToArray();
    }

    [Fact]
    public void Inference_lowering_matches_the_layer_equations()
    {
        var head = new EmbeddingHead(Tiny);
        var (model, output) = Graph(head, training: false, DataType.Float);
        var feeds = RandomParameters(head, 1, asDouble: false);
        var hidden = Enumerable.Range(0, Batch * Seq * Tiny.InputSize).Select(i => (float)Math.Sin(i * 0.7)).ToArray();
        feeds["hidden"] = HostTensor.Of(hidden, Batch, Seq, Tiny.InputSize);
        var y = GradCheck.Cpu.Run(model, feeds)[output].Floats;
        for (int bIndex = 0; bIndex < Batch; bIndex++)
        {
            var rows = Enumerable.Range(0, Seq).Select(s => hidden.Skip((bIndex * Seq + s) * Tiny.InputSize).Take(Tiny.InputSize).Select(v => (double)v).ToArray()).ToArray();
            var expected = Reference(Tiny, n => feeds[n].Floats.Select(v => (double)v).ToArray(), rows);
            for (int s = 0; s < Seq; s++)
                for (int j = 0; j < Tiny.OutputSize; j++)
                    Assert.True(Math.Abs(expected[s][j] - y[(bIndex * Seq + s) * Tiny.OutputSize + j]) < 1e-5, $"batch {bIndex} position {s} output {j}");
        }
    }

    /// <summary>The training lowering in double with a probe loss sum(head(hidden) * probe), and its feeds.</summary>
    static (global::Onnx.ModelProto Model, string Output, string Loss, Dictionary<string, HostTensor> Feeds) TrainingProbe(EmbeddingHead head, float dropout)
    {
        var (model, output) = Graph(head, training: true, DataType.Double);
        var b = new GraphBuilder(model.Graph);
        var probe = b.Input("probe", DataType.Double, "batch", "seq", Tiny.OutputSize);
        var loss = b.ReduceSum(b.Mul(output, probe), [], keepDims: false);
        b.Output(loss, DataType.Double);
        var feeds = RandomParameters(head, 2, asDouble: true);
        feeds["hidden"] = HostTensor.Of(Enumerable.Range(0, Batch * Seq * Tiny.InputSize).Select(i => Math.Cos(i * 0.3)).ToArray(), Batch, Seq, Tiny.InputSize);
        feeds["probe"] = HostTensor.Of(Enumerable.Range(0, Batch * Seq * Tiny.OutputSize).Select(i => Math.Sin(i * 1.3)).ToArray(), Batch, Seq, Tiny.OutputSize);
        feeds[EmbeddingHead.DropoutRatio] = HostTensor.Of([dropout]);
        return (b.ToModel(), output, loss, feeds);
    }

    [Fact]
    public void Training_lowering_without_dropout_equals_inference_and_has_exact_gradients()
    {
        var head = new EmbeddingHead(Tiny, DataType.Double);
        var (model, output, loss, feeds) = TrainingProbe(head, dropout: 0f);   // Dropout in training mode with ratio 0 keeps everything
        var (inference, inferenceOutput) = Graph(head, training: false, DataType.Double);
        var trained = GradCheck.Cpu.Run(model, feeds)[output].Doubles;
        var inferred = GradCheck.Cpu.Run(inference, feeds.Where(f => f.Key is not ("probe" or EmbeddingHead.DropoutRatio)).ToDictionary())[inferenceOutput].Doubles;
        for (int i = 0; i < trained.Length; i++) Assert.Equal(inferred[i], trained[i], 1e-12);
        GradCheck.Check(model, loss, feeds, head.Parameters.Select(p => p.Name).Append("hidden"), rtol: 1e-5, atol: 1e-8);
    }

    [Fact]
    public void Dropout_sits_where_pytorch_puts_it_and_its_gradients_follow_the_drawn_masks()
    {
        var head = new EmbeddingHead(Tiny, DataType.Double);
        var (model, output, loss, feeds) = TrainingProbe(head, dropout: 0.3f);
        // nn.TransformerDecoderLayer: attention-weight dropout in both attentions, dropout1..3 on the residual branches
        // and the dropout after the feed-forward activation: six per layer.
        Assert.Equal(6 * Tiny.Layers, model.Graph.Node.Count(n => n.OpType == "Dropout"));
        var (inference, inferenceOutput) = Graph(head, training: false, DataType.Double);
        var dropped = GradCheck.Cpu.Run(model, feeds)[output].Doubles;
        var kept = GradCheck.Cpu.Run(inference, feeds.Where(f => f.Key is not ("probe" or EmbeddingHead.DropoutRatio)).ToDictionary())[inferenceOutput].Doubles;
        Assert.True(dropped.Zip(kept).Max(p => Math.Abs(p.First - p.Second)) > 1e-3, "dropout at 0.3 changed nothing");
        // A fresh session draws the same masks each time (seeded nodes), so central differences see the masks the
        // backward graph used. A subset of parameters keeps the number of sessions small. Tolerance: the backward pass
        // reuses LayerNormalization's mean and inverse deviation, which ONNX Runtime keeps in float even for double
        // input (it has no double-statistics kernel), so gradients of size ~1 carry errors of ~1e-7; a wrong mask
        // element would change a gradient by the size of a term, far more than 1e-6.
        string[] wrt = ["hidden", "head.input_proj.weight", "head.layers.0.self_attn.in_proj_weight", "head.layers.1.multihead_attn.out_proj.bias",
            "head.layers.1.linear1.weight", "head.layers.0.norm2.weight", "head.output_proj.bias"];
        GradCheck.Check(model, loss, feeds, wrt, rtol: 1e-5, atol: 1e-6, freshSessions: true);
    }

    [Fact]
    public void Paper_preset_head_has_about_sixty_million_parameters()
    {
        // Phi-3 hidden 3072 -> d 768, 6 layers, ff 3072, all-mpnet 768:
        // input_proj 3072*768 + 768 = 2,360,064; per layer: two attentions of (3*768*768 + 3*768) + (768*768 + 768) = 2,362,368 each,
        // linear1 768*3072 + 3072 = 2,362,368, linear2 3072*768 + 768 = 2,360,064, three norms 6*768 = 4,608 -> 9,451,776;
        // output_proj 768*768 + 768 = 590,592. Total 2,360,064 + 6*9,451,776 + 590,592 = 59,661,312.
        var head = new EmbeddingHead(new EmbeddingHeadConfig(3072, 768, 8, 3072, 6, 768));
        Assert.Equal(59_661_312, head.Parameters.Sum(p => p.ElementCount));
    }
}
