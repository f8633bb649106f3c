namespace AlignThenUnlearn.Evaluation;

/// <summary>One probe's outcome: the answer the model gave (stripped, <c>NOANSWER</c> when empty) and its ROUGE-L
/// recall against the reference answer.</summary>
public sealed record ProbeOutcome(RwkuTarget Target, RwkuProbe Probe, string Prediction, double Score);

/// <summary>One MMLU question's outcome: the index (0-3) of the letter with the highest next-token logit.</summary>
public sealed record MmluOutcome(RwkuTarget Target, MmluQuestion Question, int Predicted)
{
    public bool Correct => Predicted == Question.Answer;
}

/// <summary>How many probes (questions) each score averages.</summary>
public sealed record RwkuCounts(int ForgetFB, int ForgetQA, int ForgetAA, int NeighborFB, int NeighborQA, int Mmlu);

/// <summary>RWKU's scores as fractions in [0, 1] (tables show percentages): mean ROUGE-L recall per probe level of
/// the forget and neighbour sets, and MMLU accuracy. A score is null where nothing was measured. The averages are
/// the paper's: forget All = mean(FB, QA, AA), neighbour All = mean(FB, QA).</summary>
public sealed record RwkuScores(double? ForgetFB, double? ForgetQA, double? ForgetAA, double? NeighborFB, double? NeighborQA, double? Mmlu)
{
    public double? ForgetAll => MeanOfAll(ForgetFB, ForgetQA, ForgetAA);
    public double? NeighborAll => MeanOfAll(NeighborFB, NeighborQA);

    /// <summary>The scores of one target from its outcomes: per level, the mean recall in probe order (as
    /// <c>rouge</c>'s <c>get_scores(avg=True)</c> sums and divides); MMLU, the fraction answered correctly.</summary>
    public static (RwkuScores Scores, RwkuCounts Counts) FromOutcomes(IReadOnlyCollection<ProbeOutcome> probes, IReadOnlyCollection<MmluOutcome> mmlu)
    {
        List<double> Level(ProbeSet set, int level) => [.. probes.Where(p => p.Probe.Set == set && p.Probe.Level == level).Select(p => p.Score)];
        var forget = new[] { Level(ProbeSet.Forget, 1), Level(ProbeSet.Forget, 2), Level(ProbeSet.Forget, 3) };
        var neighbor = new[] { Level(ProbeSet.Neighbor, 1), Level(ProbeSet.Neighbor, 2) };
        var scores = new RwkuScores(Mean(forget[0]), Mean(forget[1]), Mean(forget[2]), Mean(neighbor[0]), Mean(neighbor[1]),
            mmlu.Count == 0 ? null : (double)mmlu.Count(q => q.Correct) / mmlu.Count);
        var counts = new RwkuCounts(forget[0].Count, forget[1].Count, forget[2].Count, neighbor[0].Count, neighbor[1].Count, mmlu.Count);
        return (scores, counts);
    }

    /// <summary>The mean over targets, column by column, of the targets that have the column.</summary>
    public static RwkuScores MeanOf(IReadOnlyCollection<RwkuScores> targets) => new(
        Mean(targets.Select(t => t.ForgetFB)), Mean(targets.Select(t => t.ForgetQA)), Mean(targets.Select(t => t.ForgetAA)),
        Mean(targets.Select(t => t.NeighborFB)), Mean(targets.Select(t => t.NeighborQA)), Mean(targets.Select(t => t.Mmlu)));

    static double? Mean(IEnumerable<double?> values) => Mean([.. values.OfType<double>()]);

    static double? Mean(IReadOnlyList<double> values)
    {
        if (values.Count == 0) return null;
        double sum = 0;
        foreach (var v in values) sum += v;
        return sum / values.Count;
    }

    static double? MeanOfAll(params double?[] values) =>
        values.All(v => v.HasValue) ? Mean([.. values.Select(v => v!.Value)]) : null;
}

/// <summary>The scores of one target.</summary>
public sealed record TargetScores(int Number, string Name, RwkuScores Scores, RwkuCounts Counts);

/// <summary>The scores of one run (a model or checkpoint) over its targets. <see cref="Series"/> groups runs in the
/// plot (e.g. the checkpoints of one method); runs without one form their own series.</summary>
public sealed record RunSummary(string Name, IReadOnlyList<TargetScores> Targets, string? Series = null)
{
    /// <summary>The run's row of the table: each column averaged over targets.</summary>
    public RwkuScores Mean => RwkuScores.MeanOf([.. Targets.Select(t => t.Scores)]);
}
