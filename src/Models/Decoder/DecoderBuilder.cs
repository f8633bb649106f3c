using AlignThenUnlearn.Onnx;
using Onnx;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Models;

/// <summary>The training lowering of the Llama-family decoder (DESIGN.md section 4): primitive ONNX ops that
/// the autodiff differentiates, parameters as graph inputs named as in Hugging Face checkpoints, weights
/// [out, in] with y = x @ W^T. One method per module, as in Hugging Face's modeling_llama.py; a family is a
/// small set of differences: qwen2 adds q/k/v biases (<see cref="DecoderConfig.AttentionBias"/>) and phi3
/// fuses projections (<see cref="Phi3DecoderBuilder"/>). Positions are 0..seq-1: sequences are right-padded.</summary>
public class DecoderBuilder
{
    protected DecoderConfig Config { get; }
    protected DecoderGraphOptions Options { get; }
    protected GraphBuilder B { get; }
    readonly List<ParameterSpec> _parameters = [];

    // Shared by every layer, computed once per graph from the sequence length.
    string _cos = "", _sin = "", _attendable = "";

    protected DecoderBuilder(DecoderConfig config, DecoderGraphOptions options)
    {
        Validate(config, options);
        Config = config;
        Options = options;
        B = new GraphBuilder($"{config.ModelType}_decoder");
    }

    public static DecoderGraph Build(DecoderConfig config, DecoderGraphOptions? options = null)
    {
        options ??= new DecoderGraphOptions();
        var builder = config.Family == ModelFamily.Phi3 ? new Phi3DecoderBuilder(config, options) : new DecoderBuilder(config, options);
        return builder.Model();
    }

    /// <summary>The parameters a full decoder (every layer, lm_head unless tied) of this configuration has.</summary>
    public static IReadOnlyList<ParameterSpec> Parameters(DecoderConfig config, DataType elementType = DataType.Float) =>
        Build(config, new DecoderGraphOptions { ElementType = elementType }).Parameters;

    protected DataType Type => Options.ElementType;
    int Hidden => Config.HiddenSize;
    int HeadDim => Config.HeadDimension;
    protected int QueriesSize => Config.NumAttentionHeads * HeadDim;
    protected int KeyValueSize => Config.NumKeyValueHeads * HeadDim;

    // ---- model ----

    DecoderGraph Model()
    {
        var (layers, finalNorm) = Options.Extent(Config);
        var outputs = new Dictionary<int, string>();
        void Emit(int index, string value)
        {
            if (!Options.HiddenStates.Contains(index)) return;
            var name = B.Node("Identity", [value], 1, name: "HiddenState", outputNames: [DecoderGraph.HiddenStateName(index)])[0];
            B.Output(name, Type, DecoderGraph.Batch, DecoderGraph.Sequence, Hidden);
            outputs[index] = name;
        }

        string h;
        if (Options.InputsEmbeds)
            h = B.Input(DecoderGraph.InputsEmbeds, Type, DecoderGraph.Batch, DecoderGraph.Sequence, Hidden);
        else
            h = EmbedTokens(B.Input(DecoderGraph.InputIds, DataType.Int64, DecoderGraph.Batch, DecoderGraph.Sequence));
        PositionTables(h);
        Emit(0, h);
        for (int i = 0; i < layers; i++)
        {
            h = DecoderLayer(h, $"model.layers.{i}");
            if (i + 1 < Config.NumHiddenLayers) Emit(i + 1, h);
        }
        string? logits = null;
        if (finalNorm)
        {
            h = RmsNorm(h, "model.norm.weight");
            Emit(Config.NumHiddenLayers, h);
            if (Options.Logits)
            {
                logits = B.Node("Identity", [LmHead(h)], 1, name: "Logits", outputNames: [DecoderGraph.LogitsName])[0];
                B.Output(logits, Type, DecoderGraph.Batch, DecoderGraph.Sequence, Config.VocabSize);
            }
        }
        return new DecoderGraph(B.ToModel(), [.. _parameters], layers, outputs, logits);
    }

