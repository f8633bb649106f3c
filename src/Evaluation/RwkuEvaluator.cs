using AlignThenUnlearn.Models;

namespace AlignThenUnlearn.Evaluation;

public sealed record RwkuEvaluationOptions
{
    public required ChatFormat ChatFormat { get; init; }
    /// <summary>The BOS tokens of every prompt: the snapshot's template's (default) or RWKU's layout (two for Llama-3).</summary>
    public PromptBos PromptBos { get; init; }
    /// <summary>Prompts handed to the generator at once (RWKU uses 16).</summary>
    public int BatchSize { get; init; } = 16;
    public int MaxNewTokens { get; init; } = RwkuPrompts.MaxNewTokens;
    /// <summary>Whether the forget probes are scored.</summary>
    public bool Forget { get; init; } = true;
    public bool Neighbor { get; init; } = true;
    /// <summary>RWKU's in-context unlearning prompt (<c>use_prompt</c>) before every user message.</summary>
    public bool Icu { get; init; }
    /// <summary>Whether MMLU is scored (needs an <see cref="INextTokenScorer"/>).</summary>
    public bool Mmlu { get; init; } = true;
    /// <summary>The weights of the levels in the run's "All" averages (null: the probe counts of the evaluated targets).</summary>
    public AllWeights? AllWeights { get; init; }
}

/// <summary>Progress in prompts: <paramref name="Done"/> of <paramref name="Total"/> across the whole run.</summary>
public sealed record EvaluationProgress(int Done, int Total, RwkuTarget Target);

/// <summary>A target's scores with every outcome behind them.</summary>
public sealed record TargetEvaluation(TargetScores Scores, IReadOnlyList<ProbeOutcome> Probes, IReadOnlyList<MmluOutcome> Mmlu);

/// <summary>A run's evaluation: the summary that goes into the tables and the outcomes that go into the probe file.</summary>
public sealed record RunEvaluation(RunSummary Summary, IReadOnlyList<TargetEvaluation> Targets);

/// <summary>Runs RWKU on a model given as a generator (probes) and a next-token scorer (MMLU): builds every prompt as
/// RWKU does, answers it, and scores the answers. The model is behind the two interfaces, so this is the whole of
/// RWKU's evaluation except the forward passes.</summary>
public sealed class RwkuEvaluator(ITextGenerator generator, INextTokenScorer? scorer, IReadOnlyList<int>? answerTokenIds, RwkuEvaluationOptions options)
{
    public RunEvaluation EvaluateRun(string name, IReadOnlyList<RwkuTargetData> targets, IProgress<EvaluationProgress>? progress = null, string? series = null)
    {
        int total = targets.Sum(PromptCount), done = 0;
        var evaluations = new List<TargetEvaluation>();
        foreach (var target in targets)
        {
            int before = done;
            evaluations.Add(Evaluate(target, progress is null ? null : new Progress(p =>
            {
                done = before + p.Done;
                progress.Report(new EvaluationProgress(done, total, target.Target));
            })));
        }
        return new RunEvaluation(new RunSummary(name, [.. evaluations.Select(e => e.Scores)], series, options.AllWeights), evaluations);
    }

