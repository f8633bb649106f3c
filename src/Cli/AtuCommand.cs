using AlignThenUnlearn.Jobs;
using System.Globalization;
using AlignThenUnlearn.Jobs.Reports;
using AlignThenUnlearn.Jobs.Unlearning;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Unlearning;
using CommandLine;
using Spectre.Console;

namespace AlignThenUnlearn.Cli;

/// <summary>Options of the Align-then-Unlearn verbs (`atu align`, `atu unlearn`, `atu run`).</summary>
public abstract class AtuOptions : ModelRunOptions
{
    [Option("rwku", Required = true, HelpText = "RWKU folder (per-target folders <n>_<Name>/): the target's forget corpus (the preset's forget_corpus: positive_phi.json for paper, passage.json for toy), its probes are scored after every stage.")]
    public string Rwku { get; set; } = "";

    [Option("target", Required = true, HelpText = "The RWKU target number to unlearn.")]
    public int Target { get; set; }

    [Option("preset", HelpText = "A built-in preset or a preset JSON file: every value of the method (default: paper for atu, rwku-llama3-METHOD[-lora] for a trained method; toy and toy-METHOD[-lora] are the toy world's).")]
    public string? Preset { get; set; }

    [Option("layer", HelpText = "Hidden-state index(es) the head(s) read, overriding the preset (several: one head per layer, losses summed).")]
    public IEnumerable<int> Layers { get; set; } = [];

    [Option("micro-batch", HelpText = "Rows (examples) per micro-batch, overriding the preset's micro_batch: each batch runs in pieces whose gradients add up to the batch's (less memory, same step); must divide the batch size; 0: the whole batch.")]
    public int? MicroBatch { get; set; }

    [Option("out", Required = true, HelpText = "Run folder: checkpoints, stage table, named checkpoints, log, reports.")]
    public string Out { get; set; } = "";

    [Option("cache", HelpText = "Folder of cached window embeddings (default: window-cache next to --out).")]
    public string? Cache { get; set; }

    [Option("resume", HelpText = "Continue the run in --out from its newest checkpoint.")]
    public bool Resume { get; set; }

    [Option("align-targets", Separator = ',', HelpText = "The other targets whose forget corpora join the target's for alignment, e.g. 3,17,42 (default: the preset's alignment_extra_targets drawn by its seed).")]
    public IEnumerable<int> AlignTargets { get; set; } = [];

    [Option("no-hidden-cache", HelpText = "Recompute the LLM's hidden states at every (re)alignment step instead of caching them once per phase (same results, slower; for comparison).")]
    public bool NoHiddenCache { get; set; }

    [Option("method", Default = AlignThenUnlearnMethod.Id, HelpText = nameof(MethodHelp.Method), ResourceType = typeof(MethodHelp))]
    public string Method { get; set; } = AlignThenUnlearnMethod.Id;

    [Option("lora", HelpText = "Train the baseline's LoRA adapters (rank 8, alpha 16 on q_proj, v_proj; merged for evaluation) instead of every weight.")]
    public bool Lora { get; set; }

    [Option("hidden-cache-memory", Default = 2048, HelpText = "MiB of cached hidden states kept in the device's memory; more are memory-mapped from a file in --cache.")]
    public long HiddenCacheMemory { get; set; } = 2048;
}

[Verb("align", HelpText = "Align-then-Unlearn, first part: train the embedding prediction head on the target's and other targets' corpora (the LLM frozen). `atu unlearn` continues the run.")]
public sealed class AlignOptions : AtuOptions;

[Verb("unlearn", HelpText = "Align-then-Unlearn, second part: the stage schedule (unlearn at tau, score the probes, realign) on a run `atu align` started; names the checkpoints where the forget average first drops below each threshold.")]
public sealed class UnlearnOptions : AtuOptions
{
    [Option("no-eval", HelpText = "Score no probes after the stages (then no checkpoints are named).")]
    public bool NoEval { get; set; }
}

[Verb("run", HelpText = "Align-then-Unlearn in one go: alignment, the stage schedule with probes after every stage, then RWKU (forget, neighbour, MMLU) on the model before, at each named checkpoint and at the end: report/combined.md (Table 1 layout) and the trade-off plot.")]
public sealed class RunOptions : AtuOptions;

