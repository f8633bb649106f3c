using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.Evaluation.Comparison;
using System.Globalization;
using System.Text;

namespace AlignThenUnlearn.ToyWorld;

/// <summary>The toy run's utility figures besides RWKU's: retain QA (what the model still knows of the people the
/// unlearning should not touch) and the membership-inference AUC of the forget texts against strangers' texts.</summary>
public static class ToyFigures
{
    /// <summary>The retain people of a target: every person but the target and the neighbours its neighbour probes name
    /// (the world files' definition), in the order given.</summary>
    public static IReadOnlyList<RwkuTargetData> RetainPeople(RwkuTargetData target, IReadOnlyList<RwkuTargetData> everyone)
    {
        var excluded = target.ProbesOf(ProbeSet.Neighbor).Select(p => p.Neighbor).OfType<string>().Append(target.Target.Name).ToHashSet(StringComparer.Ordinal);
        return [.. everyone.Where(d => !excluded.Contains(d.Target.Name))];
    }

    /// <summary>A retain person as RWKU evaluates them for retain QA: only their FB and QA probes (forget levels 1 and 2), no
    /// multiple choice.</summary>
    public static RwkuTargetData RetainProbes(RwkuTargetData person) =>
        person with { Probes = [.. person.Probes.Where(p => p.Set == ProbeSet.Forget && p.Level is 1 or 2)], Mmlu = [] };

    /// <summary>Retain QA: the mean ROUGE-L recall over every FB and QA probe of the given people (each person's FB and QA
    /// means weighted by their probe counts); null when there is none.</summary>
    public static double? RetainQA(IEnumerable<TargetScores> people)
    {
        double sum = 0, count = 0;
        foreach (var p in people)
        {
            sum += (p.Scores.ForgetFB ?? 0) * p.Counts.ForgetFB + (p.Scores.ForgetQA ?? 0) * p.Counts.ForgetQA;
            count += p.Counts.ForgetFB + p.Counts.ForgetQA;
        }
        return count == 0 ? null : sum / count;
    }

    /// <summary>The loss attack's AUC: the fraction of (forget text, stranger text) pairs in which the forget text has the
    /// lower loss (ties count half). 1: every forget text looks more familiar than every stranger's (the model knows them);
    /// 0.5: the attack cannot tell them apart; null when either side is empty.</summary>
    public static double? MiaAuc(IReadOnlyList<double> forgetLosses, IReadOnlyList<double> strangerLosses)
    {
        if (forgetLosses.Count == 0 || strangerLosses.Count == 0) return null;
        // A NaN loss loses every comparison, which would read as an AUC near 0: "forgotten". Refuse it instead.
        foreach (var loss in forgetLosses.Concat(strangerLosses))
            if (!double.IsFinite(loss)) throw new InvalidDataException($"MIA AUC: a text's loss is {loss}; the model's scores are not finite");
        double wins = 0;
        foreach (var f in forgetLosses)
            foreach (var s in strangerLosses)
                wins += f < s ? 1 : f == s ? 0.5 : 0;
        return wins / (forgetLosses.Count * strangerLosses.Count);
    }

    /// <summary>Column by column, the mean over evaluations that have the column.</summary>
    public static ToyScores MeanOf(IReadOnlyCollection<ToyScores> scores) => new(RwkuScores.MeanOf([.. scores.Select(s => s.Rwku)]),
        Means.OfPresent(scores.Select(s => s.RetainQA)), Means.OfPresent(scores.Select(s => s.Fluency)), Means.OfPresent(scores.Select(s => s.Mia)));
}

