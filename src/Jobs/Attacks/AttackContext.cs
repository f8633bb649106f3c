using System.Text.Json.Nodes;
using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Runtime;

namespace AlignThenUnlearn.Jobs.Attacks;

/// <summary>What an attack works on: the model (the artifact and the attacked weights), the targets and how their probes
/// are scored, where it stages its files, and attack.json's record for figures of its own.</summary>
public sealed class AttackContext
{
    public required ArtifactModel Artifact { get; init; }
    public required ExecutionDevice Device { get; init; }
    /// <summary>The attacked weights (adapters merged in, when given); null: the artifact's own.</summary>
    public required string? Weights { get; init; }
    public required RwkuDataset Dataset { get; init; }
    public required IReadOnlyList<RwkuTarget> Targets { get; init; }
    /// <summary>The targets' probes, as <see cref="Options"/> asks for them.</summary>
    public required IReadOnlyList<RwkuTargetData> Data { get; init; }
    public required RwkuEvaluationOptions Options { get; init; }
    /// <summary>The attacked model's name in the reports (the attack's label included).</summary>
    public required string Name { get; init; }
    public required string? Series { get; init; }
    /// <summary>Scores a rewritten weights file into the run folder below the attack's output and writes its reports.</summary>
    public required Func<string, string, string, RunEvaluation> Scorer { get; init; }
    /// <summary>A folder beside the attack's output (on its file system, never in the system's temporary folder).</summary>
    public required string Staging { get; init; }
    public required JsonObject Record { get; init; }
    public required IJobReporter Reporter { get; init; }

    /// <summary>The attacked weights as a file (the artifact's own when none were given).</summary>
    public string WeightsFile => Weights ?? Artifact.PathOf(ArtifactExporter.WeightsFile);

    public string StagedFile(string name) => Path.Combine(Staging, name);

    /// <summary><paramref name="weights"/> scored into the run folder <paramref name="folder"/> (relative to the attack's
    /// output; "" for the output itself) under <paramref name="name"/>.</summary>
    public RunEvaluation Score(string weights, string folder, string name) => Scorer(weights, folder, name);
}
