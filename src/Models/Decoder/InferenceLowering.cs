using AlignThenUnlearn.Onnx;
using Onnx;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Models;

/// <summary>What the inference lowering computes.</summary>
public sealed record InferenceGraphOptions
{
    /// <summary>Float (default) or Float16 (for CUDA; norm statistics and softmax still accumulate in float32).</summary>
    public DataType ElementType { get; init; } = DataType.Float;

    /// <summary>Positions the rotary tables cover (past plus new tokens).</summary>
    public int MaxSequenceLength { get; init; } = 4096;

    /// <summary>Hidden states to output as well (Hugging Face indexing), for inspection and comparisons.</summary>
    public IReadOnlyList<int> HiddenStates { get; init; } = [];

    /// <summary>Null: every linear layer is a float MatMul. Else the decoder layers' projections
    /// (<see cref="ParameterSpec.Projection"/>) are com.microsoft MatMulNBits, 4-bit with blocks of this many values along
    /// the input dimension, and the weights callback is asked for each projection's packed parts
    /// (<see cref="Quantization.MatMulNBitsWeights.Specs"/>) instead of the float matrix.</summary>
    public int? Int4BlockSize { get; init; }

    /// <summary>MatMulNBits' accuracy_level: 0 (unset: the activations stay float; the default here, so the int4 graph computes
    /// what the dequantised weights in float do) to 4 (activations quantised to int8 blockwise, faster on CPUs).</summary>
    public int Int4AccuracyLevel { get; init; }
}

/// <summary>The inference lowering: opset-23 fused operators (RMSNormalization, RotaryEmbedding, Attention with
/// grouped KV heads) and a KV cache, with the input and output names ONNX Runtime GenAI's decoder expects:
/// <c>input_ids</c>, <c>attention_mask</c> [batch, total_seq] (1 = real token; left padding for batches),
/// <c>position_ids</c>, <c>past_key_values.{i}.key/value</c> [batch, kv_heads, past_seq, head_dim] in;
/// <c>logits</c> and <c>present.{i}.key/value</c> out. Weights are initializers supplied by the caller (inline
/// data for tests, external data into the artifact's weights file for exports).</summary>
public sealed class InferenceLowering(InferenceGraphOptions options, Func<ParameterSpec, TensorProto> weights) : DecoderLowering
{
    public const string AttentionMask = "attention_mask", PositionIds = "position_ids";
    /// <summary>Optional int64 input [1]: the logits are those of positions <c>logits_from</c>.. of the pass, as a Python
    /// slice start (-1: the last position only; 0, its initializer's value when not fed: every position). Generation feeds
    /// -1, so a prompt's pass computes and returns [batch, 1, vocab] instead of [batch, seq, vocab]; scoring leaves it. It
    /// feeds Slice's starts as it is: arithmetic on it would run on the device and be copied back for the Slice.</summary>
    public const string LogitsFrom = "logits_from";
    /// <summary>The logits' second dimension: <see cref="Sequence"/> or the kept positions.</summary>
    public static readonly Dim LogitsSequence = "logits_sequence_length";
    public static string PastKey(int layer) => $"past_key_values.{layer}.key";
    public static string PastValue(int layer) => $"past_key_values.{layer}.value";
    public static string PresentKey(int layer) => $"present.{layer}.key";
    public static string PresentValue(int layer) => $"present.{layer}.value";
    public static readonly Dim Batch = "batch_size", Sequence = "sequence_length", PastSequence = "past_sequence_length", TotalSequence = "total_sequence_length";

    string _positionIds = "", _mask = "", _cosCache = "", _sinCache = "", _logits = "";
    readonly Dictionary<int, string> _hiddenStates = [];

    public override DataType ElementType => options.ElementType;
    public override int OpsetVersion => Opset.Fused;

    public override (int Layers, bool FinalNorm, bool Logits) Extent(DecoderConfig config) => (config.NumHiddenLayers, true, true);

