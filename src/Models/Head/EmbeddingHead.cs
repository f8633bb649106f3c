using AlignThenUnlearn.Onnx;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Models;

/// <summary>Sizes of the embedding prediction head.</summary>
public sealed record EmbeddingHeadConfig(int InputSize, int DModel, int Heads, int FeedForward, int Layers, int OutputSize,
    double Dropout = 0.1, double LayerNormEps = 1e-5);

/// <summary>The embedding prediction head of Align-then-Unlearn: Linear(llm_hidden -> d), a stack of PyTorch
/// nn.TransformerDecoderLayer (post-norm, ReLU, batch first) whose self-attention is causal and whose cross-attention
/// attends to the projected input itself (no mask, as the authors run it; with a key mask, padding keys are left out),
/// no positional encoding and no final norm, then Linear(d -> enc).
/// Parameter names follow PyTorch's modules under a prefix (<c>head.</c>; one per layer when several heads read several layers): <c>layers.{i}.self_attn.in_proj_weight</c> (rows q, k, v),
/// <c>self_attn.out_proj</c>, <c>multihead_attn.*</c>, <c>linear1</c>, <c>linear2</c>, <c>norm1..3</c>.
/// The training lowering has PyTorch's dropouts (attention weights, the three residual branches, the feed-forward
/// activation) with the ratio as graph input <see cref="DropoutRatio"/>; the inference lowering has none.</summary>
public sealed partial class EmbeddingHead(EmbeddingHeadConfig config, DataType elementType = DataType.Float, string prefix = EmbeddingHead.DefaultPrefix) : IPredictionHead
{
    public const string DefaultPrefix = "head.", DropoutRatio = "head_dropout";
    public EmbeddingHeadConfig Config { get; } = config;
    /// <summary>Prepended to every parameter name (e.g. <c>head.</c>).</summary>
    public string Prefix { get; } = prefix;

    public IReadOnlyList<ParameterSpec> Parameters { get; } = Specs(config, elementType, prefix);

    static IReadOnlyList<ParameterSpec> Specs(EmbeddingHeadConfig c, DataType type, string prefix)
    {
        var specs = new List<ParameterSpec>();
        void Add(string name, params long[] shape) => specs.Add(new ParameterSpec(prefix + name, shape, type));
        Add("input_proj.weight", c.DModel, c.InputSize); Add("input_proj.bias", c.DModel);
        for (int i = 0; i < c.Layers; i++)
        {
            foreach (var attention in new[] { "self_attn", "multihead_attn" })
            {
                Add($"layers.{i}.{attention}.in_proj_weight", 3L * c.DModel, c.DModel); Add($"layers.{i}.{attention}.in_proj_bias", 3L * c.DModel);
                Add($"layers.{i}.{attention}.out_proj.weight", c.DModel, c.DModel); Add($"layers.{i}.{attention}.out_proj.bias", c.DModel);
            }
            Add($"layers.{i}.linear1.weight", c.FeedForward, c.DModel); Add($"layers.{i}.linear1.bias", c.FeedForward);
            Add($"layers.{i}.linear2.weight", c.DModel, c.FeedForward); Add($"layers.{i}.linear2.bias", c.DModel);
            foreach (var norm in new[] { "norm1", "norm2", "norm3" }) { Add($"layers.{i}.{norm}.weight", c.DModel); Add($"layers.{i}.{norm}.bias", c.DModel); }
        }
        Add("output_proj.weight", c.OutputSize, c.DModel); Add("output_proj.bias", c.OutputSize);
        return specs;
    }

    public string Emit(GraphBuilder b, string hidden, bool training, string? keyMask = null) => new Emitter(b, this, training, keyMask).Head(hidden);

