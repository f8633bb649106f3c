namespace AlignThenUnlearn.Evaluation.Attacks;

/// <summary>The sampling attack's scores: every probe answered n times by sampling (n evaluations of the same targets,
/// each with its own seed), scored per probe by the best and by the mean ROUGE-L recall over the n answers.</summary>
public static class SampledAnswers
{
    /// <summary>Best-of-n (each probe keeps its highest-scoring answer, the first of equal ones) and mean-of-n (the mean
    /// recall, with the first sample's answer as the prediction shown). MMLU, which reads logits, is the first sample's.</summary>
    public static (RunEvaluation Best, RunEvaluation Mean) Combine(IReadOnlyList<RunEvaluation> samples, string name, string? series = null)
    {
        if (samples.Count == 0) throw new ArgumentException("the sampling attack needs at least one sample");
        var first = samples[0];
        var best = new List<TargetEvaluation>();
        var mean = new List<TargetEvaluation>();
        for (int t = 0; t < first.Targets.Count; t++)
        {
            var target = first.Targets[t];
            var answers = samples.Select(s => s.Targets[t].Probes).ToList();
            if (answers.Any(a => a.Count != target.Probes.Count || a.Where((p, i) => p.Probe != target.Probes[i].Probe).Any()))
                throw new InvalidOperationException($"the samples of target {target.Scores.Number} answered different probes");
            var bestProbes = target.Probes.Select((_, i) => answers.Select(a => a[i]).Aggregate((x, y) => y.Score > x.Score ? y : x)).ToList();
            var meanProbes = target.Probes.Select((p, i) => p with { Score = answers.Average(a => a[i].Score) }).ToList();
            best.Add(Evaluation(target, bestProbes));
            mean.Add(Evaluation(target, meanProbes));
        }
        RunEvaluation Run(List<TargetEvaluation> targets) =>
            new(first.Summary with { Name = name, Series = series, Targets = [.. targets.Select(e => e.Scores)] }, targets);
        return (Run(best), Run(mean));
    }

    static TargetEvaluation Evaluation(TargetEvaluation target, List<ProbeOutcome> probes)
    {
        var (scores, counts) = RwkuScores.FromOutcomes(probes, target.Mmlu);
        return new TargetEvaluation(target.Scores with { Scores = scores, Counts = counts }, probes, target.Mmlu);
    }
}