    /// <summary>Evaluates one target; progress counts this target's prompts.</summary>
    public TargetEvaluation Evaluate(RwkuTargetData data, IProgress<EvaluationProgress>? progress = null)
    {
        if (options.Mmlu && data.Mmlu.Count > 0 && (scorer is null || answerTokenIds is null))
            throw new InvalidOperationException("MMLU needs a next-token scorer and the answer token ids; pass them or turn MMLU off");
        int total = PromptCount(data), done = 0;
        void Advance(int count)
        {
            done += count;
            progress?.Report(new EvaluationProgress(done, total, data.Target));
        }

        var probes = data.Probes.Where(Scored).ToList();
        var continuations = InBatches(probes.Select(p => RwkuPrompts.For(p).WithIcu(options.Icu, p.Subject).Render(options.ChatFormat)).ToList(), batch =>
        {
            var answers = generator.Generate(batch, options.MaxNewTokens);
            if (answers.Count != batch.Count) throw new InvalidOperationException($"The generator answered {answers.Count} of {batch.Count} prompts");
            Advance(batch.Count);
            return answers;
        }, i => $"the {probes[i].Set.ToString().ToLowerInvariant()} probe \"{probes[i].Query}\" (level {probes[i].Level}) of target {data.Target.Number} {data.Target.Name}");
        var outcomes = probes.Select((probe, i) =>
        {
            var prediction = RwkuPrompts.Answer(continuations[i]);
            return new ProbeOutcome(data.Target, probe, prediction, RougeL.Recall(prediction, probe.Answer));
        }).ToList();

        var mmlu = new List<MmluOutcome>();
        if (options.Mmlu && data.Mmlu.Count > 0)
        {
            var choices = InBatches(data.Mmlu.Select(q => MmluPrompts.For(q).WithIcu(options.Icu, q.Subject).Render(options.ChatFormat)).ToList(), batch =>
            {
                var logits = scorer!.NextTokenLogits(batch, answerTokenIds!);
                if (logits.Count != batch.Count) throw new InvalidOperationException($"The scorer returned logits for {logits.Count} of {batch.Count} prompts");
                Advance(batch.Count);
                return logits.Select(ArgMax).ToList();
            }, i => $"the MMLU question \"{data.Mmlu[i].Question}\" of target {data.Target.Number} {data.Target.Name}");
            mmlu.AddRange(data.Mmlu.Select((q, i) => new MmluOutcome(data.Target, q, choices[i])));
        }

        var (scores, counts) = RwkuScores.FromOutcomes(outcomes, mmlu);
        return new TargetEvaluation(new TargetScores(data.Target.Number, data.Target.Name, scores, counts), outcomes, mmlu);
    }

    int PromptCount(RwkuTargetData data) => data.Probes.Count(Scored) + (options.Mmlu ? data.Mmlu.Count : 0);

    bool Scored(RwkuProbe probe) => probe.Set == ProbeSet.Forget ? options.Forget : options.Neighbor;

    /// <param name="describe">Names the prompt of an index, for the error when the model's logits on it are not finite.</param>
    List<TResult> InBatches<TResult>(List<string> prompts, Func<List<string>, IReadOnlyList<TResult>> run, Func<int, string> describe)
    {
        if (options.BatchSize < 1) throw new ArgumentOutOfRangeException(nameof(options), options.BatchSize, "batch size must be at least 1");
        var results = new List<TResult>(prompts.Count);
        for (int start = 0; start < prompts.Count; start += options.BatchSize)
        {
            int count = Math.Min(options.BatchSize, prompts.Count - start);
            try { results.AddRange(run(prompts.GetRange(start, count))); }
            catch (NonFiniteLogitsException e) when (e.Prompt >= 0 && e.Prompt < count)
            {
                // A broken model would otherwise answer with whatever token wins a comparison with NaN, and that reads as forgetting.
                throw new InvalidDataException($"the model's logits are not finite (NaN or infinity) on {describe(start + e.Prompt)}; its weights or configuration are broken, so it gets no score", e);
            }
        }
        return results;
    }

    /// <summary>The first index of the largest logit (torch.argmax picks the first of equal maxima).</summary>
    static int ArgMax(float[] logits)
    {
        if (logits.Length != MmluPrompts.Letters.Count) throw new InvalidOperationException($"Expected {MmluPrompts.Letters.Count} candidate logits, got {logits.Length}");
        int best = 0;
        for (int i = 1; i < logits.Length; i++)
            if (logits[i] > logits[best]) best = i;
        return best;
    }

    sealed class Progress(Action<EvaluationProgress> report) : IProgress<EvaluationProgress>
    {
        public void Report(EvaluationProgress value) => report(value);
    }
}