    /// <summary>PyTorch's initial values for these modules as nn.TransformerDecoder builds them: one
    /// nn.TransformerDecoderLayer initialised and deep-copied into every layer (so all layers start identical);
    /// nn.Linear weights and biases uniform in +-1/sqrt(fan_in) (kaiming_uniform with a = sqrt 5), nn.MultiheadAttention
    /// in-projections xavier_uniform over the whole [3d, d] matrix (bound sqrt(6 / (3d + d))) with zero biases and a zero
    /// out-projection bias, LayerNorm weight 1 and bias 0. Deterministic in <paramref name="seed"/> and each name.</summary>
    public Dictionary<string, float[]> InitialValues(int seed)
    {
        var values = new Dictionary<string, float[]>();
        foreach (var p in Parameters)
        {
            var name = p.Name[Prefix.Length..];
            // Every layer draws layer 0's values: the deep copies of one layer.
            var random = new Random(unchecked(seed * 486187739 + RandomInit.StableHash(LayerIndex().Replace(name, "layers.0."))));
            long fanIn = name.Contains(".norm") || p.Shape.Length == 1 ? 0 : p.Shape[1];
            double bound = name switch
            {
                _ when name.EndsWith("in_proj_weight") => Math.Sqrt(6.0 / (p.Shape[0] + p.Shape[1])),   // xavier: fan_out 3d, fan_in d
                _ when name.EndsWith("in_proj_bias") || name.EndsWith("out_proj.bias") || name.Contains(".norm") => 0,
                _ when name.EndsWith(".bias") => 1 / Math.Sqrt(Parameters.Single(w => w.Name == p.Name[..^"bias".Length] + "weight").Shape[1]),
                _ => 1 / Math.Sqrt(fanIn),
            };
            bool ones = name.Contains(".norm") && name.EndsWith(".weight");
            values[p.Name] = Enumerable.Range(0, (int)p.ElementCount).Select(_ => ones ? 1f : (float)(bound * (2 * random.NextDouble() - 1))).ToArray();
        }
        return values;
    }

    [System.Text.RegularExpressions.GeneratedRegex(@"^layers\.[0-9]+\.")]
    private static partial System.Text.RegularExpressions.Regex LayerIndex();

    /// <summary>One emission: the graph, the lowering, and the shared values (dropout ratio, causal mask, key mask).</summary>
    sealed class Emitter(GraphBuilder b, EmbeddingHead head, bool training, string? keyMask)
    {
        readonly EmbeddingHeadConfig c = head.Config;
        string? _ratio, _training, _causal, _keys;
        int _dropouts;
        // The input's sequence length as the graph declares it (a symbol such as "sequence", or a size).
        Dim _sequence = Dim.Unknown;

        public string Head(string hidden)
        {
            if (ShapeInference.Run(b.Graph)[hidden]?.Shape is [_, var sequence, _]) _sequence = sequence;
            foreach (var p in head.Parameters) b.Input(p.Name, p.ElementType, p.Shape.Select(d => (Dim)d).ToArray());
            if (training)
            {
                // Several heads in one graph share the ratio input and the training flag.
                _ratio = b.Graph.Input.Any(i => i.Name == DropoutRatio) ? DropoutRatio : b.Input(DropoutRatio, DataType.Float);
                _training = b.Initializer(Tensors.FromBool("head_training", [true]));
            }
            var memory = Linear(hidden, "input_proj");
            var x = memory;
            for (int i = 0; i < c.Layers; i++) x = DecoderLayer(x, memory, $"layers.{i}");
            return Linear(x, "output_proj");
        }

        /// <summary>nn.TransformerDecoderLayer with norm_first=False.</summary>
        string DecoderLayer(string x, string memory, string p)
        {
            x = LayerNorm(b.Add(x, Dropout(Attention(x, x, $"{p}.self_attn", causal: true))), $"{p}.norm1");
            x = LayerNorm(b.Add(x, Dropout(Attention(x, memory, $"{p}.multihead_attn", causal: false))), $"{p}.norm2");
            var ff = Linear(Dropout(b.Relu(Linear(x, $"{p}.linear1"))), $"{p}.linear2");
            return LayerNorm(b.Add(x, Dropout(ff)), $"{p}.norm3");
        }

