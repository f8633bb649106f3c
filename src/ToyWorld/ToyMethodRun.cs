using AlignThenUnlearn.Evaluation;

namespace AlignThenUnlearn.ToyWorld;

/// <summary>One evaluation of a toy model: RWKU's scores on the unlearned person's probes (forget, neighbour, the
/// world's multiple-choice utility questions) and the toy run's other utility figures (null where not measured).</summary>
public sealed record ToyScores(RwkuScores Rwku, double? RetainQA = null, double? Fluency = null, double? Mia = null);

/// <summary>A kept checkpoint of one method's run on one person: its label (a threshold name or <see cref="ToyMethodRun.FinalLabel"/>),
/// its scores, the weights file that `atu eval --weights` accepts for it, and the stage-table row it was kept at (null: not
/// from a stage table, as ICU's).</summary>
public sealed record ToyCheckpoint(string Label, ToyScores Scores, string Weights, int? Stage = null);

/// <summary>One method's run on one person (<see cref="Method"/> is the report's label: "ATU", "GA", "GA (L)" ...): the model
/// before, then the kept checkpoints from the highest threshold to the lowest, and last the end of the run; <see cref="Stages"/>,
/// the run's stage table (every evaluation point; null or empty for a method that trains nothing).</summary>
public sealed record ToyMethodRun(string Method, RwkuTarget Target, ToyScores Before, IReadOnlyList<ToyCheckpoint> Checkpoints,
    IReadOnlyList<AlignThenUnlearn.Unlearning.StageRecord>? Stages = null)
{
    public const string FinalLabel = "final";

    /// <summary>The strongest checkpoint, as the paper's Table 1 reads it: the one named by the lowest threshold the
    /// forget average crossed; the end of the run when it crossed none.</summary>
    public ToyCheckpoint Strongest => Checkpoints.LastOrDefault(c => c.Label != FinalLabel) ?? Checkpoints[^1];
}
