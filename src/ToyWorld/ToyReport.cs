using AlignThenUnlearn.Evaluation;
using System.Globalization;
using System.Text;

namespace AlignThenUnlearn.ToyWorld;

/// <summary>One unlearned person's evaluations: the model before, then the checkpoints named by the thresholds the run
/// crossed, from the highest threshold to the lowest, and last the end of the schedule (<see cref="FinalLabel"/>).
/// Every evaluation scores that person's forget and neighbour probes and the multiple-choice utility questions of the
/// whole world.</summary>
public sealed record UnlearnedPerson(RwkuTarget Target, RwkuScores Before, IReadOnlyList<(string Label, RwkuScores Scores)> Checkpoints)
{
    public const string FinalLabel = "final";

    /// <summary>The strongest checkpoint, as the paper's Table 1 reads it: the one named by the lowest threshold the
    /// forget average crossed (below 20 when it got there); the end of the schedule when it crossed none.</summary>
    public (string Label, RwkuScores Scores) Strongest =>
        Checkpoints.LastOrDefault(c => c.Label != FinalLabel) is { Label: not null } named ? named : Checkpoints[^1];
}

/// <summary>The acceptance figures of one person at the strongest checkpoint (issue 7): forget average at most half of
/// its value before, neighbour average at least 75% of its value before, utility accuracy down by at most 5 points.</summary>
public sealed record ToyAcceptance(string Person, string Checkpoint, double ForgetBefore, double ForgetAfter, double NeighbourBefore,
    double NeighbourAfter, double UtilityBefore, double UtilityAfter)
{
    public double ForgetRatio => ForgetAfter / ForgetBefore;
    public double NeighbourKept => NeighbourAfter / NeighbourBefore;
    public double UtilityDropPoints => 100 * (UtilityBefore - UtilityAfter);
    /// <summary>The limits themselves pass (with a margin for rounding: 0.6 / 0.8 is 0.7499999999999999 in doubles).</summary>
    public bool Passes => ForgetRatio <= 0.5 + Slack && NeighbourKept >= 0.75 - Slack && UtilityDropPoints <= 5 + Slack;

    const double Slack = 1e-9;

    public static ToyAcceptance Of(UnlearnedPerson p)
    {
        var (label, after) = p.Strongest;
        return new(p.Target.Name, label, p.Before.ForgetAll ?? 0, after.ForgetAll ?? 0, p.Before.NeighborAll ?? 0, after.NeighborAll ?? 0,
            p.Before.Mmlu ?? 0, after.Mmlu ?? 0);
    }
}

/// <summary>The report of `atu toy`: the pre-trained model's knowledge of every person, Table 1 over the unlearned
/// people (and per person), and the acceptance figures. Everything in it follows from the evaluations, so the same
/// seed gives the same text; timings go to a file of their own.</summary>
public static class ToyReport
{
    public const string TableFile = "table.md", TimingFile = "timing.md";
    public const double QaRequired = 0.8, AaRequired = 0.6;