        /// <summary>nn.MultiheadAttention: packed in-projection (rows q, k, v), scaled dot product, dropout on the weights, out-projection.</summary>
        string Attention(string query, string keyValue, string p, bool causal)
        {
            int d = c.DModel, h = c.Heads, hd = d / h;
            var w = head.Prefix + p + ".in_proj_weight";
            var bias = head.Prefix + p + ".in_proj_bias";
            var ws = b.Node("Split", [w, b.Ints(d, d, d)], 3, [Attr.Int("axis", 0)]);
            var bs = b.Node("Split", [bias, b.Ints(d, d, d)], 3, [Attr.Int("axis", 0)]);
            string Project(string x, int k) => b.Add(b.MatMul(x, b.Transpose(ws[k], 1, 0)), bs[k]);
            string Heads(string x) => b.Transpose(b.Reshape(x, 0, 0, h, hd), 0, 2, 1, 3);               // [batch, heads, seq, hd]
            var q = Heads(Project(query, 0));
            var k = Heads(Project(keyValue, 1));
            var v = Heads(Project(keyValue, 2));
            var scores = b.Mul(b.MatMul(q, b.Transpose(k, 0, 1, 3, 2)), b.Scalar(1 / Math.Sqrt(hd), TypeOf()));
            var lowest = b.Scalar(TypeOf() == DataType.Double ? double.MinValue : float.MinValue, TypeOf());
            if (causal) scores = b.Where(CausalMask(query), scores, lowest);
            else if (keyMask is not null) scores = b.Where(KeyMask(), scores, lowest);
            var weights = Dropout(b.Softmax(scores, -1));
            var context = b.Reshape(b.Transpose(b.MatMul(weights, v), 0, 2, 1, 3), 0, 0, d);
            return b.Add(b.MatMul(context, b.Transpose(head.Prefix + p + ".out_proj.weight", 1, 0)), head.Prefix + p + ".out_proj.bias");
        }

        string CausalMask(string x)
        {
            if (_causal is not null) return _causal;
            var seq = b.Gather(b.Shape(x), b.IntScalar(1));
            var positions = b.Op("Range", b.IntScalar(0), seq, b.IntScalar(1));
            // Shape inference cannot tell Range's length; declared, the attention scores and every gradient after them
            // keep static broadcasting (an unknown length made each head gradient sum over axes found at run time,
            // a device-to-host round trip per node on CUDA).
            if (_sequence.IsKnown) b.Graph.ValueInfo.Add(GraphBuilder.ValueInfo(positions, DataType.Int64, [_sequence]));
            return _causal = b.Op("LessOrEqual", b.Unsqueeze(positions, 0), b.Unsqueeze(positions, 1));
        }

        /// <summary>[batch, 1, 1, seq]: true at real keys. (Causal self-attention needs none: padding sits after every real token.)</summary>
        string KeyMask() => _keys ??= b.Unsqueeze(b.Op("Greater", b.Cast(keyMask!, DataType.Float), b.Scalar(0, DataType.Float)), 1, 2);

        string Linear(string x, string module) =>
            b.Add(b.MatMul(x, b.Transpose(head.Prefix + module + ".weight", 1, 0)), head.Prefix + module + ".bias");

        string LayerNorm(string x, string module) =>
            b.Op("LayerNormalization", [x, head.Prefix + module + ".weight", head.Prefix + module + ".bias"], Attr.Int("axis", -1), Attr.Float("epsilon", (float)c.LayerNormEps));

        /// <summary>Training: Dropout with the graph's ratio (each site its own fixed seed, so runs of one session repeat);
        /// inference: identity.</summary>
        string Dropout(string x) => !training ? x
            : b.Node("Dropout", [x, _ratio!, _training!], 1, [Attr.Int("seed", 1000 + _dropouts++)])[0];

        DataType TypeOf() => head.Parameters[0].ElementType;
    }
}
