using System.Text.Json.Nodes;
using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Models.Checkpoints;
using AlignThenUnlearn.Models.Quantization;
using AlignThenUnlearn.Runtime;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Jobs.Attacks;

/// <summary>`quantize`: the decoder layers' projections quantised (RTN int8/int4 or NF4) and dequantised back, scored as
/// `atu eval` scores.</summary>
public sealed class QuantizeAttack(QuantizationScheme scheme) : IAttack
{
    public const string Name = "quantize";
    public string Kind => Name;
    public string Label => scheme.Label;
    public IReadOnlyList<(string Suffix, string Folder)> Runs { get; } = [("", "")];
    public JsonObject Settings() => new() { ["attack"] = Name, ["scheme"] = scheme.Label };

    /// <summary>The scheme of <paramref name="schemeName"/> (rtn or nf4) and its settings; the group size defaults to per
    /// output channel for int8 and 128 for int4.</summary>
    public static QuantizationScheme SchemeOf(string schemeName, int bits, int? groupSize, bool symmetric) => schemeName switch
    {
        "rtn" when bits is 8 or 4 => QuantizationScheme.Rtn(bits, groupSize ?? (bits == 8 ? 0 : 128), symmetric),
        "rtn" => throw new ArgumentException($"--bits {bits}: expected 8 or 4"),
        "nf4" when bits == 4 && (groupSize ?? NormalFloat4.BlockSize) == NormalFloat4.BlockSize && !symmetric => QuantizationScheme.Nf4,
        "nf4" => throw new ArgumentException($"--scheme nf4 is 4-bit with blocks of {NormalFloat4.BlockSize} and its own absmax scaling (--bits 4, no --group-size other than 64, no --symmetric)"),
        _ => throw new ArgumentException($"--scheme {schemeName}: expected rtn or nf4"),
    };

    public IReadOnlyList<RunEvaluation> Score(AttackContext c)
    {
        var quantized = c.StagedFile("quantized.safetensors");
        int count = WriteQuantized(c.Artifact, c.WeightsFile, scheme, quantized);
        c.Reporter.Done($"quantised {count} projection weights of '{c.WeightsFile}' ({scheme.Label}); scoring the dequantised model");
        return [c.Score(quantized, "", c.Name)];
    }

    /// <summary>The projections of <paramref name="source"/> quantised and dequantised by <paramref name="scheme"/>, every
    /// parameter written to <paramref name="output"/> in the artifact's dtype; returns how many weights were quantised.</summary>
    public static int WriteQuantized(ArtifactModel artifact, string source, QuantizationScheme scheme, string output)
    {
        var runType = artifact.Manifest.Dtype == "f16" ? DataType.Float16 : DataType.Float;
        using var checkpoint = SafetensorsCheckpoint.Open(source);
        var specs = DecoderBuilder.Parameters(artifact.Config, runType);
        ArtifactExporter.CheckTensors(checkpoint, specs);
        return WeightQuantization.WriteQuantized(checkpoint, specs, output, runType, scheme).Count;
    }
}
