using AlignThenUnlearn.Models.Checkpoints;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Models.Quantization;

public enum QuantizationMethod { RoundToNearest, NormalFloat4 }

/// <summary>How weights are quantised: round-to-nearest (<see cref="RoundToNearest"/>) to <see cref="Bits"/> bits with
/// one scale per group of <see cref="GroupSize"/> consecutive values of a row (the input dimension; 0: the whole row, one
/// scale per output channel), symmetric or asymmetric; or NF4 (<see cref="NormalFloat4"/>, blocks of 64).</summary>
public sealed record QuantizationScheme
{
    public QuantizationMethod Method { get; init; } = QuantizationMethod.RoundToNearest;
    public int Bits { get; init; } = 4;
    public int GroupSize { get; init; }
    public bool Symmetric { get; init; }

    public static QuantizationScheme Rtn(int bits, int groupSize, bool symmetric) =>
        new QuantizationScheme { Bits = bits, GroupSize = groupSize, Symmetric = symmetric }.Validated();

    public static readonly QuantizationScheme Nf4 = new() { Method = QuantizationMethod.NormalFloat4, Bits = 4, GroupSize = NormalFloat4.BlockSize };

    /// <summary>A short name for tables and file names: rtn-int4-g128-asym, rtn-int8-channel-sym, nf4-b64.</summary>
    public string Label => Method == QuantizationMethod.NormalFloat4 ? $"nf4-b{GroupSize}"
        : $"rtn-int{Bits}-{(GroupSize == 0 ? "channel" : $"g{GroupSize}")}-{(Symmetric ? "sym" : "asym")}";

    public QuantizationScheme Validated()
    {
        if (Method == QuantizationMethod.NormalFloat4)
            return Bits == 4 && GroupSize == NormalFloat4.BlockSize ? this
                : throw new ArgumentException($"NF4 is 4-bit with blocks of {NormalFloat4.BlockSize} (as bitsandbytes), not {Bits}-bit with groups of {GroupSize}");
        if (Bits is < 2 or > 8) throw new ArgumentException($"round-to-nearest quantises to 2..8 bits, not {Bits}");
        if (GroupSize < 0) throw new ArgumentException($"group size {GroupSize}: expected 0 (per output channel) or more");
        return this;
    }
}

/// <summary>Quantise-dequantise of weight matrices: what a model that was quantised and then run in float computes.
/// Only the decoder layers' linear projections (<see cref="ParameterSpec.Projection"/>: attention q/k/v/o, MLP
/// gate/up/down, phi3's fused qkv_proj and gate_up_proj) are quantised; embeddings, norms, biases and lm_head stay as
/// they are, as weight-only 4-bit deployments (ONNX Runtime GenAI's int4 builder, GPTQ/AWQ) leave them.</summary>
public static class WeightQuantization
{
    /// <summary>Replaces the row-major [rows, columns] matrix <paramref name="values"/> by its dequantised quantisation.</summary>
    public static void QuantizeDequantize(Span<float> values, int columns, QuantizationScheme scheme)
    {
        if (columns < 1 || values.Length % columns != 0) throw new ArgumentException($"{values.Length} values are no matrix of {columns} columns");
        if (scheme.Method == QuantizationMethod.NormalFloat4)
        {
            // bitsandbytes blocks the flattened tensor, whatever its rows.
            Span<byte> codes = stackalloc byte[NormalFloat4.BlockSize];
            for (int first = 0; first < values.Length; first += NormalFloat4.BlockSize)
            {
                var block = values.Slice(first, Math.Min(NormalFloat4.BlockSize, values.Length - first));
                float absMax = NormalFloat4.Quantize(block, codes);
                for (int i = 0; i < block.Length; i++) block[i] = NormalFloat4.Dequantize(codes[i], absMax);
            }
            return;
        }
        int group = scheme.GroupSize == 0 ? columns : scheme.GroupSize;
        var groupCodes = new byte[Math.Min(group, columns)];
        for (int row = 0; row < values.Length; row += columns)
            for (int first = 0; first < columns; first += group)
            {
                var part = values.Slice(row + first, Math.Min(group, columns - first));
                var q = RoundToNearest.Quantize(part, scheme.Bits, scheme.Symmetric, groupCodes);
                for (int i = 0; i < part.Length; i++) part[i] = q.Dequantize(groupCodes[i]);
            }
    }

    /// <summary>Writes every parameter of <paramref name="specs"/> from <paramref name="weights"/> to one safetensors file in
    /// <paramref name="elementType"/> (f32 or f16), the projections quantised and dequantised by <paramref name="scheme"/>,
    /// the rest as they are. Returns the names of the quantised tensors.</summary>
    public static IReadOnlyList<string> WriteQuantized(SafetensorsCheckpoint weights, IReadOnlyList<ParameterSpec> specs, string path,
        DataType elementType, QuantizationScheme scheme)
    {
        scheme.Validated();
        var dtype = elementType == DataType.Float ? SafetensorsDType.F32 : elementType == DataType.Float16 ? SafetensorsDType.F16
            : throw new ArgumentException($"quantised weights are written as f32 or f16, not {elementType}");
        var quantized = new List<string>();
        using var writer = SafetensorsWriter.Create(path, specs.Select(s => new TensorSpec(s.Name, dtype, s.Shape)).ToList(),
            new Dictionary<string, string> { ["format"] = "pt", ["quantization"] = scheme.Label });
        foreach (var spec in specs)
        {
            var values = weights.ReadSingles(spec.Name);
            if (spec.Projection)
            {
                QuantizeDequantize(values, (int)spec.Shape[^1], scheme);
                quantized.Add(spec.Name);
            }
            writer.AppendValues(values);
        }
        writer.Commit();
        return quantized;
    }
}
