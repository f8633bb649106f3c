using AlignThenUnlearn.Models;

namespace AlignThenUnlearn.Tests.Support;

/// <summary>An independent forward pass of a Llama-family decoder written from Hugging Face's equations
/// with plain loops in double precision (no ONNX): the yardstick for both lowerings of the decoder
/// builder. Weights are row-major in Hugging Face layout ([out, in] for projections).</summary>
public sealed class ReferenceDecoder(DecoderConfig config, IReadOnlyDictionary<string, float[]> weights)
{
    public sealed record Result(double[][] Logits, double[][][] HiddenStates);

    float[] W(string name) => weights.TryGetValue(name, out var w) ? w : throw new KeyError(name);

    sealed class KeyError(string name) : Exception($"reference decoder: weight '{name}' missing");

    /// <summary>Runs one sequence; HiddenStates[k][position] follows HF output_hidden_states (the last one after the final norm).</summary>
    public Result Forward(IReadOnlyList<long> ids)
    {
        int S = ids.Count, H = config.HiddenSize;
        var embed = W("model.embed_tokens.weight");
        var x = new double[S][];
        for (int s = 0; s < S; s++) x[s] = Enumerable.Range(0, H).Select(j => (double)embed[ids[s] * H + j]).ToArray();
        var hidden = new List<double[][]> { Copy(x) };
        for (int layer = 0; layer < config.NumHiddenLayers; layer++)
        {
            var p = $"model.layers.{layer}.";
            var attnIn = x.Select(r => RmsNorm(r, W(p + "input_layernorm.weight"))).ToArray();
            var attnOut = Attention(attnIn, p + "self_attn.");
            for (int s = 0; s < S; s++) for (int j = 0; j < H; j++) x[s][j] += attnOut[s][j];
            var mlpIn = x.Select(r => RmsNorm(r, W(p + "post_attention_layernorm.weight"))).ToArray();
            var mlpOut = mlpIn.Select(r => Mlp(r, p + "mlp.")).ToArray();
            for (int s = 0; s < S; s++) for (int j = 0; j < H; j++) x[s][j] += mlpOut[s][j];
            hidden.Add(Copy(x));
        }
        var normed = x.Select(r => RmsNorm(r, W("model.norm.weight"))).ToArray();
        hidden[^1] = normed;   // HF: the last hidden state is taken after the final norm
        var head = config.TieWordEmbeddings ? embed : W("lm_head.weight");
        var logits = normed.Select(r => Linear(r, head, config.VocabSize)).ToArray();
        return new Result(logits, [.. hidden]);
    }

    double[] RmsNorm(double[] v, float[] w)
    {
        double ms = v.Sum(a => a * a) / v.Length;
        double inv = 1 / Math.Sqrt(ms + config.RmsNormEps);
        return v.Select((a, j) => w[j] * (a * inv)).ToArray();
    }

    /// <summary>y = W v (+ bias), W of shape [outDim, v.Length] read from <paramref name="rowOffset"/> on.</summary>
    static double[] Linear(double[] v, float[] w, int outDim, int rowOffset = 0, float[]? bias = null, int biasOffset = 0)
    {
        var y = new double[outDim];
        for (int o = 0; o < outDim; o++)
        {
            double acc = bias is null ? 0 : bias[biasOffset + o];
            int row = (rowOffset + o) * v.Length;
            for (int i = 0; i < v.Length; i++) acc += w[row + i] * v[i];
            y[o] = acc;
        }
        return y;
    }

    double[][] Attention(double[][] x, string p)
    {
        int S = x.Length, nh = config.NumAttentionHeads, nkv = config.NumKeyValueHeads, hd = config.HeadDimension;
        double[][] q, k, v;
        if (config.Family == ModelFamily.Phi3)
        {
            var qkv = W(p + "qkv_proj.weight");
            q = x.Select(r => Linear(r, qkv, nh * hd)).ToArray();
            k = x.Select(r => Linear(r, qkv, nkv * hd, nh * hd)).ToArray();
            v = x.Select(r => Linear(r, qkv, nkv * hd, nh * hd + nkv * hd)).ToArray();
        }
        else
        {
            float[]? Bias(string n) => config.AttentionBias ? W(p + n + ".bias") : null;
            q = x.Select(r => Linear(r, W(p + "q_proj.weight"), nh * hd, bias: Bias("q_proj"))).ToArray();
            k = x.Select(r => Linear(r, W(p + "k_proj.weight"), nkv * hd, bias: Bias("k_proj"))).ToArray();
            v = x.Select(r => Linear(r, W(p + "v_proj.weight"), nkv * hd, bias: Bias("v_proj"))).ToArray();
        }
        for (int s = 0; s < S; s++) { Rope(q[s], nh, s); Rope(k[s], nkv, s); }
        var output = new double[S][];
        double scale = 1 / Math.Sqrt(hd);
        for (int s = 0; s < S; s++)
        {
            output[s] = new double[nh * hd];
            for (int h = 0; h < nh; h++)
            {
                int kvh = h / (nh / nkv);
                var scores = new double[s + 1];
                for (int t = 0; t <= s; t++)
                {
                    double dot = 0;
                    for (int d = 0; d < hd; d++) dot += q[s][h * hd + d] * k[t][kvh * hd + d];
                    scores[t] = dot * scale;
                }
                double max = scores.Max(), total = scores.Sum(a => Math.Exp(a - max));
                for (int t = 0; t <= s; t++)
                {
                    double weight = Math.Exp(scores[t] - max) / total;
                    for (int d = 0; d < hd; d++) output[s][h * hd + d] += weight * v[t][kvh * hd + d];
                }
            }
        }
        return output.Select(r => Linear(r, W(p + "o_proj.weight"), config.HiddenSize)).ToArray();
    }

    /// <summary>Rotate-half RoPE in place: (x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin), inv_freq = theta^(-2j/d).</summary>
    void Rope(double[] v, int heads, int position)
    {
        int hd = config.HeadDimension, half = hd / 2;
        for (int h = 0; h < heads; h++)
            for (int j = 0; j < half; j++)
            {
                double angle = position * Math.Pow(config.RopeTheta, -2.0 * j / hd);
                double c = Math.Cos(angle), s = Math.Sin(angle);
                double x1 = v[h * hd + j], x2 = v[h * hd + j + half];
                v[h * hd + j] = x1 * c - x2 * s;
                v[h * hd + j + half] = x2 * c + x1 * s;
            }
    }

    double[] Mlp(double[] x, string p)
    {
        int I = config.IntermediateSize;
        double[] gate, up;
        if (config.Family == ModelFamily.Phi3)
        {
            var gateUp = W(p + "gate_up_proj.weight");
            gate = Linear(x, gateUp, I);
            up = Linear(x, gateUp, I, I);
        }
        else
        {
            gate = Linear(x, W(p + "gate_proj.weight"), I);
            up = Linear(x, W(p + "up_proj.weight"), I);
        }
        var act = gate.Select((g, i) => g / (1 + Math.Exp(-g)) * up[i]).ToArray();
        return Linear(act, W(p + "down_proj.weight"), config.HiddenSize);
    }

    static double[][] Copy(double[][] x) => x.Select(r => (double[])r.Clone()).ToArray();
}
