using System.Globalization;
using AlignThenUnlearn.Evaluation;
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

/// <summary>What one Align-then-Unlearn run needs, whoever starts it (the verbs above, `atu toy`).
/// <see cref="AlignTargets"/> names the alignment corpus's other targets (null: the preset's seeded draw).</summary>
public sealed record AtuJob(string Artifacts, string? Weights, string Rwku, int Target, AtuPreset Preset, string Out, string Cache,
    bool Resume, bool AlignmentOnly, bool ScoreStages, bool Report, IReadOnlyList<int>? AlignTargets = null, HiddenStateCacheSettings? HiddenStates = null);

public static class AtuCommand
{
    public const string ReportFolder = "report";

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
        var result = Execute(new AtuJob(o.Artifacts, o.Weights, o.Rwku, o.Target, preset, o.Out, cache, o.Resume, alignmentOnly, scoreStages, report,
            o.AlignTargets.Any() ? [.. o.AlignTargets] : null, hiddenStates), device);
        if (result.Stages.Count > 0) AnsiConsole.Write(StageTableView(result.Stages));
        return 0;
    }

    /// <summary>Runs the job with a progress bar: window embeddings (cached), the staged run, and the final report.</summary>
    public static UnlearningRunResult Execute(AtuJob job, ExecutionDevice device)
    {
        var artifact = ArtifactModel.Open(job.Artifacts);
        var tokenizer = artifact.Tokenizer ?? throw new InvalidOperationException($"'{job.Artifacts}' has no tokenizer files; the corpora are text");
        var encoderFolder = Path.Combine(job.Artifacts, EncoderInstaller.Folder);
        if (!Directory.Exists(encoderFolder))
            throw new InvalidOperationException($"'{job.Artifacts}' has no sentence encoder; add one with `atu export --encoder minilm --out {job.Artifacts}`");
        var dataset = RwkuDataset.Open(job.Rwku);
        var target = dataset.Target(job.Target);
        var data = dataset.Load(target, includeMmlu: job.Report);
        var evaluateStage = StageEvaluator(artifact, device, job.Weights, dataset, target, job.Preset.StageTasks, AllWeightsOf(job.Preset));   // before training: a missing file stops the run before it starts
        var others = job.AlignTargets is { } chosen ? ChosenTargets(dataset, target, chosen) : OtherTargets(dataset, target, job.Preset);
        var forgetTexts = dataset.ForgetTexts(target, job.Preset.ForgetCorpus).ToList();
        var alignmentTexts = forgetTexts.Concat(others.SelectMany(t => dataset.ForgetTexts(t, job.Preset.ForgetCorpus))).ToList();
        var tokenizerFiles = ArtifactExporter.TokenizerFiles.Select(artifact.PathOf).Where(File.Exists).ToList();
        AnsiConsole.MarkupLineInterpolated($"unlearning [bold]{target.Name}[/] (target {target.Number}) from {job.Artifacts} on {device.Description}; alignment corpus: {(others.Count == 0 ? "the target's" : "the target's and " + string.Join(", ", others.Select(t => t.Name)) + "'s")}");

        using var encoder = SentenceEncoder.Open(encoderFolder, device);
        CorpusWindows forget = null!, alignment = null!;
        WithProgress("window embeddings", 1, (task, _) =>
        {
            alignment = WindowEmbeddingCache.Compute(alignmentTexts, tokenizer, encoder, job.Preset.WindowTokens, job.Cache, tokenizerFiles, f => task.Value = f);
            forget = alignment.First(forgetTexts.Count);   // the forget corpus leads the alignment corpus: no second encoding
        });
        var inputs = new AtuInputs(artifact.Config, job.Weights ?? artifact.PathOf(ArtifactExporter.WeightsFile), alignment, forget,
            encoder.Embed([target.Name])[0], target.Name, tokenizer.EosId, EncoderName(artifact),
            string.Join(", ", others.Select(t => $"{t.Number} ({t.Name})")) is { Length: > 0 } names ? names : null);

        UnlearningRunResult result = null!;
        long total = job.Preset.Alignment.Steps + job.Preset.Stages.Sum(s => (long)s.UnlearnSteps + s.RealignSteps);
        WithProgress("Align-then-Unlearn", total, (task, log) =>
        {
            using var run = new AtuRun(job.Preset, inputs, new UnlearningRunOptions
            {
                Device = device,
                Folder = job.Out,
                Resume = job.Resume,
                Evaluate = job.ScoreStages ? evaluateStage : null,
                Progress = p =>
                {
                    task.Value = total - p.StepsLeftInRun;
                    var tau = p.Phase.StartsWith("unlearn", StringComparison.Ordinal) ? $" tau {p.Tau:0.00}" : "";
                    task.Description = Markup.Escape($"{p.Phase} step {p.Step}/{p.Steps}{tau} loss {p.Loss:0.0000} cos {p.MeanCosine:0.000} {p.StepsPerSecond:0.0} steps/s");
                },
                Log = log,
            }, new AtuRunOptions { AlignmentOnly = job.AlignmentOnly, HiddenStates = job.HiddenStates ?? new HiddenStateCacheSettings { Folder = job.Cache } });
            result = run.Run();
        });
        if (job.Report && result.Final is not null) WriteReport(job, artifact, device, data, result);
        return result;
    }

    /// <summary>The evaluation after each stage of a staged run (every method): the target's forget and neighbour probes and
    /// the preset's stage tasks, on the given weights (null: <paramref name="startWeights"/>, the model the run started
    /// from). The tasks' files are loaded here, before training, so that a missing one stops the run before it starts.</summary>
    public static Func<string?, ProbeScores> StageEvaluator(ArtifactModel artifact, ExecutionDevice device, string? startWeights, RwkuDataset dataset,
        RwkuTarget target, string[]? stageTaskNames, AllWeights? allWeights, PromptBos promptBos = PromptBos.Template)
    {
        var format = RwkuScoring.ChatTokenizer(artifact).ChatFormat;
        var stageTasks = stageTaskNames is { Length: > 0 } asked ? RwkuTaskNames.Parse(string.Join(",", asked)) : RwkuTasks.None;
        var options = new RwkuEvaluationOptions { ChatFormat = format, Mmlu = stageTasks.HasFlag(RwkuTasks.Mmlu), AllWeights = allWeights, PromptBos = promptBos };
        var data = dataset.Load(target, includeMmlu: options.Mmlu);
        var utility = dataset.LoadUtility(target, stageTasks);
        var utilityOptions = new RwkuUtilityOptions { ChatFormat = format, Tasks = stageTasks & RwkuTasks.Utility };
        return weights => StageScores(RwkuScoring.EvaluateSuite(artifact, device, weights ?? startWeights, [data], options, [utility], utilityOptions, "stage"), stageTasks);
    }

    /// <summary>The columns of RWKU's Table 2 (<see cref="RwkuSuiteReports.Columns"/>) that each of the preset's stage_tasks fills.</summary>
    static readonly (RwkuTasks Task, string Column)[] StageTaskColumns =
    [
        (RwkuTasks.Mia, "MIA FM ↑"), (RwkuTasks.Mia, "MIA RM ↓"), (RwkuTasks.Mmlu, "Gen ↑"), (RwkuTasks.Bbh, "Rea ↑"),
        (RwkuTasks.TruthfulQa, "Tru ↑"), (RwkuTasks.TriviaQa, "Fac ↑"), (RwkuTasks.Fluency, "Flu ↑"),
    ];

    /// <summary>A stage's forget and neighbour averages and, for the stage tasks asked, their figures as results.md shows
    /// them (x 100, named by the column without its arrow; a figure the data cannot give is left out).</summary>
    static ProbeScores StageScores(SuiteEvaluation suite, RwkuTasks stageTasks)
    {
        var mean = suite.Probes.Summary.Mean;
        var row = RwkuSuiteReports.Row(mean, suite.UtilityMean);
        var figures = RwkuSuiteReports.Columns.Select((column, i) => (Column: column, Value: row[i]))
            .Where(c => c.Value is not null && StageTaskColumns.Any(s => s.Column == c.Column && stageTasks.HasFlag(s.Task)))
            .ToDictionary(c => c.Column.TrimEnd('↑', '↓', ' '), c => 100 * c.Value!.Value);
        return new ProbeScores(100 * (mean.ForgetAll ?? double.NaN), 100 * (mean.NeighborAll ?? double.NaN), stageTasks == RwkuTasks.None ? null : figures);
    }

    /// <summary>The preset's weights of the "All" averages (null: the probe counts of the evaluated set).</summary>
    public static AllWeights? AllWeightsOf(AtuPreset preset) => AllWeightsOf(preset.AllWeights);

    public static AllWeights? AllWeightsOf(AllWeightSettings? weights) => weights is { } w
        ? new AllWeights(w.Forget[0], w.Forget[1], w.Forget[2], w.Neighbour[0], w.Neighbour[1]) : null;

    /// <summary>The encoder's name as installed (`atu export --encoder`): all-MiniLM-L6-v2 for the embedded one, else the
    /// name of the folder it came from (e.g. all-mpnet-base-v2); null when the manifest does not say.</summary>
    static string? EncoderName(ArtifactModel artifact)
    {
        var source = artifact.Manifest.Extra?["encoder"]?["source"]?.GetValue<string>();
        return source is null ? null : source == EncoderInstaller.MiniLm ? "all-MiniLM-L6-v2" : Path.GetFileName(Path.TrimEndingDirectorySeparator(source));
    }

    /// <summary>The targets named by --align-targets, refusing the target itself and numbers the dataset lacks.</summary>
    static List<RwkuTarget> ChosenTargets(RwkuDataset dataset, RwkuTarget target, IReadOnlyList<int> numbers)
    {
        if (numbers.Contains(target.Number)) throw new ArgumentException($"--align-targets names the target {target.Number} itself; its corpus is in the alignment corpus already");
        if (numbers.Distinct().Count() != numbers.Count) throw new ArgumentException($"--align-targets {string.Join(",", numbers)} names a target twice");
        return [.. numbers.Select(dataset.Target)];
    }

    /// <summary>The targets whose corpora join the target's for alignment: the preset's number of them, drawn by its seed.</summary>
    static List<RwkuTarget> OtherTargets(RwkuDataset dataset, RwkuTarget target, AtuPreset preset) =>
        [.. dataset.Draw(preset.AlignmentExtraTargets, preset.Seed, except: target).OrderBy(t => t.Number)];

    /// <summary>RWKU with MMLU on the model before, at each named checkpoint and at the end; one table and the plot.</summary>
    static void WriteReport(AtuJob job, ArtifactModel artifact, ExecutionDevice device, RwkuTargetData data, UnlearningRunResult result)
    {
        var tokenizer = RwkuScoring.ChatTokenizer(artifact);
        var options = new RwkuEvaluationOptions { ChatFormat = tokenizer.ChatFormat, AllWeights = AllWeightsOf(job.Preset) };
        var models = new List<ReportModel> { new("before", job.Weights, null) };
        models.AddRange(result.Named.OrderByDescending(kv => kv.Key).Select(kv => new ReportModel($"ATU {ThresholdCheckpoints.NameOf(kv.Key)}", Path.Combine(kv.Value, RunHarness.ModelFile), "ATU")));
        models.Add(new("ATU final", Path.Combine(result.Final!, RunHarness.ModelFile), "ATU"));
        WriteReports(job.Out, artifact, device, data, options, models);
    }

    /// <summary>One model of a run's report: its row name, weights (null: the artifact's), series of the plot, and whether
    /// RWKU's unlearning prompt is put before every question (ICU).</summary>
    public sealed record ReportModel(string Name, string? Weights, string? Series, bool Icu = false);

    /// <summary>RWKU on each model, one report folder each under the run's report folder, then the combined table and plot.</summary>
    public static void WriteReports(string runFolder, ArtifactModel artifact, ExecutionDevice device, RwkuTargetData data, RwkuEvaluationOptions options,
        IReadOnlyList<ReportModel> models)
    {
        var folders = new List<string>();
        WithProgress("RWKU report", models.Count, (task, _) =>
        {
            foreach (var model in models)
            {
                var folder = Path.Combine(runFolder, ReportFolder, OutputPaths.Slug(model.Name));
                RwkuReports.WriteRun(folder, RwkuScoring.Evaluate(artifact, device, model.Weights, [data], options with { Icu = model.Icu }, model.Name, model.Series));
                folders.Add(folder);
                task.Increment(1);
            }
        });
        var runs = RwkuReports.Combine(folders, Path.Combine(runFolder, ReportFolder));
        AnsiConsole.Write(ReportCommand.Table(runs));
        AnsiConsole.MarkupLineInterpolated($"[green]wrote[/] {Path.Combine(runFolder, ReportFolder, RwkuReports.CombinedTableFile)} and {TradeoffPlot.FileName}");
    }

    /// <summary>Set on a flow that runs beside another (`atu toy --jobs 2`): Spectre draws one live display at a time, so
    /// its work runs without a bar (the log lines are still printed).</summary>
    public static readonly AsyncLocal<bool> NoProgressBars = new();

    /// <summary>A progress bar for one piece of work; log lines are printed above it.</summary>
    public static void WithProgress(string description, double maxValue, Action<ProgressTask, Action<string>> work)
    {
        if (NoProgressBars.Value)
        {
            work(new ProgressTask(0, Markup.Escape(description), Math.Max(maxValue, 1)), line => AnsiConsole.MarkupLine(Markup.Escape(line)));
            return;
        }
        AnsiConsole.Progress()
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask(Markup.Escape(description), maxValue: Math.Max(maxValue, 1));
                work(task, line => AnsiConsole.MarkupLine(Markup.Escape(line)));
                task.Value = task.MaxValue;
            });
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
