using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.Jobs;
using AlignThenUnlearn.Jobs.Artifacts;
using AlignThenUnlearn.Jobs.Evaluation;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Runtime;
using CommandLine;
using Spectre.Console;

namespace AlignThenUnlearn.Cli;

[Verb("eval", HelpText = "Score an artifact folder (optionally with trained weights), or a folder `atu ship` wrote (its ONNX model as shipped, int4 included), on RWKU: forget and neighbour probes by ROUGE-L recall, MMLU by next-token logits. Writes results.json, results.md (Table 1 layout) and probes.jsonl.")]
public class EvalOptions : ModelRunOptions
{

    [Option("rwku", Required = true, HelpText = "RWKU folder: per-target folders <n>_<Name>/ and All/.")]
    public string Rwku { get; set; } = "";

    [Option("targets", Default = "1-100", HelpText = "Targets: a number (7), a list (1,5,9), a range (1-100) or both (1-10,15).")]
    public string Targets { get; set; } = "1-100";

    [Option("batch-size", Default = 16, HelpText = "Prompts decoded together (RWKU uses 16).")]
    public int BatchSize { get; set; } = 16;

    [Option("out", Required = true, HelpText = "Folder for results.json, results.md and probes.jsonl.")]
    public string Out { get; set; } = "";

    [Option("force", HelpText = "Replace the reports of an earlier run in --out.")]
    public bool Force { get; set; }

    [Option("name", HelpText = "Run name in the tables and the plot (default: RUN/CHECKPOINT for a run folder's weights, e.g. king/final; other weights by their file name; else the artifact folder's name).")]
    public string? Name { get; set; }

    [Option("series", HelpText = "Series the run belongs to in `atu report`'s plot (e.g. the method; its checkpoints are joined by a line). Default: the method recorded by the run folder that wrote --weights (or --adapters).")]
    public string? Series { get; set; }

    [Option("no-neighbor", HelpText = "Skip the neighbour probes.")]
    public bool NoNeighbor { get; set; }

    [Option("no-mmlu", HelpText = "Skip MMLU.")]
    public bool NoMmlu { get; set; }

    [Option("max-new-tokens", Default = RwkuPrompts.MaxNewTokens, HelpText = "Tokens generated per probe (RWKU: 30).")]
    public int MaxNewTokens { get; set; } = RwkuPrompts.MaxNewTokens;

    [Option("suite", HelpText = "rwku: RWKU's whole evaluation (forget, neighbour, MMLU, BBH, TruthfulQA, TriviaQA, fluency, MIA); results.md in Table 2's layout, utility.json beside results.json.")]
    public string? Suite { get; set; }

    [Option("tasks", HelpText = "With --suite rwku: the tasks, comma-separated, of forget,neighbor,mmlu,bbh,truthfulqa,triviaqa,fluency,mia (default: all whose files the dataset has, so a toy world leaves out bbh, truthfulqa and triviaqa; a task named here must have its files).")]
    public string? Tasks { get; set; }

    [Option("icu", HelpText = "Put RWKU's in-context unlearning prompt about the target before every prompt (RWKU's use_prompt).")]
    public bool Icu { get; set; }

    [Option("prompt-bos", Default = PromptBos.Template, HelpText = "The BOS tokens of every chat prompt: Template (as the snapshot's chat template renders it: one) or Rwku (RWKU's evaluation: the template's BOS and then the tokenizer's, two for Llama-3).")]
    public PromptBos PromptBos { get; set; }

}

public static class EvalCommand
{
    /// <summary>Refuses a batch size or an answer length below 1.</summary>
    internal static void CheckCounts(EvalOptions o)
    {
        if (o.BatchSize < 1) throw new ArgumentException($"--batch-size {o.BatchSize}: expected 1 or more");
        if (o.MaxNewTokens < 1) throw new ArgumentException($"--max-new-tokens {o.MaxNewTokens}: expected 1 or more (the minimum that can produce an answer; with none, every answer would be empty and score as forgotten)");
    }

    public static int Run(EvalOptions o)
    {
        CheckCounts(o);
        OutputPaths.RequireApart(("--out", o.Out), ("--artifacts", o.Artifacts), ("--weights", o.Weights), ("--rwku", o.Rwku));
        var resultsPath = Path.Combine(o.Out, RwkuReports.ResultsFile);
        if (File.Exists(resultsPath) && !o.Force) throw new IOException($"'{resultsPath}' already exists; pass --force to replace the reports in '{o.Out}'");

        if (o.Suite is not null) return RunSuite(o, resultsPath);
        if (o.Tasks is not null) throw new ArgumentException($"--tasks {o.Tasks}: tasks are chosen within a suite; add --suite rwku");
        var artifact = OpenModel(o);
        var tokenizer = RwkuScoring.ChatTokenizer(artifact);
        var dataset = RwkuDataset.Open(o.Rwku);
        var targets = dataset.Select(o.Targets).Select(t => dataset.Load(t, includeMmlu: !o.NoMmlu)).ToList();
        var name = RunName(o);

        using var device = o.CreateDevice();
        var options = ProbeOptions(o, tokenizer.ChatFormat);

        new EvalJob(artifact, o.Weights, name, SeriesOf(o, o.Weights), o.Out).Probes(targets, options, device, new ConsoleReporter());
        return 0;
    }

