using System.Text.Json.Nodes;
using AlignThenUnlearn.Evaluation;

namespace AlignThenUnlearn.Jobs.Attacks;

/// <summary>One attack on an unlearned model (one file per kind; `atu attack` lists the kinds with their options classes in AttackCommand.Kinds). Its
/// settings are checked when it is made, so that a bad value is refused before any work.</summary>
public interface IAttack
{
    /// <summary>The kind, as `atu attack KIND` names it and attack.json records it ("quantize").</summary>
    string Kind { get; }

    /// <summary>The column of the robustness table (`atu report --attacks`, the toy's robustness.md), e.g. "nf4-b64".</summary>
    string Label { get; }

    /// <summary>The runs it scores: each run's key suffix in attack.json ("", "_k4", "_mean") and its folder below the
    /// attack's output ("", "k4", "mean").</summary>
    IReadOnlyList<(string Suffix, string Folder)> Runs { get; }

    /// <summary>attack.json's first keys: the attack and its settings.</summary>
    JsonObject Settings();

    /// <summary>Attacks the model of <paramref name="context"/> and scores it, one evaluation per run of <see cref="Runs"/>
    /// in that order (each written to its folder by <see cref="AttackContext.Score"/> or by the job).</summary>
    IReadOnlyList<RunEvaluation> Score(AttackContext context);
}
