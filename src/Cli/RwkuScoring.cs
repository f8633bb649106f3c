using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Runtime;

namespace AlignThenUnlearn.Cli;

/// <summary>Scores a model (an artifact folder, optionally with trained weights) on RWKU targets: the wiring that
/// `atu eval`, `atu run` and `atu toy` share.</summary>
public static class RwkuScoring
{
    /// <summary>The artifact's tokenizer, which RWKU's prompts need with a known chat format.</summary>
    public static LlmTokenizer ChatTokenizer(ArtifactModel artifact)
    {
        var tokenizer = artifact.Tokenizer ?? throw new InvalidOperationException($"'{artifact.Folder}' has no tokenizer files; RWKU's prompts are text");
        if (tokenizer.ChatFormat == ChatFormat.None)
            throw new NotSupportedException($"the tokenizer of '{artifact.Folder}' has no known chat format; RWKU prompts through the chat template");
        return tokenizer;
    }

    public static RunEvaluation Evaluate(ArtifactModel artifact, ExecutionDevice device, string? weights, IReadOnlyList<RwkuTargetData> targets,
        RwkuEvaluationOptions options, string name, string? series = null, IProgress<EvaluationProgress>? progress = null)
    {
        var tokenizer = ChatTokenizer(artifact);
        using var generator = GreedyGenerator.Open(artifact, device, weights, ModelRunOptions.Notice);
        var model = new GreedyTextGenerator(generator, tokenizer, RwkuPrompts.StopIds(tokenizer));
        var evaluator = new RwkuEvaluator(model, model, MmluPrompts.AnswerTokenIds(tokenizer), options with { ChatFormat = tokenizer.ChatFormat });
        return evaluator.EvaluateRun(name, targets, progress, series);
    }

    /// <summary>RWKU's whole evaluation on one opened model: the probes (forget, neighbour, MMLU), then the utility and
    /// MIA tasks of <paramref name="utilityOptions"/>.</summary>
    public static SuiteEvaluation EvaluateSuite(ArtifactModel artifact, ExecutionDevice device, string? weights, IReadOnlyList<RwkuTargetData> targets,
        RwkuEvaluationOptions options, IReadOnlyList<RwkuUtilityData> utility, RwkuUtilityOptions utilityOptions, string name, string? series = null,
        IProgress<EvaluationProgress>? probeProgress = null, IProgress<EvaluationProgress>? utilityProgress = null)
    {
        var tokenizer = ChatTokenizer(artifact);
        using var generator = GreedyGenerator.Open(artifact, device, weights, ModelRunOptions.Notice);
        var probeModel = new GreedyTextGenerator(generator, tokenizer, RwkuPrompts.StopIds(tokenizer));
        var probes = new RwkuEvaluator(probeModel, probeModel, MmluPrompts.AnswerTokenIds(tokenizer), options with { ChatFormat = tokenizer.ChatFormat })
            .EvaluateRun(name, targets, probeProgress, series);
        var answers = new GreedyTextGenerator(generator, tokenizer, RwkuPrompts.StopIds(tokenizer, UtilityPrompts.AnswerTerminators));
        var model = new RwkuUtilityModel(new GreedyTextGenerator(generator, tokenizer, RwkuPrompts.StopIds(tokenizer, UtilityPrompts.BbhTerminators)), answers, answers);
        var scores = new RwkuUtilityEvaluator(model, utilityOptions with { ChatFormat = tokenizer.ChatFormat }).EvaluateRun(utility, utilityProgress);
        var tasks = utilityOptions.Tasks | (options.Forget ? RwkuTasks.Forget : 0) | (options.Neighbor ? RwkuTasks.Neighbor : 0) | (options.Mmlu ? RwkuTasks.Mmlu : 0);
        return new SuiteEvaluation(probes, scores, tasks);
    }

    /// <summary>Progress reported on the caller's thread (System.Progress would post it to the thread pool).</summary>
    public sealed class Callback<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}