/// <summary>The acceptance figures of one method on one person (or their mean) at the strongest checkpoint: forget All at
/// most half of its value before, neighbour All at least 75% of its value before, retain QA at least 90% of its value
/// before, multiple choice down by at most 5 points.</summary>
public sealed record ToyAcceptance(string Method, string Person, string Checkpoint, double ForgetBefore, double ForgetAfter, double NeighbourBefore,
    double NeighbourAfter, double RetainBefore, double RetainAfter, double UtilityBefore, double UtilityAfter)
{
    public double ForgetRatio => ForgetAfter / ForgetBefore;
    public double NeighbourKept => NeighbourAfter / NeighbourBefore;
    public double RetainKept => RetainAfter / RetainBefore;
    public double UtilityDropPoints => 100 * (UtilityBefore - UtilityAfter);
    /// <summary>The limits themselves pass (with a margin for rounding: 0.6 / 0.8 is 0.7499999999999999 in doubles).</summary>
    public bool Passes => ForgetRatio <= 0.5 + Slack && NeighbourKept >= 0.75 - Slack && RetainKept >= 0.9 - Slack && UtilityDropPoints <= 5 + Slack;

    const double Slack = 1e-9;

    public static ToyAcceptance Of(ToyMethodRun run)
    {
        var strongest = run.Strongest;
        var (before, after) = (run.Before, strongest.Scores);
        // A figure that was not measured is NaN, never 0: a checkpoint without forget scores must not read as perfect
        // forgetting. Every comparison with NaN is false, so it fails the acceptance (and the table shows NaN).
        return new(run.Method, run.Target.Name, strongest.Label, before.Rwku.ForgetAll ?? double.NaN, after.Rwku.ForgetAll ?? double.NaN,
            before.Rwku.NeighborAll ?? double.NaN, after.Rwku.NeighborAll ?? double.NaN, before.RetainQA ?? double.NaN, after.RetainQA ?? double.NaN,
            before.Rwku.Mmlu ?? double.NaN, after.Rwku.Mmlu ?? double.NaN);
    }

    /// <summary>The figures averaged over the people (the acceptance reads the mean).</summary>
    public static ToyAcceptance Average(string method, IReadOnlyList<ToyAcceptance> checks) =>
        new(method, "mean", "strongest", checks.Average(c => c.ForgetBefore), checks.Average(c => c.ForgetAfter), checks.Average(c => c.NeighbourBefore),
            checks.Average(c => c.NeighbourAfter), checks.Average(c => c.RetainBefore), checks.Average(c => c.RetainAfter),
            checks.Average(c => c.UtilityBefore), checks.Average(c => c.UtilityAfter));
}

/// <summary>The model before unlearning, against the issue's requirements: forget QA and AA over every person, retain QA
/// over the people unlearned (each one's retain set), multiple-choice accuracy over the world's questions.</summary>
public sealed record ToyBeforeCheck(double ForgetQA, double ForgetAA, double RetainQA, double MultipleChoice)
{
    public const double QaRequired = 0.8, AaRequired = 0.6, RetainRequired = 0.8, ChoiceRequired = 0.5;
    public bool Passes => ForgetQA >= QaRequired && ForgetAA >= AaRequired && RetainQA >= RetainRequired && MultipleChoice >= ChoiceRequired;

    public static ToyBeforeCheck Of(RunSummary before, IReadOnlyList<ToyMethodRun> runs)
    {
        var people = runs.GroupBy(r => r.Target.Number).Select(g => g.First().Before).ToList();
        return new(before.Mean.ForgetQA ?? 0, before.Mean.ForgetAA ?? 0, people.Count == 0 ? 0 : people.Average(p => p.RetainQA ?? 0), before.Mean.Mmlu ?? 0);
    }
}

/// <summary>The report of `atu toy`: the pre-trained model's knowledge, Table 1 with one row per method and checkpoint
/// (mean over the people unlearned, then per person), the comparison at forget All &lt;= 35, and every method's
/// acceptance figures. Everything in it follows from the evaluations, so the same seed gives the same text; timings go
/// to a file of their own.</summary>
public static class ToyReport
{
    public const string TableFile = "table.md", TimingFile = "timing.md";
    /// <summary>The method whose figures `atu toy --check` requires (<see cref="Accepted"/>).</summary>
    public const string CheckedMethod = "ATU";
    /// <summary>The comparison line's bar: a method competes when its strongest checkpoints' mean forget All is at most this.</summary>
    public const double ComparedForget = 0.35;
    public const string BeforeRow = "Before";

    public static readonly IReadOnlyList<string> ExtraColumns = ["Retain QA ↑", "Fluency ↑", "MIA AUC"];

    static IReadOnlyList<double?> Extra(ToyScores s) => [s.RetainQA, s.Fluency, s.Mia];

    static string P(double v) => (100 * v).ToString("F1", CultureInfo.InvariantCulture);

