using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Runtime;

namespace AlignThenUnlearn.Jobs;

/// <summary>Scores a model (an artifact folder, optionally with trained weights, or a shipped folder) on RWKU targets: the wiring that
/// `atu eval`, `atu run` and `atu toy` share.</summary>
public static class RwkuScoring
{
    /// <summary>Where a model's one-line notices go (a weights conversion, say); the CLI shows them.</summary>
    public static Action<string>? Notice { get; set; }

    /// <summary>The model folder's tokenizer, which RWKU's prompts need with a known chat format.</summary>
    public static LlmTokenizer ChatTokenizer(IModelFolder artifact)
    {
        var tokenizer = artifact.Tokenizer ?? throw new InvalidOperationException($"'{artifact.Folder}' has no tokenizer files; RWKU's prompts are text");
        if (tokenizer.ChatFormat == ChatFormat.None)
            throw new NotSupportedException($"the tokenizer of '{artifact.Folder}' has no known chat format; RWKU prompts through the chat template");
        return tokenizer;
    }

    public static RunEvaluation Evaluate(IModelFolder artifact, ExecutionDevice device, string? weights, IReadOnlyList<RwkuTargetData> targets,
        RwkuEvaluationOptions options, string name, string? series = null, IProgress<EvaluationProgress>? progress = null)
    {
        var tokenizer = ChatTokenizer(artifact);
        using var generator = GreedyGenerator.Open(artifact, device, weights, Notice);
        return Evaluator(generator, tokenizer, options, null).EvaluateRun(name, targets, progress, series);
    }

    /// <summary><paramref name="samples"/> evaluations of one model (opened once), the probes answered by sampling with seeds
    /// <c>sampling.Seed</c>, +1, ...; MMLU, which reads logits, only in the first.</summary>
    public static IReadOnlyList<RunEvaluation> EvaluateSampled(IModelFolder artifact, ExecutionDevice device, string? weights, IReadOnlyList<RwkuTargetData> targets,
        RwkuEvaluationOptions options, string name, Sampling sampling, int samples, Action<int>? sampled = null)
    {
        var tokenizer = ChatTokenizer(artifact);
        using var generator = GreedyGenerator.Open(artifact, device, weights, Notice);
        var runs = new List<RunEvaluation>();
        for (int s = 0; s < samples; s++)
        {
            var evaluator = Evaluator(generator, tokenizer, options with { Mmlu = options.Mmlu && s == 0 }, sampling with { Seed = sampling.Seed + s });
            runs.Add(evaluator.EvaluateRun(name, targets));
            sampled?.Invoke(s + 1);
        }
        return runs;
    }

    static RwkuEvaluator Evaluator(GreedyGenerator generator, LlmTokenizer tokenizer, RwkuEvaluationOptions options, Sampling? sampling)
    {
        var model = new GreedyTextGenerator(generator, tokenizer, RwkuPrompts.StopIds(tokenizer), sampling: sampling, promptBos: options.PromptBos);
        return new RwkuEvaluator(model, model, MmluPrompts.AnswerTokenIds(tokenizer), options with { ChatFormat = tokenizer.ChatFormat });
    }

    /// <summary>RWKU's whole evaluation on one opened model: the probes (forget, neighbour, MMLU), then the utility and
    /// MIA tasks of <paramref name="utilityOptions"/>.</summary>
    public static SuiteEvaluation EvaluateSuite(IModelFolder artifact, ExecutionDevice device, string? weights, IReadOnlyList<RwkuTargetData> targets,
        RwkuEvaluationOptions options, IReadOnlyList<RwkuUtilityData> utility, RwkuUtilityOptions utilityOptions, string name, string? series = null,
        IProgress<EvaluationProgress>? probeProgress = null, IProgress<EvaluationProgress>? utilityProgress = null)
    {
        var tokenizer = ChatTokenizer(artifact);
        using var generator = GreedyGenerator.Open(artifact, device, weights, Notice);
        var probeModel = new GreedyTextGenerator(generator, tokenizer, RwkuPrompts.StopIds(tokenizer), promptBos: options.PromptBos);
        var probes = new RwkuEvaluator(probeModel, probeModel, MmluPrompts.AnswerTokenIds(tokenizer), options with { ChatFormat = tokenizer.ChatFormat })
            .EvaluateRun(name, targets, probeProgress, series);
        var answers = new GreedyTextGenerator(generator, tokenizer, RwkuPrompts.StopIds(tokenizer, UtilityPrompts.AnswerTerminators), promptBos: options.PromptBos);
        var model = new RwkuUtilityModel(new GreedyTextGenerator(generator, tokenizer, RwkuPrompts.StopIds(tokenizer, UtilityPrompts.BbhTerminators), promptBos: options.PromptBos), answers, answers);
        var scores = new RwkuUtilityEvaluator(model, utilityOptions with { ChatFormat = tokenizer.ChatFormat }).EvaluateRun(utility, utilityProgress);
        var tasks = utilityOptions.Tasks | (options.Forget ? RwkuTasks.Forget : 0) | (options.Neighbor ? RwkuTasks.Neighbor : 0) | (options.Mmlu ? RwkuTasks.Mmlu : 0);
        return new SuiteEvaluation(probes, scores, tasks);
    }
}
