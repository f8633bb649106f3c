namespace AlignThenUnlearn.Evaluation.Attacks;

/// <summary>How much of the forgotten knowledge an attack brings back: forget All (mean of FB, QA, AA recall) before
/// unlearning, after unlearning and after the attack, each averaged over the attacked run's targets, and
/// recovery = (after attack - after unlearning) / (before - after unlearning): 0 when the attack brings nothing back,
/// 1 when it undoes the unlearning, negative when it forgets further.</summary>
public sealed record AttackRecovery(double Before, double Unlearned, double Attacked)
{
    /// <summary>Null when unlearning changed nothing (before = after unlearning): there is nothing to recover.</summary>
    public double? Recovery => Before == Unlearned ? null : (Attacked - Unlearned) / (Before - Unlearned);

    /// <summary>The figures of <paramref name="attacked"/> against earlier evaluations (results.json of `atu eval`), which
    /// must hold every target the attack was evaluated on; <paramref name="beforePath"/> and
    /// <paramref name="unlearnedPath"/> name them in errors.</summary>
    public static AttackRecovery Of(RunSummary before, string beforePath, RunSummary unlearned, string unlearnedPath, RunSummary attacked) =>
        new(ForgetAll(before, beforePath, attacked), ForgetAll(unlearned, unlearnedPath, attacked), ForgetAll(attacked, "the attacked run", attacked));

    static double ForgetAll(RunSummary run, string path, RunSummary attacked)
    {
        var byNumber = run.Targets.ToDictionary(t => t.Number);
        var scores = attacked.Targets.Select(t => byNumber.TryGetValue(t.Number, out var s) ? s.Scores
            : throw new InvalidDataException($"'{path}' has no scores for target {t.Number} ({t.Name}), which the attack was evaluated on")).ToList();
        return RwkuScores.MeanOf(scores).ForgetAll
            ?? throw new InvalidDataException($"'{path}' has no forget FB, QA and AA scores for the attacked targets");
    }
}