    /// <summary><c>--suite rwku</c>: the probe evaluation and the utility/MIA evaluation of the tasks asked, on one model.</summary>
    static int RunSuite(EvalOptions o, string resultsPath)
    {
        if (!string.Equals(o.Suite, "rwku", StringComparison.OrdinalIgnoreCase)) throw new ArgumentException($"--suite {o.Suite}: the only suite is rwku");
        var tasks = o.Tasks is null ? RwkuTasks.All : RwkuTaskNames.Parse(o.Tasks);
        if (o.NoNeighbor) tasks &= ~RwkuTasks.Neighbor;
        if (o.NoMmlu) tasks &= ~RwkuTasks.Mmlu;
        var artifact = OpenModel(o);
        var tokenizer = RwkuScoring.ChatTokenizer(artifact);
        var dataset = RwkuDataset.Open(o.Rwku);
        var selected = dataset.Select(o.Targets);
        // Without --tasks, utility tasks whose files the dataset lacks (the toy world's BBH, TruthfulQA, TriviaQA) are left
        // out and their columns show "–"; a task named in --tasks must have its files.
        var absent = o.Tasks is null ? tasks & ~dataset.Available(selected, tasks) : RwkuTasks.None;
        tasks &= ~absent;
        if (absent != RwkuTasks.None) AnsiConsole.MarkupLineInterpolated($"[yellow]no files for {RwkuTaskNames.Format(absent)}[/] in {o.Rwku}: left out (shown as –)");
        bool probes = (tasks & (RwkuTasks.Forget | RwkuTasks.Neighbor | RwkuTasks.Mmlu)) != 0;
        var targets = selected.Select(t => probes ? dataset.Load(t, includeMmlu: tasks.HasFlag(RwkuTasks.Mmlu)) : new RwkuTargetData(t, [], [], [])).ToList();
        var utility = selected.Select(t => dataset.LoadUtility(t, tasks)).ToList();
        var name = RunName(o);

        using var device = o.CreateDevice();
        var options = ProbeOptions(o, tokenizer.ChatFormat, tasks);
        var utilityOptions = new RwkuUtilityOptions { ChatFormat = tokenizer.ChatFormat, BatchSize = o.BatchSize, Tasks = tasks & RwkuTasks.Utility, Icu = o.Icu };

        new EvalJob(artifact, o.Weights, name, SeriesOf(o, o.Weights), o.Out).Suite(targets, options, utility, utilityOptions, tasks, device, new ConsoleReporter());
        return 0;
    }

    /// <summary>The model --artifacts names: a shipped folder (one with genai_config.json), scored as shipped, or an
    /// artifact folder (with --weights when given).</summary>
    internal static IModelFolder OpenModel(EvalOptions o)
    {
        if (!ShippedModel.IsShipped(o.Artifacts)) return ArtifactModel.Open(o.Artifacts);
        if (o.Weights is not null)
            throw new ArgumentException($"--weights {o.Weights}: '{o.Artifacts}' is a shipped folder ({GenAiConfig.FileName}), scored with the weights it ships; to score other weights give the artifact folder they were trained from");
        return ShippedModel.Open(o.Artifacts);
    }

    /// <summary>The run's name in the reports: <c>--name</c>, else <see cref="DefaultName"/>.</summary>
    public static string RunName(EvalOptions o) => o.Name ?? DefaultName(o);

    /// <summary>The run's name without <c>--name</c>: a run folder's checkpoint as RUN/CHECKPOINT, other weights by their file
    /// name, else the artifact (or shipped) folder's name.</summary>
    public static string DefaultName(EvalOptions o) => o.Weights is not null
        ? RunRecords.CheckpointName(o.Weights) ?? Path.GetFileNameWithoutExtension(Path.TrimEndingDirectorySeparator(o.Weights))
        : Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(o.Artifacts)));

    /// <summary>The run's series: <c>--series</c>, else the method recorded by the run folder that wrote
    /// <paramref name="trained"/> (the weights, or the LoRA adapters merged into them).</summary>
    public static string? SeriesOf(EvalOptions o, string? trained) => o.Series ?? (trained is null ? null : RunRecords.Of(trained)?.Method);

    /// <summary>The probe evaluation's settings for the probe tasks in <paramref name="tasks"/> (default: forget, and
    /// neighbour and MMLU unless --no-neighbor, --no-mmlu).</summary>
    internal static RwkuEvaluationOptions ProbeOptions(EvalOptions o, ChatFormat format, RwkuTasks? tasks = null)
    {
        var probes = tasks ?? RwkuTasks.Forget | (o.NoNeighbor ? RwkuTasks.None : RwkuTasks.Neighbor) | (o.NoMmlu ? RwkuTasks.None : RwkuTasks.Mmlu);
        return new()
        {
            ChatFormat = format,
            BatchSize = o.BatchSize,
            MaxNewTokens = o.MaxNewTokens,
            Forget = probes.HasFlag(RwkuTasks.Forget),
            Neighbor = probes.HasFlag(RwkuTasks.Neighbor),
            Mmlu = probes.HasFlag(RwkuTasks.Mmlu),
            Icu = o.Icu,
            PromptBos = o.PromptBos,
        };
    }
}
