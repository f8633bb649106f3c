using System.Text.Json.Nodes;
using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.Evaluation.Attacks;

namespace AlignThenUnlearn.Jobs.Attacks;

/// <summary>`cast`: every weight rounded to f16 or bf16 (<see cref="PrecisionCast"/>), as a deployment that casts the
/// model holds it, scored as the quantisation attack is.</summary>
public sealed class CastAttack : IAttack
{
    public const string Name = "cast";
    readonly string _to;

    public CastAttack(string to)
    {
        Label = PrecisionCast.Label(to);   // refuses a dtype other than f16 and bf16
        _to = to;
    }

    public string Kind => Name;
    public string Label { get; }
    public IReadOnlyList<(string Suffix, string Folder)> Runs { get; } = [("", "")];
    public JsonObject Settings() => new() { ["attack"] = Name, ["dtype"] = _to };

    public IReadOnlyList<RunEvaluation> Score(AttackContext c)
    {
        var cast = c.StagedFile("cast.safetensors");
        PrecisionCast.Write(c.Artifact.Config, c.WeightsFile, _to, cast);
        c.Reporter.Done($"cast '{c.WeightsFile}' to {_to}; scoring the cast model");
        return [c.Score(cast, "", c.Name)];
    }
}