    public override string Begin(Func<string, string> embedTokens)
    {
        var ids = B.Input(DecoderGraph.InputIds, DataType.Int64, Batch, Sequence);
        var attentionMask = B.Input(AttentionMask, DataType.Int64, Batch, TotalSequence);
        _positionIds = B.Input(PositionIds, DataType.Int64, Batch, Sequence);
        _mask = AttendableKeys(ids, attentionMask);
        RotaryCaches();
        return embedTokens(ids);
    }

    public override void DeclareParameter(ParameterSpec spec)
    {
        if (spec.Projection && options.Int4BlockSize is int blockSize)
        {
            var (packed, scales, zeroPoints) = Quantization.MatMulNBitsWeights.Specs(spec, blockSize, ElementType);
            foreach (var part in new[] { packed, scales, zeroPoints }) Initializer(part);
            return;
        }
        Initializer(spec);
    }

    public override string Linear(string x, ParameterSpec weight)
    {
        if (!weight.Projection || options.Int4BlockSize is not int blockSize) return base.Linear(x, weight);
        var (packed, scales, zeroPoints) = Quantization.MatMulNBitsWeights.Specs(weight, blockSize, ElementType);
        return B.Node("MatMulNBits", [x, packed.Name, scales.Name, zeroPoints.Name], 1,
            [Attr.Int("K", weight.Shape[1]), Attr.Int("N", weight.Shape[0]), Attr.Int("bits", Quantization.MatMulNBitsWeights.Bits),
             Attr.Int("block_size", blockSize), Attr.Int("accuracy_level", options.Int4AccuracyLevel)], domain: "com.microsoft")[0];
    }

    void Initializer(ParameterSpec spec)
    {
        var tensor = weights(spec);
        if ((DataType)tensor.DataType != spec.ElementType || !tensor.Dims.SequenceEqual(spec.Shape))
            throw new ArgumentException($"weight '{spec.Name}' is {(DataType)tensor.DataType}[{string.Join(",", tensor.Dims)}], the graph needs {spec}");
        tensor.Name = B.Claim(spec.Name);
        B.Graph.Initializer.Add(tensor);
    }

    public override string RmsNorm(string x, string weight) =>
        B.Op("RMSNormalization", [x, weight], Attr.Int("axis", -1), Attr.Float("epsilon", (float)Config.RmsNormEps), Attr.Int("stash_type", 1));

    public override string SelfAttention(string q, string k, string v, int layer)
    {
        q = Rotary(q, Config.NumAttentionHeads);
        k = Rotary(k, Config.NumKeyValueHeads);
        var pastKey = B.Input(PastKey(layer), ElementType, Batch, Config.NumKeyValueHeads, PastSequence, HeadDim);
        var pastValue = B.Input(PastValue(layer), ElementType, Batch, Config.NumKeyValueHeads, PastSequence, HeadDim);
        var outputs = B.Node("Attention", [q, k, v, _mask, pastKey, pastValue], 3,
            [Attr.Int("q_num_heads", Config.NumAttentionHeads), Attr.Int("kv_num_heads", Config.NumKeyValueHeads), Attr.Float("scale", (float)(1 / Math.Sqrt(HeadDim)))],
            outputNames: [$"model.layers.{layer}.self_attn.attention", PresentKey(layer), PresentValue(layer)]);
        B.Output(PresentKey(layer), ElementType, Batch, Config.NumKeyValueHeads, TotalSequence, HeadDim);
        B.Output(PresentValue(layer), ElementType, Batch, Config.NumKeyValueHeads, TotalSequence, HeadDim);
        return outputs[0];
    }

    public override string LogitPositions(string h)
    {
        var from = B.Input(LogitsFrom, DataType.Int64, 1);
        B.Graph.Initializer.Add(Tensors.FromInt64(LogitsFrom, [0], 1));
        // h[:, from:] (lm_head is per position, so the kept logits are those of the whole pass).
        return B.Op("Slice", h, from, B.Ints(long.MaxValue), B.Ints(1));
    }