    /// <param name="before">The pre-trained model on every person: forget and neighbour probes, the world's multiple choice.</param>
    /// <param name="runs">Every method's run on every person unlearned.</param>
    public static string Markdown(int seed, RunSummary before, IReadOnlyList<ToyMethodRun> runs)
    {
        var text = new StringBuilder();
        var people = runs.Select(r => r.Target).DistinctBy(t => t.Number).ToList();
        text.Append($"# Every method on the toy world (seed {seed})\n\n");

        var qa = before.Targets.Select(t => (t.Name, Score: t.Scores.ForgetQA ?? 0)).ToList();
        var weakest = qa.MinBy(q => q.Score);
        var mean = before.Mean;
        var check = ToyBeforeCheck.Of(before, runs);
        string Pass(bool ok) => ok ? "yes" : "no";
        text.Append($"## The pre-trained model, before unlearning ({before.Targets.Count} people)\n\n");
        text.Append("| measure | value | required | passes |\n| :-- | --: | --: | :-: |\n");
        text.Append($"| forget QA, mean ROUGE-L recall | {P(check.ForgetQA)} | {P(ToyBeforeCheck.QaRequired)} | {Pass(check.ForgetQA >= ToyBeforeCheck.QaRequired)} |\n");
        if (weakest.Name is not null) text.Append($"| forget QA, lowest person ({weakest.Name}) | {P(weakest.Score)} | | |\n");
        text.Append($"| forget AA, mean ROUGE-L recall | {P(check.ForgetAA)} | {P(ToyBeforeCheck.AaRequired)} | {Pass(check.ForgetAA >= ToyBeforeCheck.AaRequired)} |\n");
        text.Append($"| forget FB, mean ROUGE-L recall | {P(mean.ForgetFB ?? 0)} | | |\n");
        text.Append($"| retain QA, mean over the {people.Count} people unlearned | {P(check.RetainQA)} | {P(ToyBeforeCheck.RetainRequired)} | {Pass(check.RetainQA >= ToyBeforeCheck.RetainRequired)} |\n");
        text.Append($"| multiple choice, accuracy (chance 25.0) | {P(check.MultipleChoice)} | {P(ToyBeforeCheck.ChoiceRequired)} | {Pass(check.MultipleChoice >= ToyBeforeCheck.ChoiceRequired)} |\n\n");

        text.Append(EqualForgettingReport.Markdown(ToyTrajectories.Of(seed, runs), CheckedMethod)).Append('\n');

        text.Append($"## Table 1: mean over the {people.Count} people unlearned\n\n");
        text.Append("ROUGE-L recall of the person's forget and neighbour probes and of the retain people's FB and QA probes (everyone but the person ");
        text.Append("and its neighbours), the world's multiple-choice accuracy (MMLU column), fluency (weighted n-gram entropy of answers to the ");
        text.Append("person's fluency instructions, bits x 100) and the loss attack's AUC of the person's texts against strangers' (50: cannot tell), ");
        text.Append("in percent. A checkpoint row averages the people whose run reached it (n); \"strongest\" is each person's lowest threshold crossed, else the end.\n\n");
        text.Append(ResultsTable.Markdown("Method", ExtraColumns, MeanRows(runs).Select(r => (r.Label, r.Scores.Rwku, Extra(r.Scores)))));
        var checks = MethodChecks(runs);
        text.Append('\n').Append(ComparisonLine(checks)).Append('\n');

        text.Append("\n## Acceptance, at each method's strongest checkpoints (mean over the people)\n\n");
        text.Append($"`atu toy --check` requires {CheckedMethod}'s row and the model before; the other methods' figures are reported as measured.\n\n");
        text.Append("| method | forget before | forget after | after/before (≤ 0.5) | neighbour before | neighbour after | kept (≥ 0.75) | retain QA before | retain QA after | kept (≥ 0.9) | MC before | MC after | drop, points (≤ 5) | passes |\n");
        text.Append("| :-- | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | :-: |\n");
        string F(double v) => v.ToString("F2", CultureInfo.InvariantCulture);
        foreach (var c in checks)
            text.Append($"| {c.Method} | {P(c.ForgetBefore)} | {P(c.ForgetAfter)} | {F(c.ForgetRatio)} | {P(c.NeighbourBefore)} | {P(c.NeighbourAfter)} | {F(c.NeighbourKept)} | {P(c.RetainBefore)} | {P(c.RetainAfter)} | {F(c.RetainKept)} | {P(c.UtilityBefore)} | {P(c.UtilityAfter)} | {c.UtilityDropPoints.ToString("F1", CultureInfo.InvariantCulture)} | {Pass(c.Passes)} |\n");

        text.Append("\n## Each person\n");
        foreach (var person in people)
        {
            text.Append($"\n### {person.Number} {person.Name}\n\n");
            var own = runs.Where(r => r.Target.Number == person.Number).ToList();
            IEnumerable<(string, ToyScores)> rows = [(BeforeRow, own[0].Before), .. own.SelectMany(r => r.Checkpoints.Select(c => ($"{r.Method} {c.Label}", c.Scores)))];
            text.Append(ResultsTable.Markdown("Method", ExtraColumns, rows.Select(r => (r.Item1, r.Item2.Rwku, Extra(r.Item2)))));
        }
        return text.ToString();
    }