public static class AtuCommand
{
    /// <summary>The folder of a run's report (<see cref="RunReports.ReportFolder"/>).</summary>
    public const string ReportFolder = RunReports.ReportFolder;

    public static int Run(AlignOptions o) => MethodRegistry.Get(o.Method) is AlignThenUnlearnMethod ? Run(o, alignmentOnly: true, scoreStages: false, report: false)
        : throw new ArgumentException($"`atu align` is Align-then-Unlearn's first part; --method {o.Method} runs with `atu unlearn` or `atu run`");

    public static int Run(UnlearnOptions o)
    {
        if (MethodRegistry.Get(o.Method) is not AlignThenUnlearnMethod) return MethodCommand.Run(o, report: false);
        if (!File.Exists(Path.Combine(o.Out, RunHarness.PresetFile)))
            throw new InvalidOperationException($"'{o.Out}' holds no aligned run; start it with `atu align` (or run everything with `atu run`)");
        o.Resume = true;
        return Run(o, alignmentOnly: false, scoreStages: !o.NoEval, report: false);
    }

    public static int Run(RunOptions o) => MethodRegistry.Get(o.Method) is not AlignThenUnlearnMethod ? MethodCommand.Run(o, report: true)
        : Run(o, alignmentOnly: false, scoreStages: true, report: true);

    static int Run(AtuOptions o, bool alignmentOnly, bool scoreStages, bool report)
    {
        var preset = AtuPreset.Load(o.Preset ?? "paper");
        if (o.Layers.Any()) preset = preset with { Layers = o.Layers.ToArray() };
        if (o.MicroBatch is int microBatch) preset = preset.WithMicroBatch(microBatch, "--micro-batch");
        var cache = o.Cache ?? Path.Combine(Path.GetDirectoryName(Path.GetFullPath(o.Out))!, "window-cache");
        (string, string?)[] inputs = [("--artifacts", o.Artifacts), ("--weights", o.Weights), ("--rwku", o.Rwku), ("--preset", File.Exists(o.Preset) ? o.Preset : null)];
        OutputPaths.RequireApart(("--out", o.Out), inputs);
        OutputPaths.RequireApart(("--cache", cache), inputs);
        var hiddenStates = new HiddenStateCacheSettings { Enabled = !o.NoHiddenCache, MemoryLimitBytes = o.HiddenCacheMemory << 20, Folder = cache };
        using var device = o.CreateDevice();
        var result = new AtuJob(o.Artifacts, o.Weights, o.Rwku, o.Target, preset, o.Out, cache, o.Resume, alignmentOnly, scoreStages, report,
            o.AlignTargets.Any() ? [.. o.AlignTargets] : null, hiddenStates).Run(device, new ConsoleReporter());
        if (result.Stages.Count > 0) AnsiConsole.Write(StageTableView(result.Stages));
        return 0;
    }

    public static Table StageTableView(IReadOnlyList<StageRecord> rows)
    {
        var table = new Table();
        var utility = StageTable.UtilityColumns(rows);
        foreach (var column in new[] { "stage", "tau", "unlearn loss", "realign loss", "cos to target", "forget avg", "neighbour avg" }.Concat(utility).Append("checkpoint"))
            table.AddColumn(new TableColumn(Markup.Escape(column)).RightAligned());
        string F(double? v, string format) => v?.ToString(format, CultureInfo.InvariantCulture) ?? "–";
        foreach (var r in rows)
            table.AddRow([r.Stage.ToString(CultureInfo.InvariantCulture), F(r.Tau, "0.00"), F(r.UnlearnLoss, "0.0000"), F(r.RealignLoss, "0.0000"),
                F(r.MeanCosineToTarget, "0.000"), F(r.ForgetAverage, "0.0"), F(r.NeighbourAverage, "0.0"),
                .. utility.Select(u => F(r.Utility?.TryGetValue(u, out var v) == true ? v : null, "0.0")), Markup.Escape(r.Checkpoint ?? "")]);
        return table;
    }
}
