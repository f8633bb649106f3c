using AlignThenUnlearn.Onnx;
using Onnx;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Models;

/// <summary>The training lowering: primitive ops that the autodiff has rules for, parameters as graph inputs,
/// positions 0..seq-1 (sequences are right-padded), optional truncation after the last hidden state needed.</summary>
public sealed class TrainingLowering(DecoderGraphOptions options) : DecoderLowering
{
    readonly Dictionary<int, string> _hiddenStates = [];
    readonly List<ParameterSpec> _adapters = [];
    string? _logits;
    // Shared by every layer, computed once per graph from the sequence length.
    string _cos = "", _sin = "", _attendable = "";

    public override DataType ElementType => options.ElementType;

    public override (int Layers, bool FinalNorm, bool Logits) Extent(DecoderConfig config)
    {
        if (!options.Logits && options.HiddenStates.Count == 0) throw new ArgumentException($"{config.ModelType} decoder: the graph must output logits or at least one hidden state");
        foreach (var k in options.HiddenStates)
            if (k < 0 || k > config.NumHiddenLayers) throw new ArgumentException($"{config.ModelType} decoder: hidden state {k} does not exist (0..{config.NumHiddenLayers})");
        if (options.Lora is { } lora)
        {
            lora.Validate();
            lora.Layers?.Check(config);
        }
        var (layers, finalNorm) = options.Extent(config);
        return (layers, finalNorm, options.Logits);
    }

    public override string Begin(Func<string, string> embedTokens)
    {
        var h = options.InputsEmbeds
            ? B.Input(DecoderGraph.InputsEmbeds, ElementType, DecoderGraph.Batch, DecoderGraph.Sequence, Config.HiddenSize)
            : embedTokens(B.Input(DecoderGraph.InputIds, DataType.Int64, DecoderGraph.Batch, DecoderGraph.Sequence));
        PositionTables(h);
        return h;
    }

    public override void DeclareParameter(ParameterSpec spec) => B.Input(spec.Name, spec.ElementType, spec.Shape.Select(d => (Dim)d).ToArray());

    /// <summary>w * x / sqrt(mean(x^2) + eps), the statistics in float32 (or float64) whatever the run type.</summary>
    public override string RmsNorm(string x, string weight)
    {
        var xc = ToComputeType(x);
        var variance = B.ReduceMean(B.Mul(xc, xc), [-1]);
        var normed = B.Div(xc, B.Sqrt(B.Add(variance, B.Scalar(Config.RmsNormEps, ComputeType))));
        return B.Mul(weight, ToRunType(normed));
    }

    public override string SelfAttention(string q, string k, string v, int layer)
    {
        q = ApplyRotary(SplitHeads(q, Config.NumAttentionHeads));
        k = RepeatKv(ApplyRotary(SplitHeads(k, Config.NumKeyValueHeads)));
        v = RepeatKv(SplitHeads(v, Config.NumKeyValueHeads));
        var scores = B.Mul(B.MatMul(q, B.Transpose(k, 0, 1, 3, 2)), B.Scalar(1 / Math.Sqrt(HeadDim), ElementType));
        var context = B.MatMul(CausalSoftmax(scores), v);                                         // [batch, heads, seq, head_dim]
        return B.Reshape(B.Transpose(context, 0, 2, 1, 3), 0, 0, Config.NumAttentionHeads * HeadDim);
    }

    /// <summary>With LoRA on this projection: y + (alpha / rank) * (x A^T) B^T, A and B graph inputs (x A^T first: rank-sized).</summary>
    public override string Adapt(string x, string y, string module, int layer, long outFeatures, long inFeatures)
    {
        if (options.Lora is not { } lora || !lora.Adapts(layer, module[(module.LastIndexOf('.') + 1)..])) return y;
        var a = new ParameterSpec(LoraOptions.AName(module), [lora.Rank, inFeatures], ElementType);
        var b = new ParameterSpec(LoraOptions.BName(module), [outFeatures, lora.Rank], ElementType);
        foreach (var spec in new[] { a, b })
        {
            DeclareParameter(spec);
            _adapters.Add(spec);
        }
        var down = B.MatMul(x, B.Transpose(a.Name, 1, 0));
        var up = B.MatMul(down, B.Transpose(b.Name, 1, 0));
        return B.Add(y, B.Mul(up, B.Scalar(lora.Scale, ElementType)));
    }

