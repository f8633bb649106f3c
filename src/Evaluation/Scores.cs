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

/// <summary>The weights of the levels in the "All" averages: RWKU's reports (and the authors' threshold checkpoints)
/// weight each level by its number of probes, forget All = (FB w_FB + QA w_QA + AA w_AA) / (w_FB + w_QA + w_AA) and
/// likewise for the neighbours. <see cref="Rwku"/> holds the probe counts over RWKU's targets 1-100.</summary>
public sealed record AllWeights(double ForgetFB, double ForgetQA, double ForgetAA, double NeighborFB, double NeighborQA)
{
    /// <summary>RWKU's probe counts over targets 1-100: forget 3268 / 2879 / 6984, neighbour 5846 / 5533.</summary>
    public static AllWeights Rwku { get; } = new(3268, 2879, 6984, 5846, 5533);

    /// <summary>The probe counts themselves.</summary>
    public static AllWeights Of(RwkuCounts counts) => new(counts.ForgetFB, counts.ForgetQA, counts.ForgetAA, counts.NeighborFB, counts.NeighborQA);
}

/// <summary>RWKU's scores as fractions in [0, 1] (tables show percentages): mean ROUGE-L recall per probe level of
/// the forget and neighbour sets, and MMLU accuracy. A score is null where nothing was measured. The "All" averages
/// weight the levels by <see cref="Weights"/> (<see cref="AllWeights"/>; the scores of a target or a run carry their
/// probe counts, or the weights a preset names); without weights they are plain means.</summary>
public sealed record RwkuScores(double? ForgetFB, double? ForgetQA, double? ForgetAA, double? NeighborFB, double? NeighborQA, double? Mmlu)
{
    public AllWeights? Weights { get; init; }

    public double? ForgetAll => WeightedAll((ForgetFB, Weights?.ForgetFB), (ForgetQA, Weights?.ForgetQA), (ForgetAA, Weights?.ForgetAA));
    public double? NeighborAll => WeightedAll((NeighborFB, Weights?.NeighborFB), (NeighborQA, Weights?.NeighborQA));

    /// <summary>The scores of one target from its outcomes: per level, the mean recall in probe order (as
    /// <c>rouge</c>'s <c>get_scores(avg=True)</c> sums and divides); MMLU, the fraction answered correctly.</summary>
    public static (RwkuScores Scores, RwkuCounts Counts) FromOutcomes(IReadOnlyCollection<ProbeOutcome> probes, IReadOnlyCollection<MmluOutcome> mmlu)
    {
        List<double> Level(ProbeSet set, int level) => [.. probes.Where(p => p.Probe.Set == set && p.Probe.Level == level).Select(p => p.Score)];
        var forget = new[] { Level(ProbeSet.Forget, 1), Level(ProbeSet.Forget, 2), Level(ProbeSet.Forget, 3) };
        var neighbor = new[] { Level(ProbeSet.Neighbor, 1), Level(ProbeSet.Neighbor, 2) };
        var counts = new RwkuCounts(forget[0].Count, forget[1].Count, forget[2].Count, neighbor[0].Count, neighbor[1].Count, mmlu.Count);
        var scores = new RwkuScores(Mean(forget[0]), Mean(forget[1]), Mean(forget[2]), Mean(neighbor[0]), Mean(neighbor[1]),
            mmlu.Count == 0 ? null : (double)mmlu.Count(q => q.Correct) / mmlu.Count) { Weights = AllWeights.Of(counts) };
        return (scores, counts);
    }

    /// <summary>The mean over targets, column by column, of the targets that have the column; its "All" averages
    /// weight the levels by <paramref name="weights"/>, by default the targets' weights summed (their probe counts
    /// together: the counts of the evaluated set).</summary>
    public static RwkuScores MeanOf(IReadOnlyCollection<RwkuScores> targets, AllWeights? weights = null) => new(
        Mean(targets.Select(t => t.ForgetFB)), Mean(targets.Select(t => t.ForgetQA)), Mean(targets.Select(t => t.ForgetAA)),
        Mean(targets.Select(t => t.NeighborFB)), Mean(targets.Select(t => t.NeighborQA)), Mean(targets.Select(t => t.Mmlu)))
    { Weights = weights ?? SumOf(targets.Select(t => t.Weights).ToList()) };

    static AllWeights? SumOf(IReadOnlyList<AllWeights?> weights) => weights.Count == 0 || weights.Any(w => w is null) ? null
        : new(weights.Sum(w => w!.ForgetFB), weights.Sum(w => w!.ForgetQA), weights.Sum(w => w!.ForgetAA), weights.Sum(w => w!.NeighborFB), weights.Sum(w => w!.NeighborQA));

    static double? Mean(IEnumerable<double?> values) => Means.OfPresent(values);

    static double? Mean(IReadOnlyList<double> values) => Means.OfPresent(values.Select(v => (double?)v));

    /// <summary>sum(score x weight) / sum(weight) over the levels; null when a level is missing; equal weights when none
    /// are given (or they sum to 0).</summary>
    static double? WeightedAll(params (double? Score, double? Weight)[] levels)
    {
        if (levels.Any(l => !l.Score.HasValue)) return null;
        double total = levels.Sum(l => l.Weight ?? 0);
        return total > 0 ? levels.Sum(l => l.Score!.Value * l.Weight!.Value) / total : levels.Average(l => l.Score!.Value);
    }
}

/// <summary>The scores of one target.</summary>
public sealed record TargetScores(int Number, string Name, RwkuScores Scores, RwkuCounts Counts);

/// <summary>The scores of one run (a model or checkpoint) over its targets. <see cref="Series"/> groups runs in the
/// plot (e.g. the checkpoints of one method); runs without one form their own series. <see cref="Weights"/> weight the
/// levels of the "All" averages (null: the probe counts of the evaluated targets, which for RWKU's targets 1-100 are
/// <see cref="AllWeights.Rwku"/>).</summary>
public sealed record RunSummary(string Name, IReadOnlyList<TargetScores> Targets, string? Series = null, AllWeights? Weights = null)
{
    /// <summary>The run's row of the table: each column averaged over targets.</summary>
    public RwkuScores Mean => RwkuScores.MeanOf([.. Targets.Select(t => t.Scores)], Weights);
}