    string EmbedTokens(string inputIds) => B.Gather(Parameter("model.embed_tokens.weight", Config.VocabSize, Hidden), inputIds);

    string LmHead(string h) =>
        Linear(h, Config.TieWordEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight", Config.VocabSize, Hidden);

    // ---- decoder layer ----

    string DecoderLayer(string x, string prefix)
    {
        var attention = Attention(RmsNorm(x, $"{prefix}.input_layernorm.weight"), $"{prefix}.self_attn");
        x = B.Add(x, attention);
        var mlp = Mlp(RmsNorm(x, $"{prefix}.post_attention_layernorm.weight"), $"{prefix}.mlp");
        return B.Add(x, mlp);
    }

    string Attention(string x, string prefix)
    {
        var (q, k, v) = QkvProj(x, prefix);
        q = ApplyRotary(SplitHeads(q, Config.NumAttentionHeads));
        k = RepeatKv(ApplyRotary(SplitHeads(k, Config.NumKeyValueHeads)));
        v = RepeatKv(SplitHeads(v, Config.NumKeyValueHeads));
        var scores = B.Mul(B.MatMul(q, B.Transpose(k, 0, 1, 3, 2)), B.Scalar(1 / Math.Sqrt(HeadDim), Type));
        var context = B.MatMul(CausalSoftmax(scores), v);                                  // [batch, heads, seq, head_dim]
        var merged = B.Reshape(B.Transpose(context, 0, 2, 1, 3), 0, 0, QueriesSize);       // [batch, seq, heads * head_dim]
        return Linear(merged, $"{prefix}.o_proj.weight", Hidden, QueriesSize);
    }

    /// <summary>q, k, v as [batch, seq, heads * head_dim]: separate projections, with biases where the family has them.</summary>
    protected virtual (string Q, string K, string V) QkvProj(string x, string prefix)
    {
        string? Bias(string proj) => Config.AttentionBias ? $"{prefix}.{proj}.bias" : null;
        return (Linear(x, $"{prefix}.q_proj.weight", QueriesSize, Hidden, Bias("q_proj")),
                Linear(x, $"{prefix}.k_proj.weight", KeyValueSize, Hidden, Bias("k_proj")),
                Linear(x, $"{prefix}.v_proj.weight", KeyValueSize, Hidden, Bias("v_proj")));
    }

    string Mlp(string x, string prefix)
    {
        var (gate, up) = GateUpProj(x, prefix);
        return Linear(B.Mul(Silu(gate), up), $"{prefix}.down_proj.weight", Hidden, Config.IntermediateSize);
    }

    protected virtual (string Gate, string Up) GateUpProj(string x, string prefix) =>
        (Linear(x, $"{prefix}.gate_proj.weight", Config.IntermediateSize, Hidden),
         Linear(x, $"{prefix}.up_proj.weight", Config.IntermediateSize, Hidden));

    // ---- building blocks ----

    /// <summary>y = x @ W^T (+ b) with W [out, in] as stored in the checkpoint.</summary>
    protected string Linear(string x, string weight, long outFeatures, long inFeatures, string? bias = null)
    {
        var y = B.MatMul(x, B.Transpose(Parameter(weight, outFeatures, inFeatures), 1, 0));
        return bias is null ? y : B.Add(y, Parameter(bias, outFeatures));
    }

    /// <summary>w * x / sqrt(mean(x^2) + eps), the statistics in float32 (or float64) whatever the run type.</summary>
    string RmsNorm(string x, string weight)
    {
        var w = Parameter(weight, Hidden);
        var xc = ToComputeType(x);
        var variance = B.ReduceMean(B.Mul(xc, xc), [-1]);
        var normed = B.Div(xc, B.Sqrt(B.Add(variance, B.Scalar(Config.RmsNormEps, ComputeType))));
        return B.Mul(w, ToRunType(normed));
    }

    string Silu(string x) => B.Mul(x, B.Sigmoid(x));

    /// <summary>[batch, seq, heads * head_dim] -> [batch, heads, seq, head_dim].</summary>
    string SplitHeads(string x, int heads) => B.Transpose(B.Reshape(x, 0, 0, heads, HeadDim), 0, 2, 1, 3);

    /// <summary>Grouped KV heads: each key/value head serves <see cref="DecoderConfig.GroupSize"/> query heads in a row.</summary>
    string RepeatKv(string x)
    {
        int group = Config.GroupSize;
        if (group == 1) return x;
        var expanded = B.Expand(B.Unsqueeze(x, 2), B.Ints(1, 1, group, 1, 1));    // [batch, kv_heads, group, seq, head_dim]
        return Declare(B.Reshape(expanded, 0, Config.NumAttentionHeads, -1, HeadDim), Type,
            DecoderGraph.Batch, Config.NumAttentionHeads, DecoderGraph.Sequence, HeadDim);
    }

    /// <summary>Rotate-half RoPE: x * cos + rotate_half(x) * sin with rotate_half(x) = [-x2, x1].</summary>
    string ApplyRotary(string x)
    {
        var halves = B.Node("Split", [x, B.Ints(HeadDim / 2, HeadDim / 2)], 2, [Attr.Int("axis", -1)]);
        var rotated = B.Concat(-1, B.Neg(halves[1]), halves[0]);
        return B.Add(B.Mul(x, _cos), B.Mul(rotated, _sin));
    }

    /// <summary>Softmax over keys a query may attend to (later keys masked with Where, so nothing overflows in float16),
    /// computed in float32 for float16 runs as Hugging Face's eager attention does.</summary>
    string CausalSoftmax(string scores)
    {
        var s = ToComputeType(scores);
        var masked = B.Where(_attendable, s, B.Scalar(Lowest(ComputeType), ComputeType));
        return ToRunType(B.Softmax(masked, -1));
    }

    /// <summary>Rotary tables cos/sin [seq, head_dim] for positions 0..seq-1 with inv_freq = theta^(-2j/d), and the
    /// [seq, seq] mask of keys each query may attend to (key &lt;= query, within the sliding window if any).</summary>
    void PositionTables(string hidden)
    {
        var seqLength = B.Gather(B.Shape(hidden), B.IntScalar(1));
        var positions = Declare(B.Op("Range", B.IntScalar(0), seqLength, B.IntScalar(1)), DataType.Int64, DecoderGraph.Sequence);
        string keys = B.Unsqueeze(positions, 0), queries = B.Unsqueeze(positions, 1);
        _attendable = B.Op("LessOrEqual", keys, queries);
        if (Config.SlidingWindow is int window)
            _attendable = B.Op("And", _attendable, B.Op("Greater", keys, B.Sub(queries, B.Ints(window))));

        var t = ComputeType;
        var exponents = B.Div(B.Cast(B.Op("Range", B.IntScalar(0), B.IntScalar(HeadDim), B.IntScalar(2)), t), B.Scalar(HeadDim, t));
        var invFreq = B.Reciprocal(B.Op("Pow", B.Scalar(Config.RopeTheta, t), exponents));
        var freqs = B.Mul(B.Unsqueeze(B.Cast(positions, t), 1), B.Unsqueeze(invFreq, 0));   // [seq, head_dim / 2]
        var angles = B.Concat(-1, freqs, freqs);
        _cos = Declare(ToRunType(B.Op("Cos", angles)), Type, DecoderGraph.Sequence, HeadDim);
        _sin = Declare(ToRunType(B.Op("Sin", angles)), Type, DecoderGraph.Sequence, HeadDim);
    }

    // ---- parameters, types, shapes ----

    /// <summary>Declares a parameter input once (tied embeddings reuse it) and returns its name.</summary>
    protected string Parameter(string name, params long[] shape)
    {
        if (_parameters.Find(p => p.Name == name) is { } known)
            return known.Shape.SequenceEqual(shape) ? name
                : throw new InvalidOperationException($"parameter '{name}' is used with shapes [{string.Join(",", known.Shape)}] and [{string.Join(",", shape)}]");
        B.Input(name, Type, shape.Select(d => (Dim)d).ToArray());
        _parameters.Add(new ParameterSpec(name, shape, Type));
        return name;
    }

    /// <summary>Records a shape that shape inference cannot derive (a Range, a reshape with -1), so that the gradient
    /// rules see symbolic batch and sequence dimensions instead of unknown ones.</summary>
    string Declare(string value, DataType type, params Dim[] shape)
    {
        B.Graph.ValueInfo.Add(GraphBuilder.ValueInfo(value, type, shape));
        return value;
    }

    /// <summary>Where precision matters (norm statistics, softmax, rotary angles): float32, or float64 for float64 runs.</summary>
    DataType ComputeType => Type == DataType.Double ? DataType.Double : DataType.Float;

    string ToComputeType(string x) => Type == ComputeType ? x : B.Cast(x, ComputeType);
    string ToRunType(string x) => Type == ComputeType ? x : B.Cast(x, Type);

    static double Lowest(DataType type) => type switch
    {
        DataType.Double => double.MinValue,
        DataType.Float => float.MinValue,
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "no mask value for this type"),
    };

