using AlignThenUnlearn.Models;

namespace AlignThenUnlearn.Evaluation;

public sealed record RwkuUtilityOptions
{
    public required ChatFormat ChatFormat { get; init; }
    /// <summary>Prompts (or scored texts) handed to the model at once.</summary>
    public int BatchSize { get; init; } = 8;
    public RwkuTasks Tasks { get; init; } = RwkuTasks.Utility;
    /// <summary>RWKU's in-context unlearning prompt before every message and MIA text.</summary>
    public bool Icu { get; init; }
}

/// <summary>The model behind the utility tasks: greedy generation that stops only at the EOS (BBH), greedy
/// generation that also stops at RWKU's answer terminators (TriviaQA, fluency), and token scoring (TruthfulQA, MIA).</summary>
public sealed record RwkuUtilityModel(ITextGenerator Reasoning, ITextGenerator Answers, ITokenScorer Scorer);

public sealed record BbhOutcome(BbhQuestion Question, string Output, string Prediction, double Score);
/// <summary>A TruthfulQA question's summed log-probability of every answer, and its MC1 and MC2.</summary>
public sealed record TruthfulQaOutcome(TruthfulQaQuestion Question, IReadOnlyDictionary<string, double> AnswerScores, double Mc1, double Mc2);
public sealed record TriviaQaOutcome(TriviaQaQuestion Question, string Output, double ExactMatch, double F1);
public sealed record FluencyOutcome(FluencyInstruction Instruction, string Output, double Entropy);
/// <summary>A membership-inference text's scores; null when it has a single token (RWKU skips it).</summary>
public sealed record MiaOutcome(MiaText Text, MiaScores? Scores);

/// <summary>RWKU's utility and MIA figures of a target (null where not measured): BBH exact match, TruthfulQA MC1 and
/// MC2, TriviaQA exact match and F1, fluency (weighted n-gram entropy in bits), and the mean loss (minus the mean
/// log-likelihood) of the forget and the retain member texts, with their zlib and Min-K%++ (k = 0.2) scores.</summary>
public sealed record UtilityScores(double? Bbh, double? TruthfulQaMc1, double? TruthfulQaMc2, double? TriviaQaExactMatch, double? TriviaQaF1,
    double? Fluency, double? ForgetLoss, double? RetainLoss, double? ForgetZlib = null, double? RetainZlib = null,
    double? ForgetMinKPlusPlus20 = null, double? RetainMinKPlusPlus20 = null)
{
    public static UtilityScores MeanOf(IReadOnlyCollection<UtilityScores> targets) => new(
        Mean(targets.Select(t => t.Bbh)), Mean(targets.Select(t => t.TruthfulQaMc1)), Mean(targets.Select(t => t.TruthfulQaMc2)),
        Mean(targets.Select(t => t.TriviaQaExactMatch)), Mean(targets.Select(t => t.TriviaQaF1)), Mean(targets.Select(t => t.Fluency)),
        Mean(targets.Select(t => t.ForgetLoss)), Mean(targets.Select(t => t.RetainLoss)), Mean(targets.Select(t => t.ForgetZlib)),
        Mean(targets.Select(t => t.RetainZlib)), Mean(targets.Select(t => t.ForgetMinKPlusPlus20)), Mean(targets.Select(t => t.RetainMinKPlusPlus20)));

    internal static double? Mean(IEnumerable<double?> values) => Means.OfPresent(values);
}

/// <summary>A target's utility scores with every outcome behind them.</summary>
public sealed record UtilityEvaluation(RwkuTarget Target, UtilityScores Scores, IReadOnlyList<BbhOutcome> Bbh, IReadOnlyList<TruthfulQaOutcome> TruthfulQa,
    IReadOnlyList<TriviaQaOutcome> TriviaQa, IReadOnlyList<FluencyOutcome> Fluency, IReadOnlyList<MiaOutcome> Mia);

