using AlignThenUnlearn.Models;

namespace AlignThenUnlearn.Tests.Models;

/// <summary>A plain C# forward pass written from Hugging Face's modeling_llama.py / modeling_phi3.py equations, in
/// double precision with loops, one sequence at a time: no ONNX, nothing shared with the graph builder. Phi-3's
/// fused weights are read here by slicing weight rows (the builder splits projection outputs instead).</summary>
public sealed class ReferenceDecoder(DecoderConfig config, IReadOnlyDictionary<string, ParameterArray> parameters)
{
    readonly DecoderConfig c = config;

    /// <summary>hidden_states[0..layers] (HF indexing; the last after the final norm), each [seq][hidden], and logits [seq][vocab].</summary>
    public (double[][][] HiddenStates, double[][] Logits) Forward(long[] ids)
    {
        int seq = ids.Length;
        var h = ids.Select(id => Row("model.embed_tokens.weight", (int)id)).ToArray();
        var states = new List<double[][]> { h };
        for (int layer = 0; layer < c.NumHiddenLayers; layer++)
        {
            var p = $"model.layers.{layer}";
            var attention = Attention(RmsNorm(h, $"{p}.input_layernorm.weight"), $"{p}.self_attn");
            h = Add(h, attention);
            var mlp = Mlp(RmsNorm(h, $"{p}.post_attention_layernorm.weight"), $"{p}.mlp");
            h = Add(h, mlp);
            states.Add(h);
        }
        h = RmsNorm(h, "model.norm.weight");
        states[^1] = h;
        var logits = Linear(h, c.TieWordEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight", 0, c.VocabSize);
        return ([.. states], logits);
    }

    double[][] Attention(double[][] x, string p)
    {
        int heads = c.NumAttentionHeads, kvHeads = c.NumKeyValueHeads, d = c.HeadDimension, seq = x.Length;
        int qs = heads * d, kvs = kvHeads * d;
        double[][] q, k, v;
        if (c.Family == ModelFamily.Phi3)
        {
            q = Linear(x, $"{p}.qkv_proj.weight", 0, qs);
            k = Linear(x, $"{p}.qkv_proj.weight", qs, kvs);
            v = Linear(x, $"{p}.qkv_proj.weight", qs + kvs, kvs);
        }
        else
        {
            q = Linear(x, $"{p}.q_proj.weight", 0, qs, c.AttentionBias ? $"{p}.q_proj.bias" : null);
            k = Linear(x, $"{p}.k_proj.weight", 0, kvs, c.AttentionBias ? $"{p}.k_proj.bias" : null);
            v = Linear(x, $"{p}.v_proj.weight", 0, kvs, c.AttentionBias ? $"{p}.v_proj.bias" : null);
        }
        for (int i = 0; i < seq; i++)
        {
            for (int hd = 0; hd < heads; hd++) Rotate(q[i], hd * d, i);
            for (int hd = 0; hd < kvHeads; hd++) Rotate(k[i], hd * d, i);
        }
        var context = new double[seq][];
        for (int i = 0; i < seq; i++)
        {
            context[i] = new double[qs];
            for (int hd = 0; hd < heads; hd++)
            {
                int kvOffset = hd / (heads / kvHeads) * d;   // repeat_kv: query heads g*n_rep .. g*n_rep+n_rep-1 share kv head g
                var visible = Enumerable.Range(0, i + 1).Where(j => c.SlidingWindow is not int w || i - j < w).ToArray();
                var scores = visible.Select(j => Enumerable.Range(0, d).Sum(e => q[i][hd * d + e] * k[j][kvOffset + e]) / Math.Sqrt(d)).ToArray();
                double max = scores.Max(), total = scores.Sum(s => Math.Exp(s - max));
                for (int n = 0; n < visible.Length; n++)
                {
                    double weight = Math.Exp(scores[n] - max) / total;
                    for (int e = 0; e < d; e++) context[i][hd * d + e] += weight * v[visible[n]][kvOffset + e];
                }
            }
        }
        return Linear(context, $"{p}.o_proj.weight", 0, c.HiddenSize);
    }

    /// <summary>rotate_half RoPE on one head: (x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin), angle = position / theta^(2j/d).</summary>
    void Rotate(double[] x, int offset, int position)
    {
        int half = c.HeadDimension / 2;
        for (int j = 0; j < half; j++)
        {
            double angle = position / Math.Pow(c.RopeTheta, 2.0 * j / c.HeadDimension);
            double x1 = x[offset + j], x2 = x[offset + half + j];
            x[offset + j] = x1 * Math.Cos(angle) - x2 * Math.Sin(angle);
            x[offset + half + j] = x2 * Math.Cos(angle) + x1 * Math.Sin(angle);
        }
    }

    double[][] Mlp(double[][] x, string p)
    {
        int m = c.IntermediateSize;
        var (gate, up) = c.Family == ModelFamily.Phi3
            ? (Linear(x, $"{p}.gate_up_proj.weight", 0, m), Linear(x, $"{p}.gate_up_proj.weight", m, m))
            : (Linear(x, $"{p}.gate_proj.weight", 0, m), Linear(x, $"{p}.up_proj.weight", 0, m));
        var act = gate.Select((g, i) => g.Select((a, j) => a / (1 + Math.Exp(-a)) * up[i][j]).ToArray()).ToArray();
        return Linear(act, $"{p}.down_proj.weight", 0, c.HiddenSize);
    }

    double[][] RmsNorm(double[][] x, string weight)
    {
        var w = Values(weight);
        return x.Select(row =>
        {
            double scale = 1 / Math.Sqrt(row.Average(v => v * v) + c.RmsNormEps);
            return row.Select((v, j) => w[j] * v * scale).ToArray();
        }).ToArray();
    }

    /// <summary>y = x @ W[rows firstRow..firstRow+count)^T (+ b).</summary>
    double[][] Linear(double[][] x, string weight, int firstRow, int count, string? bias = null)
    {
        var w = Values(weight);
        var b = bias is null ? null : Values(bias);
        int inFeatures = (int)parameters[weight].Shape[1];
        return x.Select(row => Enumerable.Range(0, count).Select(o =>
        {
            double s = b?[o] ?? 0;
            for (int e = 0; e < inFeatures; e++) s += row[e] * w[(firstRow + o) * inFeatures + e];
            return s;
        }).ToArray()).ToArray();
    }

    double[] Row(string name, int row)
    {
        int width = (int)parameters[name].Shape[1];
        return Values(name).AsSpan(row * width, width).ToArray();
    }

    readonly Dictionary<string, double[]> _values = [];
    double[] Values(string name)
    {
        if (!_values.TryGetValue(name, out var v))
            _values[name] = v = parameters[name].Data switch
            {
                double[] d => d,
                float[] f => Array.ConvertAll(f, x => (double)x),
                var other => throw new ArgumentException($"{name}: {other.GetType()}"),
            };
        return v;
    }

    static double[][] Add(double[][] a, double[][] b) => a.Select((row, i) => row.Select((v, j) => v + b[i][j]).ToArray()).ToArray();
}
