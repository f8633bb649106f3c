using AlignThenUnlearn.Models;
using AlignThenUnlearn.Models.Checkpoints;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Evaluation.Attacks;

/// <summary>The cast attack: the trained weights as a deployment that casts the model to half precision holds them.
/// Unlearning at RWKU's learning rates moves a weight by about one f16 step, so rounding can undo part of it (trained
/// weights are otherwise scored in the f32 they were trained in, as RWKU scores after <c>model.float()</c>).
/// <c>f16</c> writes an f16 file (round to nearest even): an f16 artifact runs it in its f16 graph, f16 activations and
/// cache included, exactly as deployed; an f32 artifact widens it exactly. <c>bf16</c> writes the values rounded to
/// bf16 (nearest even) in an f32 file, run in f32: the graphs have no bf16 arithmetic, so only the weights are cast.</summary>
public static class PrecisionCast
{
    public const string F16 = "f16", BF16 = "bf16";
    public static readonly IReadOnlyList<string> Kinds = [F16, BF16];

    /// <summary>The attack's label in reports and the robustness table.</summary>
    public static string Label(string kind) => $"cast-{Check(kind)}";

    public static string Check(string kind) =>
        Kinds.Contains(kind) ? kind : throw new ArgumentException($"cast to '{kind}': expected {string.Join(" or ", Kinds)}");

    /// <summary>Writes every parameter of a decoder of <paramref name="config"/> from <paramref name="source"/> (any floating
    /// dtype, names and shapes checked) to <paramref name="output"/>, cast to <paramref name="kind"/>.</summary>
    public static void Write(DecoderConfig config, string source, string kind, string output)
    {
        Check(kind);
        using var checkpoint = SafetensorsCheckpoint.Open(source);
        var dtype = kind == F16 ? DataType.Float16 : DataType.Float;
        var specs = DecoderBuilder.Parameters(config, dtype);
        ArtifactExporter.CheckTensors(checkpoint, specs);
        ArtifactExporter.WriteWeights(checkpoint, specs, output, dtype, transform: kind == BF16 ? RoundToBFloat16 : null);
    }

    /// <summary>Each value replaced by the nearest bf16 value (ties to even), held in float32 exactly.</summary>
    public static void RoundToBFloat16(Span<float> values)
    {
        for (int i = 0; i < values.Length; i++) values[i] = ElementConversion.SingleFromBFloat16Bits(ElementConversion.BFloat16Bits(values[i]));
    }
}