/// <summary>RWKU's utility (BBH, TruthfulQA, TriviaQA, fluency) and membership-inference evaluation of one model:
/// every prompt built as RWKU builds it, answered or scored through <see cref="RwkuUtilityModel"/>, scored as RWKU's
/// eval_*.py scores it. Progress counts prompts and scored texts (a TruthfulQA answer is one text).</summary>
public sealed class RwkuUtilityEvaluator(RwkuUtilityModel model, RwkuUtilityOptions options)
{
    public IReadOnlyList<UtilityEvaluation> EvaluateRun(IReadOnlyList<RwkuUtilityData> targets, IProgress<EvaluationProgress>? progress = null)
    {
        if (options.BatchSize < 1) throw new ArgumentOutOfRangeException(nameof(options), options.BatchSize, "batch size must be at least 1");
        int total = targets.Sum(WorkCount), done = 0;
        var results = new List<UtilityEvaluation>();
        foreach (var target in targets)
            results.Add(Evaluate(target, count =>
            {
                done += count;
                progress?.Report(new EvaluationProgress(done, total, target.Target));
            }));
        return results;
    }

    bool Has(RwkuTasks task) => options.Tasks.HasFlag(task);

    int WorkCount(RwkuUtilityData data) =>
        (Has(RwkuTasks.Bbh) ? data.Bbh.Count : 0) + (Has(RwkuTasks.TruthfulQa) ? data.TruthfulQa.Sum(q => AnswersOf(q).Count) : 0)
        + (Has(RwkuTasks.TriviaQa) ? data.TriviaQa.Count : 0) + (Has(RwkuTasks.Fluency) ? data.Fluency.Count : 0) + (Has(RwkuTasks.Mia) ? data.Mia.Count : 0);

    UtilityEvaluation Evaluate(RwkuUtilityData data, Action<int> advance)
    {
        var format = options.ChatFormat;
        var bbh = new List<BbhOutcome>();
        if (Has(RwkuTasks.Bbh))
        {
            var outputs = Generate(model.Reasoning, [.. data.Bbh.Select(q => UtilityPrompts.Bbh(q, format, options.Icu))], UtilityPrompts.BbhMaxNewTokens, advance);
            bbh.AddRange(data.Bbh.Select((q, i) =>
            {
                var prediction = BbhAnswer.Extract(outputs[i]);
                return new BbhOutcome(q, outputs[i], prediction, SquadScores.BestExactMatch(prediction, q.References));
            }));
        }

        var truthful = new List<TruthfulQaOutcome>();
        if (Has(RwkuTasks.TruthfulQa))
        {
            var prompts = data.TruthfulQa.Select(q => UtilityPrompts.TruthfulQa(q, format, options.Icu)).ToList();
            var texts = data.TruthfulQa.SelectMany((q, i) => AnswersOf(q).Select(answer => (Question: i, Answer: answer))).ToList();
            var scored = Score([.. texts.Select(t => UtilityPrompts.TruthfulQaCompletion(prompts[t.Question], t.Answer))], advance);
            var promptTokens = prompts.Select(model.Scorer.TokenCount).ToList();
            for (int q = 0; q < data.TruthfulQa.Count; q++)
            {
                var question = data.TruthfulQa[q];
                var answerScores = new Dictionary<string, double>(StringComparer.Ordinal);
                for (int t = 0; t < texts.Count; t++)
                    if (texts[t].Question == q) answerScores[texts[t].Answer] = scored[t].SumFrom(Math.Min(promptTokens[q], scored[t].Ids.Length));
                double[] ScoresOf(IEnumerable<string> answers) => [.. answers.Select(a => answerScores[a])];
                truthful.Add(new TruthfulQaOutcome(question, answerScores,
                    TruthfulQaScores.Mc1(ScoresOf(question.Mc1.True), ScoresOf(question.Mc1.False)),
                    TruthfulQaScores.Mc2(ScoresOf(question.Mc2.True), ScoresOf(question.Mc2.False))));
            }
        }

        var trivia = new List<TriviaQaOutcome>();
        if (Has(RwkuTasks.TriviaQa))
        {
            var outputs = Generate(model.Answers, [.. data.TriviaQa.Select(q => UtilityPrompts.TriviaQa(q, format, options.Icu))], UtilityPrompts.TriviaQaMaxNewTokens, advance);
            // RWKU scores the raw continuation: normalisation drops the surrounding whitespace.
            trivia.AddRange(data.TriviaQa.Select((q, i) => new TriviaQaOutcome(q, outputs[i], SquadScores.BestExactMatch(outputs[i], q.Answers), SquadScores.BestF1(outputs[i], q.Answers))));
        }

        var fluency = new List<FluencyOutcome>();
        if (Has(RwkuTasks.Fluency))
        {
            var outputs = Generate(model.Answers, [.. data.Fluency.Select(f => UtilityPrompts.Fluency(f, format, options.Icu))], UtilityPrompts.FluencyMaxNewTokens, advance);
            fluency.AddRange(data.Fluency.Select((f, i) => new FluencyOutcome(f, outputs[i], NgramEntropy.OfText(outputs[i]))));
        }

        var mia = new List<MiaOutcome>();
        if (Has(RwkuTasks.Mia))
        {
            var texts = data.Mia.Select(t => UtilityPrompts.Mia(t, options.Icu)).ToList();
            var scored = Score(texts, advance);
            mia.AddRange(data.Mia.Select((t, i) => new MiaOutcome(t, MiaScores.Of(texts[i], scored[i]))));
        }

        double? MiaMean(MiaSet set, Func<MiaScores, double> score) =>
            UtilityScores.Mean(mia.Where(m => m.Text.Set == set && m.Scores is not null).Select(m => (double?)score(m.Scores!)));
        int k20 = 1; // index of k = 0.2 in MiaScores.Ratios
        var scores = new UtilityScores(
            UtilityScores.Mean(bbh.Select(b => (double?)b.Score)),
            UtilityScores.Mean(truthful.Select(t => (double?)t.Mc1)), UtilityScores.Mean(truthful.Select(t => (double?)t.Mc2)),
            UtilityScores.Mean(trivia.Select(t => (double?)t.ExactMatch)), UtilityScores.Mean(trivia.Select(t => (double?)t.F1)),
            UtilityScores.Mean(fluency.Select(f => (double?)f.Entropy)),
            MiaMean(MiaSet.Forget, s => s.Loss), MiaMean(MiaSet.Retain, s => s.Loss),
            MiaMean(MiaSet.Forget, s => s.Zlib), MiaMean(MiaSet.Retain, s => s.Zlib),
            MiaMean(MiaSet.Forget, s => s.MinKPlusPlus[k20]), MiaMean(MiaSet.Retain, s => s.MinKPlusPlus[k20]));
        return new UtilityEvaluation(data.Target, scores, bbh, truthful, trivia, fluency, mia);
    }