    /// <summary>The report of several worlds pooled (`atu toy --seeds`): the equal-forgetting comparison over every world's
    /// people; each world's own report stays in its folder.</summary>
    public static string PooledMarkdown(IReadOnlyList<int> seeds, IReadOnlyList<PersonTrajectory> runs) =>
        $"# Every method on {seeds.Count} toy worlds (seeds {string.Join(", ", seeds)}), pooled\n\n"
        + $"Each world's own report: seed-N/report/{TableFile}.\n\n" + EqualForgettingReport.Markdown(runs, CheckedMethod);

    /// <summary>Table 1's rows: the model before (mean over the people), then per method its checkpoint labels (the
    /// thresholds from the highest down, then the end) each averaged over the people that have it, and its strongest
    /// checkpoints. Labels are "METHOD checkpoint (n=people)".</summary>
    public static IReadOnlyList<(string Label, string Method, ToyScores Scores)> MeanRows(IReadOnlyList<ToyMethodRun> runs)
    {
        var people = runs.GroupBy(r => r.Target.Number).Select(g => g.First().Before).ToList();
        var rows = new List<(string, string, ToyScores)> { ($"{BeforeRow} (n={people.Count})", BeforeRow, ToyFigures.MeanOf(people)) };
        foreach (var method in runs.Select(r => r.Method).Distinct())
        {
            var own = runs.Where(r => r.Method == method).ToList();
            foreach (var label in own.SelectMany(r => r.Checkpoints.Select(c => c.Label)).Distinct().OrderBy(LabelRank))
            {
                var scores = own.SelectMany(r => r.Checkpoints.Where(c => c.Label == label).Select(c => c.Scores)).ToList();
                rows.Add(($"{method} {label} (n={scores.Count})", method, ToyFigures.MeanOf(scores)));
            }
            rows.Add(($"{method} strongest (n={own.Count})", method, ToyFigures.MeanOf([.. own.Select(r => r.Strongest.Scores)])));
        }
        return rows;
    }

    /// <summary>forget-below-T from the highest T down, then the end of the run.</summary>
    static double LabelRank(string label) => label == ToyMethodRun.FinalLabel ? double.PositiveInfinity
        : double.TryParse(label.Split('-')[^1], NumberStyles.Float, CultureInfo.InvariantCulture, out var threshold) ? -threshold : 0;