    public override void HiddenState(int index, string value)
    {
        if (!options.HiddenStates.Contains(index)) return;
        var name = B.Node("Identity", [value], 1, name: "HiddenState", outputNames: [DecoderGraph.HiddenStateName(index)])[0];
        B.Output(name, ElementType, DecoderGraph.Batch, DecoderGraph.Sequence, Config.HiddenSize);
        _hiddenStates[index] = name;
    }

    public override void Logits(string value)
    {
        _logits = B.Node("Identity", [value], 1, name: "Logits", outputNames: [DecoderGraph.LogitsName])[0];
        B.Output(_logits, ElementType, DecoderGraph.Batch, DecoderGraph.Sequence, Config.VocabSize);
    }

    public override DecoderGraph Finish(IReadOnlyList<ParameterSpec> parameters, int layers) =>
        new(B.ToModel(), parameters, layers, _hiddenStates, _logits) { Adapters = [.. _adapters] };

    /// <summary>[batch, seq, heads * head_dim] -> [batch, heads, seq, head_dim].</summary>
    string SplitHeads(string x, int heads) => B.Transpose(B.Reshape(x, 0, 0, heads, HeadDim), 0, 2, 1, 3);

    /// <summary>Grouped KV heads: each key/value head serves <see cref="DecoderConfig.GroupSize"/> query heads in a row.</summary>
    string RepeatKv(string x)
    {
        int group = Config.GroupSize;
        if (group == 1) return x;
        var expanded = B.Expand(B.Unsqueeze(x, 2), B.Ints(1, 1, group, 1, 1));    // [batch, kv_heads, group, seq, head_dim]
        return Declare(B.Reshape(expanded, 0, Config.NumAttentionHeads, -1, HeadDim), ElementType,
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

    /// <summary>Rotary tables cos/sin [seq, head_dim] for positions 0..seq-1, and the [seq, seq] mask of keys each
    /// query may attend to (key &lt;= query, within the sliding window if any).</summary>
    void PositionTables(string hidden)
    {
        var seqLength = B.Gather(B.Shape(hidden), B.IntScalar(1));
        var positions = Declare(B.Op("Range", B.IntScalar(0), seqLength, B.IntScalar(1)), DataType.Int64, DecoderGraph.Sequence);
        string keys = B.Unsqueeze(positions, 0), queries = B.Unsqueeze(positions, 1);
        _attendable = B.Op("LessOrEqual", keys, queries);
        if (Config.SlidingWindow is int window)
            _attendable = B.Op("And", _attendable, B.Op("Greater", keys, B.Sub(queries, B.Ints(window))));

        var t = ComputeType;
        var invFreq = t == DataType.Double
            ? B.Initializer(Tensors.FromDouble("inv_freq", InverseFrequencies(), HeadDim / 2))
            : B.Initializer(Tensors.FromFloat("inv_freq", InverseFrequencies().Select(f => (float)f).ToArray(), HeadDim / 2));
        var freqs = B.Mul(B.Unsqueeze(B.Cast(positions, t), 1), B.Unsqueeze(invFreq, 0));   // [seq, head_dim / 2]
        var angles = B.Concat(-1, freqs, freqs);
        _cos = Declare(ToRunType(B.Op("Cos", angles)), ElementType, DecoderGraph.Sequence, HeadDim);
        _sin = Declare(ToRunType(B.Op("Sin", angles)), ElementType, DecoderGraph.Sequence, HeadDim);
    }

    static double Lowest(DataType type) => type switch
    {
        DataType.Double => double.MinValue,
        DataType.Float => float.MinValue,
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "no mask value for this type"),
    };
}