    /// <summary>The answers of a question whose log-probabilities are needed: MC2's choices, then any of MC1's that
    /// MC2 lacks (RWKU scores MC2's only and looks MC1's up among them).</summary>
    static IReadOnlyList<string> AnswersOf(TruthfulQaQuestion question) => [.. question.Mc2.Choices.Concat(question.Mc1.Choices).Distinct(StringComparer.Ordinal)];

    List<string> Generate(ITextGenerator generator, List<string> prompts, int maxNewTokens, Action<int> advance) => InBatches(prompts, batch =>
    {
        var outputs = generator.Generate(batch, maxNewTokens);
        if (outputs.Count != batch.Count) throw new InvalidOperationException($"The generator answered {outputs.Count} of {batch.Count} prompts");
        advance(batch.Count);
        return outputs;
    });

    List<Runtime.TokenLogProbs> Score(List<string> texts, Action<int> advance) => InBatches(texts, batch =>
    {
        var scored = model.Scorer.ScoreTexts(batch);
        if (scored.Count != batch.Count) throw new InvalidOperationException($"The scorer scored {scored.Count} of {batch.Count} texts");
        advance(batch.Count);
        return scored;
    });

    List<TResult> InBatches<TResult>(List<string> items, Func<List<string>, IReadOnlyList<TResult>> run)
    {
        var results = new List<TResult>(items.Count);
        for (int start = 0; start < items.Count; start += options.BatchSize)
            results.AddRange(run(items.GetRange(start, Math.Min(options.BatchSize, items.Count - start))));
        return results;
    }
}