    /// <param name="before">The pre-trained model on every person: forget probes and the person's utility questions.</param>
    public static string Markdown(int seed, RunSummary before, IReadOnlyList<UnlearnedPerson> people)
    {
        string P(double v) => (100 * v).ToString("F1", CultureInfo.InvariantCulture);
        var text = new StringBuilder();
        text.Append($"# Align-then-Unlearn on the toy world (seed {seed})\n\n");

        var qa = before.Targets.Select(t => (t.Name, Score: t.Scores.ForgetQA ?? 0)).ToList();
        var aa = before.Targets.Select(t => t.Scores.ForgetAA ?? 0).ToList();
        var weakest = qa.MinBy(q => q.Score);
        var mean = before.Mean;
        text.Append($"## The pre-trained model, before unlearning ({before.Targets.Count} people)\n\n");
        text.Append("| measure | value | required |\n| :-- | --: | --: |\n");
        text.Append($"| forget QA, mean ROUGE-L recall | {P(mean.ForgetQA ?? 0)} | {P(QaRequired)} |\n");
        text.Append($"| forget QA, lowest person ({weakest.Name}) | {P(weakest.Score)} | |\n");
        text.Append($"| forget QA, people below {P(QaRequired)} | {qa.Count(q => q.Score < QaRequired)} of {qa.Count} | |\n");
        text.Append($"| forget AA, mean ROUGE-L recall | {P(mean.ForgetAA ?? 0)} | {P(AaRequired)} |\n");
        text.Append($"| forget FB, mean ROUGE-L recall | {P(mean.ForgetFB ?? 0)} | |\n");
        text.Append($"| utility multiple choice, accuracy | {P(mean.Mmlu ?? 0)} | (chance 25.0) |\n\n");

        var labels = people.SelectMany(p => p.Checkpoints.Select(c => c.Label)).Distinct().ToList();
        text.Append($"## Table 1: mean over the {people.Count} unlearned people\n\n");
        text.Append("ROUGE-L recall (forget and neighbour probes of the person unlearned) and utility multiple-choice accuracy (all people), in percent. ");
        text.Append("A checkpoint row averages the people whose run reached it (n).\n\n");
        text.Append(ResultsTable.Markdown("Model", MeanRows(people, labels)));
        text.Append("\n## Acceptance, at each person's strongest checkpoint (the lowest threshold crossed, else the end)\n\n");
        text.Append("| person | checkpoint | forget before | forget after | after/before (≤ 0.5) | neighbour before | neighbour after | kept (≥ 0.75) | utility before | utility after | drop, points (≤ 5) | passes |\n");
        text.Append("| :-- | :-- | --: | --: | --: | --: | --: | --: | --: | --: | --: | :-: |\n");
        var checks = people.Select(ToyAcceptance.Of).ToList();
        var average = Average(checks);
        string F(double v) => v.ToString("F2", CultureInfo.InvariantCulture);
        foreach (var c in checks)
            text.Append($"| {c.Person} | {c.Checkpoint} | {P(c.ForgetBefore)} | {P(c.ForgetAfter)} | {F(c.ForgetRatio)} | {P(c.NeighbourBefore)} | {P(c.NeighbourAfter)} | {F(c.NeighbourKept)} | {P(c.UtilityBefore)} | {P(c.UtilityAfter)} | {c.UtilityDropPoints.ToString("F1", CultureInfo.InvariantCulture)} | {(c.Passes ? "yes" : "no")} |\n");
        text.Append($"| **mean** | | {P(average.ForgetBefore)} | {P(average.ForgetAfter)} | {F(average.ForgetRatio)} | {P(average.NeighbourBefore)} | {P(average.NeighbourAfter)} | {F(average.NeighbourKept)} | {P(average.UtilityBefore)} | {P(average.UtilityAfter)} | {average.UtilityDropPoints.ToString("F1", CultureInfo.InvariantCulture)} | {(average.Passes ? "yes" : "no")} |\n");

        text.Append("\n## Each person\n");
        foreach (var p in people)
        {
            text.Append($"\n### {p.Target.Number} {p.Target.Name}\n\n");
            text.Append(ResultsTable.Markdown("Model", [("before", p.Before), .. p.Checkpoints]));
        }
        return text.ToString();
    }

    /// <summary>The acceptance figures averaged over the people (the issue asks for the same picture on average).</summary>
    public static ToyAcceptance Average(IReadOnlyList<ToyAcceptance> checks) =>
        new("mean", "strongest", checks.Average(c => c.ForgetBefore), checks.Average(c => c.ForgetAfter), checks.Average(c => c.NeighbourBefore),
            checks.Average(c => c.NeighbourAfter), checks.Average(c => c.UtilityBefore), checks.Average(c => c.UtilityAfter));

    /// <summary>Issue 7's acceptance: the model knows the world before (mean QA and AA recall over every person) and the
    /// unlearning passes on average over the people unlearned.</summary>
    public static bool Accepted(RunSummary before, IReadOnlyList<UnlearnedPerson> people) =>
        before.Mean.ForgetQA >= QaRequired && before.Mean.ForgetAA >= AaRequired && Average([.. people.Select(ToyAcceptance.Of)]).Passes;

    /// <summary>The plot's runs: before and each checkpoint label, each averaged over the people that have it.</summary>
    public static IReadOnlyList<RunSummary> PlotRuns(IReadOnlyList<UnlearnedPerson> people)
    {
        var labels = people.SelectMany(p => p.Checkpoints.Select(c => c.Label)).Distinct().ToList();
        TargetScores Row(UnlearnedPerson p, RwkuScores s) => new(p.Target.Number, p.Target.Name, s, new RwkuCounts(0, 0, 0, 0, 0, 0));
        var runs = new List<RunSummary> { new("before", [.. people.Select(p => Row(p, p.Before))]) };
        foreach (var label in labels)
            runs.Add(new RunSummary(label, [.. people.SelectMany(p => p.Checkpoints.Where(c => c.Label == label).Select(c => Row(p, c.Scores)))], "ATU"));
        return runs;
    }

    static IEnumerable<(string, RwkuScores)> MeanRows(IReadOnlyList<UnlearnedPerson> people, IReadOnlyList<string> labels)
    {
        yield return ($"before (n={people.Count})", RwkuScores.MeanOf([.. people.Select(p => p.Before)]));
        foreach (var label in labels)
        {
            var scores = people.SelectMany(p => p.Checkpoints.Where(c => c.Label == label).Select(c => c.Scores)).ToList();
            yield return ($"{label} (n={scores.Count})", RwkuScores.MeanOf(scores));
        }
        yield return ($"strongest (n={people.Count})", RwkuScores.MeanOf([.. people.Select(p => p.Strongest.Scores)]));
    }
}