    static void Validate(DecoderConfig c, DecoderGraphOptions o)
    {
        void Require(bool ok, string what) { if (!ok) throw new ArgumentException($"{c.ModelType} decoder: {what}"); }
        Require(o.ElementType is DataType.Float or DataType.Double or DataType.Float16, $"element type {o.ElementType} is not supported (float, double or float16)");
        Require(c.NumHiddenLayers > 0 && c.HiddenSize > 0 && c.IntermediateSize > 0 && c.VocabSize > 0, "sizes must be positive");
        Require(c.HeadDim is not null || c.HiddenSize % c.NumAttentionHeads == 0, $"hidden size {c.HiddenSize} is not a multiple of {c.NumAttentionHeads} heads");
        Require(c.HeadDimension % 2 == 0, $"head dimension {c.HeadDimension} must be even for rotary embeddings");
        Require(c.NumKeyValueHeads > 0 && c.NumAttentionHeads % c.NumKeyValueHeads == 0,
            $"{c.NumAttentionHeads} attention heads cannot be grouped over {c.NumKeyValueHeads} key/value heads");
        Require(!(c.Family == ModelFamily.Phi3 && c.AttentionBias), "phi3's fused qkv_proj has no bias");
        Require(o.Logits || o.HiddenStates.Count > 0, "the graph must output logits or at least one hidden state");
        foreach (var k in o.HiddenStates)
            Require(k >= 0 && k <= c.NumHiddenLayers, $"hidden state {k} does not exist (0..{c.NumHiddenLayers})");
    }
}