    public override void Logits(string value)
    {
        _logits = B.Node("Identity", [value], 1, name: "Logits", outputNames: [DecoderGraph.LogitsName])[0];
        B.Output(_logits, ElementType, Batch, LogitsSequence, Config.VocabSize);
    }

    public override void HiddenState(int index, string value)
    {
        if (!options.HiddenStates.Contains(index)) return;
        _hiddenStates[index] = B.Node("Identity", [value], 1, name: "HiddenState", outputNames: [DecoderGraph.HiddenStateName(index)])[0];
        B.Output(_hiddenStates[index], ElementType, Batch, Sequence, Config.HiddenSize);
    }

    public override DecoderGraph Finish(IReadOnlyList<ParameterSpec> parameters, int layers)
    {
        // Graph outputs in GenAI's order: logits first, then the presents layer by layer.
        var outputs = B.Graph.Output.OrderBy(o => o.Name == DecoderGraph.LogitsName ? 0 : 1).ToList();
        B.Graph.Output.Clear();
        B.Graph.Output.AddRange(outputs);
        return new DecoderGraph(B.ToModel(), parameters, layers, _hiddenStates, _logits);
    }

    /// <summary>RotaryEmbedding on [batch, seq, heads*head_dim] with the cos/sin caches indexed by position_ids.</summary>
    string Rotary(string x, int heads) =>
        B.Op("RotaryEmbedding", [x, _cosCache, _sinCache, _positionIds], Attr.Int("num_heads", heads), Attr.Int("interleaved", 0));

    void RotaryCaches()
    {
        var invFreq = InverseFrequencies();
        int positions = options.MaxSequenceLength, half = HeadDim / 2;
        var cos = new double[positions * half];
        var sin = new double[positions * half];
        for (int p = 0; p < positions; p++)
            for (int j = 0; j < half; j++)
            {
                double angle = p * invFreq[j];
                cos[p * half + j] = Math.Cos(angle);
                sin[p * half + j] = Math.Sin(angle);
            }
        _cosCache = B.Initializer(Cache("cos_cache", cos, positions, half));
        _sinCache = B.Initializer(Cache("sin_cache", sin, positions, half));
    }

    TensorProto Cache(string name, double[] values, int rows, int columns) => ElementType switch
    {
        DataType.Float => Tensors.FromFloat(name, values.Select(v => (float)v).ToArray(), rows, columns),
        DataType.Float16 => Tensors.Raw(name, DataType.Float16, System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.Select(v => (Half)v).ToArray().AsSpan()), rows, columns),
        _ => throw new ArgumentException($"the inference lowering runs in float or float16, not {ElementType}"),
    };

    /// <summary>[batch, 1, seq, total_seq] booleans: key slot j is visible from query slot i = past + i' when j &lt;= i (within
    /// the sliding window) and the key is a real token. A query always sees itself, so padded rows stay finite.</summary>
    string AttendableKeys(string ids, string attentionMask)
    {
        var total = B.Gather(B.Shape(attentionMask), B.IntScalar(1));
        var seq = B.Gather(B.Shape(ids), B.IntScalar(1));
        var past = B.Sub(total, seq);
        string keys = B.Unsqueeze(B.Op("Range", B.IntScalar(0), total, B.IntScalar(1)), 0);            // [1, total]
        string queries = B.Unsqueeze(B.Op("Range", past, total, B.IntScalar(1)), 1);                   // [seq, 1]
        var causal = B.Op("LessOrEqual", keys, queries);
        if (Config.SlidingWindow is int window)
            causal = B.Op("And", causal, B.Op("Greater", keys, B.Sub(queries, B.IntScalar(window))));
        var real = B.Unsqueeze(B.Cast(attentionMask, DataType.Bool), 1, 2);                           // [batch, 1, 1, total]
        var visible = B.Op("And", causal, B.Op("Or", real, B.Op("Equal", keys, queries)));
        return visible;
    }
}