    /// <summary>The line under Table 1: among the methods whose strongest checkpoints' mean forget All is at most
    /// <see cref="ComparedForget"/>, which keeps the most neighbour (All) and retain (QA) knowledge, and by how many points
    /// over the next; says so when none or one qualifies, and when different methods win the two.</summary>
    public static string ComparisonLine(IReadOnlyList<ToyAcceptance> methods)
    {
        var limit = P(ComparedForget);
        var qualifying = methods.Where(m => m.ForgetAfter <= ComparedForget + 1e-9).ToList();
        if (qualifying.Count == 0)
            return $"No method's strongest checkpoints reach a mean forget All of at most {limit} (lowest: {string.Join(", ", methods.OrderBy(m => m.ForgetAfter).Take(1).Select(m => $"{m.Method} {P(m.ForgetAfter)}"))}), so none is compared.";
        if (qualifying.Count == 1)
        {
            var only = qualifying[0];
            return $"Only {only.Method} reaches a mean forget All of at most {limit} ({P(only.ForgetAfter)}), keeping neighbour All {P(only.NeighbourAfter)} and retain QA {P(only.RetainAfter)}; no other method qualifies for the comparison.";
        }
        string Winner(string what, Func<ToyAcceptance, double> figure)
        {
            var ranked = qualifying.OrderByDescending(figure).ToList();
            var (best, next) = (ranked[0], ranked[1]);
            var tied = ranked.TakeWhile(m => P(figure(m)) == P(figure(best))).Select(m => m.Method).ToList();
            return tied.Count > 1
                ? $"{string.Join(" and ", tied)} tie on {what} ({P(figure(best))})"
                : $"{best.Method} keeps the most {what} ({P(figure(best))}, {(100 * (figure(best) - figure(next))).ToString("F1", CultureInfo.InvariantCulture)} points more than {next.Method}'s {P(figure(next))})";
        }
        var names = string.Join(", ", qualifying.Select(m => $"{m.Method} {P(m.ForgetAfter)}"));
        var neighbour = Winner("neighbour knowledge (All)", m => m.NeighbourAfter);
        var retain = Winner("retain knowledge (QA)", m => m.RetainAfter);
        var sameWinner = qualifying.MaxBy(m => m.NeighbourAfter)!.Method == qualifying.MaxBy(m => m.RetainAfter)!.Method;
        return $"At a mean forget All of at most {limit} ({qualifying.Count} methods: {names}), {neighbour}; {retain}"
            + (sameWinner ? "." : "; different methods win neighbour and retain knowledge.");
    }

    /// <summary>Each method's acceptance figures, averaged over its people, in the order the methods first appear.</summary>
    public static IReadOnlyList<ToyAcceptance> MethodChecks(IReadOnlyList<ToyMethodRun> runs) =>
        [.. runs.Select(r => r.Method).Distinct().Select(m => ToyAcceptance.Average(m, [.. runs.Where(r => r.Method == m).Select(ToyAcceptance.Of)]))];

    /// <summary>`atu toy --check`: the model before meets its requirements and <see cref="CheckedMethod"/>'s mean figures pass
    /// (when it ran); the other methods' figures are reported only.</summary>
    public static bool Accepted(RunSummary before, IReadOnlyList<ToyMethodRun> runs)
    {
        return ToyBeforeCheck.Of(before, runs).Passes && MethodChecks(runs).Where(c => c.Method == CheckedMethod).All(c => c.Passes);
    }

    /// <summary>The plot's runs: the model before, then per method its checkpoint labels (as Table 1's mean rows, without
    /// "strongest"), one series per method. A point is named by its threshold ("&lt;50") or "final"; thresholds crossed
    /// at one evaluation by every person (the same scores) are one point ("&lt;50, &lt;35").</summary>
    public static IReadOnlyList<RunSummary> PlotRuns(IReadOnlyList<ToyMethodRun> runs)
    {
        var plotted = new List<(RunSummary Run, ToyScores Scores)>();
        foreach (var (label, method, scores) in MeanRows(runs).Where(r => !r.Label.Contains(" strongest ", StringComparison.Ordinal)))
        {
            var checkpoint = label[..label.LastIndexOf(" (n=", StringComparison.Ordinal)];
            checkpoint = checkpoint == BeforeRow ? BeforeRow : checkpoint[(method.Length + 1)..];
            var name = checkpoint.StartsWith(ThresholdPrefix, StringComparison.Ordinal) ? "<" + checkpoint[ThresholdPrefix.Length..] : checkpoint;
            if (plotted.Count > 0 && plotted[^1].Run.Series == method && plotted[^1].Scores == scores)
            {
                plotted[^1] = (plotted[^1].Run with { Name = $"{plotted[^1].Run.Name}, {name}" }, scores);
                continue;
            }
            // One pseudo-target holding the mean: the plot reads a run's mean, which is then this row.
            plotted.Add((new RunSummary(name, [new TargetScores(0, "mean", scores.Rwku, new RwkuCounts(0, 0, 0, 0, 0, 0))], method, scores.Rwku.Weights), scores));
        }
        return [.. plotted.Select(p => p.Run)];
    }

    const string ThresholdPrefix = "forget-below-";
}