/// <summary>Phi-3 is Mistral with fused projections (as Hugging Face's modular_phi3.py states it): qkv_proj holds
/// the rows of q for all heads, then k, then v; gate_up_proj holds gate, then up.</summary>
public sealed class Phi3DecoderBuilder : DecoderBuilder
{
    internal Phi3DecoderBuilder(DecoderConfig config, DecoderGraphOptions options) : base(config, options) { }

    protected override (string Q, string K, string V) QkvProj(string x, string prefix)
    {
        var qkv = Linear(x, $"{prefix}.qkv_proj.weight", QueriesSize + 2 * KeyValueSize, Config.HiddenSize);
        var parts = B.Node("Split", [qkv, B.Ints(QueriesSize, KeyValueSize, KeyValueSize)], 3, [Attr.Int("axis", -1)]);
        return (parts[0], parts[1], parts[2]);
    }

    protected override (string Gate, string Up) GateUpProj(string x, string prefix)
    {
        var gateUp = Linear(x, $"{prefix}.gate_up_proj.weight", 2L * Config.IntermediateSize, Config.HiddenSize);
        var parts = B.Node("Split", [gateUp, B.Ints(Config.IntermediateSize, Config.IntermediateSize)], 2, [Attr.Int("axis", -1)]);
        return (parts[0], parts[1]);
    }
}
