using AlignThenUnlearn.Jobs;
using AlignThenUnlearn.Jobs.Toy;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.Evaluation.Comparison;
using AlignThenUnlearn.ToyWorld;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Unlearning;
using AlignThenUnlearn.Jobs.Unlearning;

namespace AlignThenUnlearn.Jobs.Toy;

/// <summary>`atu toy`, the embedded default end to end (DESIGN.md section 5): world -> pre-training -> the model before
/// unlearning on every person -> every method (Align-then-Unlearn and the baselines, each with its toy preset) on several
/// people, one run at a time -> each kept checkpoint evaluated -> Table 1, the comparison, every method's acceptance
/// figures and the trade-off plot. Each stage leaves its output under the root folder and is skipped when a rerun finds
/// it complete, so a rerun after an interruption continues and a finished run only rewrites its report.</summary>
public static class ToyRun
{
    public const string WorldFolderName = "world", ModelFolderName = "model", BeforeFolderName = "before", RunsFolderName = "runs",
        ReportFolderName = "report";
    /// <summary>An evaluation's toy figures beside its results.json (RWKU's scores of the person unlearned).</summary>
    public const string ScoresFile = "toy-scores.json";
    /// <summary>Every method's kept checkpoints at (forget, neighbour); forget_vs_neighbor.png is the equal-forgetting plot.</summary>
    public const string CheckpointPlotFile = "checkpoints_forget_vs_neighbor.png";

    /// <summary>The runs of `atu toy` (--methods names) in its table's order: every method's full run, then the LoRA runs
    /// (NAME-lora), as the method registry says.</summary>
    public static IReadOnlyList<string> AllMethods { get; } =
    [
        .. MethodRegistry.All.Where(m => m.Toy.HasFlag(ToyVariants.Full)).Select(m => m.Name),
        .. MethodRegistry.All.Where(m => m.Toy.HasFlag(ToyVariants.Lora)).Select(m => m.Name + LoraSuffix),
    ];

    public const string LoraSuffix = "-lora";

    /// <summary>What the toy run gives its caller: the method rows and whether the acceptance figures (of the model before
    /// and of <see cref="ToyReport.CheckedMethod"/>) are met.</summary>
    public sealed record Result(IReadOnlyList<ToyMethodRun> Runs, bool Accepted);

    /// <summary>The methods named by --methods, in <see cref="AllMethods"/>' order; an unknown or repeated name is refused.</summary>
    public static IReadOnlyList<string> ParseMethods(IEnumerable<string> names)
    {
        var given = names.Select(n => n.Trim().ToLowerInvariant()).Where(n => n.Length > 0).ToList();
        foreach (var name in given.Where(n => !AllMethods.Contains(n)))
            throw new ArgumentException($"--methods: unknown method '{name}'; atu toy runs {string.Join(",", AllMethods)}");
        if (given.Distinct().Count() != given.Count) throw new ArgumentException($"--methods {string.Join(",", given)} names a method twice");
        return given.Count == 0 ? AllMethods : [.. AllMethods.Where(given.Contains)];
    }

    /// <summary>The evaluation of one model on one person: the person's forget and neighbour probes with the world's
    /// multiple-choice questions, the retain people's FB and QA probes, the person's fluency instructions and MIA texts.</summary>
    sealed record Person(RwkuTarget Target, RwkuTargetData Probes, IReadOnlyList<RwkuTargetData> Retain, RwkuUtilityData Utility);

    /// <param name="parallelJobs">How many (person, method) runs go at once, each on one intra-op thread of <paramref name="device"/>.</param>
    public static Result Run(string root, int seed, int peopleCount, ExecutionDevice device, ToyPretrainingSettings pretraining,
        IReadOnlyList<string>? methods, int parallelJobs, bool attacks, IJobReporter reporter)
    {
        methods ??= AllMethods;
        var stages = new StageTimes(reporter);
        var cpuAtStart = Process.GetCurrentProcess().UserProcessorTime;
        T Timed<T>(string stage, bool cached, Func<T> work) => stages.Timed(stage, cached, work);

        var world = Path.Combine(root, WorldFolderName);
        Timed("world", Directory.Exists(world), () => Directory.Exists(world) ? CheckWorld(world, seed) : ToyStages.WriteWorld(seed, world));
        var model = Path.Combine(root, ModelFolderName);
        Timed("pre-training", Directory.Exists(model), () => Directory.Exists(model) ? model : ToyStages.Pretrain(world, model, pretraining, device, resume: true, force: false, reporter));

        var artifact = ArtifactModel.Open(model);
        var startWeights = artifact.PathOf(ArtifactExporter.WeightsFile);
        var dataset = RwkuDataset.Open(world);
        var everyone = dataset.Targets.Select(t => dataset.Load(t)).ToList();
        var utility = everyone.SelectMany(d => d.Mmlu).ToList();
        var beforePath = Path.Combine(root, BeforeFolderName);
        var before = Timed("before unlearning, every person", File.Exists(Path.Combine(beforePath, RwkuReports.ResultsFile)),
            () => Evaluated(beforePath, () => Score(artifact, device, null, everyone, "before", null, $"every person ({everyone.Count})", reporter)));
        var utilityBefore = before.Mean.Mmlu;

        var chosen = dataset.Draw(peopleCount, seed).OrderBy(t => t.Number).ToList();
        reporter.Info($"unlearning {chosen.Count} people, {parallelJobs} run(s) at a time: {string.Join(", ", chosen.Select(t => t.Name))}; methods {string.Join(", ", methods)}");
        var people = new List<(Person Person, ToyScores Before)>();
        foreach (var target in chosen)
        {
            var probes = everyone.Single(d => d.Target.Number == target.Number);
            var retainPeople = ToyFigures.RetainPeople(probes, everyone);
            var person = new Person(target, probes with { Mmlu = utility }, [.. retainPeople.Select(ToyFigures.RetainProbes)],
                dataset.LoadUtility(target, RwkuTasks.Fluency | RwkuTasks.Mia));
            // The model before: RWKU's scores and retain QA from the evaluation of every person; fluency and MIA on this person's files.
            var beforeUtility = Path.Combine(beforePath, Path.GetFileName(target.Folder));
            var ownBefore = Timed($"before unlearning, fluency and MIA of {target.Name}", File.Exists(Path.Combine(beforeUtility, ScoresFile)),
                () => Evaluate(artifact, device, null, icu: false, person with { Probes = probes with { Probes = [], Mmlu = [] }, Retain = [] }, beforeUtility, $"{target.Name}, before", reporter));
            var retainNumbers = retainPeople.Select(p => p.Target.Number).ToHashSet();
            people.Add((person, ownBefore with
            {
                Rwku = before.Targets.Single(t => t.Number == target.Number).Scores with { Mmlu = utilityBefore },
                RetainQA = ToyFigures.RetainQA(before.Targets.Where(t => retainNumbers.Contains(t.Number))),
            }));
        }

        // Every (person, method) run is independent of the others and single-threaded, so --jobs 2 runs two at once on two
        // cores with the same results; Align-then-Unlearn's runs share the window-embedding cache and take turns.
        var jobs = people.SelectMany(p => methods.Select(m => (p.Person, p.Before, Method: m))).ToList();
        var results = new ToyMethodRun[jobs.Count];
        var atuTurn = new object();
        void RunJob(int i, IJobReporter jobReporter)
        {
            var (person, beforeScores, method) = jobs[i];
            if (method != AlignThenUnlearnMethod.Id) results[i] = RunMethod(root, method, person, beforeScores, artifact, startWeights, dataset, device, stages, jobReporter);
            else lock (atuTurn) results[i] = RunMethod(root, method, person, beforeScores, artifact, startWeights, dataset, device, stages, jobReporter);
        }
        ParallelRuns.ForEach(jobs.Count, parallelJobs, reporter, RunJob);
        var runs = results.ToList();

        var report = Path.Combine(root, ReportFolderName);
        Directory.CreateDirectory(report);
        var table = ToyReport.Markdown(seed, before, runs);
        AtomicFile.WriteAllBytes(Path.Combine(report, ToyReport.TableFile), Encoding.UTF8.GetBytes(table));
        AtomicFile.WriteAllBytes(Path.Combine(report, CheckpointPlotFile), TradeoffPlot.RenderPng(ToyReport.PlotRuns(runs)));
        var trajectories = ToyTrajectories.Of(seed, runs);
        ToyTrajectories.Write(Path.Combine(report, ToyTrajectories.FileName), trajectories);
        AtomicFile.WriteAllBytes(Path.Combine(report, EqualForgettingPlot.FileName), EqualForgettingPlot.RenderPng(trajectories));
        if (attacks)
            Timed("attacks on every method's strongest checkpoint", false, () => ToyAttacks.Run(root, artifact, device, dataset, runs, reporter, parallelJobs: parallelJobs));
        var cpu = Process.GetCurrentProcess().UserProcessorTime - cpuAtStart;
        AtomicFile.WriteAllBytes(Path.Combine(report, ToyReport.TimingFile), Encoding.UTF8.GetBytes(TimingMarkdown(stages.Rows, stages.Elapsed, cpu, device, parallelJobs)));

        foreach (var c in ToyReport.MethodChecks(runs))
            reporter.Info(string.Create(CultureInfo.InvariantCulture,
                $"{c.Method}: forget {100 * c.ForgetBefore:F1} -> {100 * c.ForgetAfter:F1}, neighbour {100 * c.NeighbourBefore:F1} -> {100 * c.NeighbourAfter:F1}, retain QA {100 * c.RetainBefore:F1} -> {100 * c.RetainAfter:F1}, multiple choice {100 * c.UtilityBefore:F1} -> {100 * c.UtilityAfter:F1}: {(c.Passes ? "passes" : "fails")}"));
        reporter.Done($"wrote {Path.Combine(report, ToyReport.TableFile)}, {EqualForgettingPlot.FileName}, {CheckpointPlotFile} and {ToyReport.TimingFile} ({stages.Elapsed.TotalMinutes:F1} min)");
        return new Result(runs, ToyReport.Accepted(before, runs));
    }

    /// <summary>One method on one person in <c>runs/METHOD/PERSON/</c>: the run (resumed when an earlier one stopped; a
    /// finished one only re-read), then each kept checkpoint evaluated once in <c>report/stage-N/</c>.</summary>
    static ToyMethodRun RunMethod(string root, string method, Person person, ToyScores before, ArtifactModel artifact, string startWeights,
        RwkuDataset dataset, ExecutionDevice device, StageTimes timed, IJobReporter reporter)
    {
        var target = person.Target;
        var folder = Path.Combine(root, RunsFolderName, method, Path.GetFileName(target.Folder));
        var finished = File.Exists(Path.Combine(folder, RunHarness.FinalFolder, RunHarness.ModelFile));
        List<(string Label, int Stage, string Weights)> checkpoints;
        IReadOnlyList<StageRecord>? stages = null;
        var (kind, lora) = MethodOf(method);
        bool icu = kind is PromptingMethod;
        if (icu)
        {
            // No training: the model as it is, asked with RWKU's unlearning prompt; its only checkpoint is the model itself.
            MethodJob.WriteIcuRecord(folder);
            checkpoints = [(ToyMethodRun.FinalLabel, 0, startWeights)];
        }
        else
        {
            var label = kind is AlignThenUnlearnMethod ? "Align-then-Unlearn" : method;
            var result = timed.Timed($"{label}: {target.Name}", finished, () => kind is AlignThenUnlearnMethod
                ? new AtuJob(artifact.Folder, null, dataset.Root, target.Number, AtuPreset.Load("toy"), folder,
                    Path.Combine(root, RunsFolderName, "window-cache"), Resume: true, AlignmentOnly: false, ScoreStages: true, Report: false).Run(device, reporter)
                : MethodJob.Train(artifact, null, dataset, target, MethodJob.PresetOf(kind.Name, MethodPreset.BuiltinName("toy", kind.Name, lora), lora), folder, resume: true, evaluate: true, device, reporter));
            stages = result.Stages;
            // Thresholds crossed at one evaluation name the same model, which is scored once.
            checkpoints = [.. result.Named.OrderByDescending(kv => kv.Key)
                .Select(kv => (ThresholdCheckpoints.NameOf(kv.Key), StageOf(result, kv.Key), Path.Combine(kv.Value, RunHarness.ModelFile))),
                (ToyMethodRun.FinalLabel, result.Stages.Count, Path.Combine(result.Final!, RunHarness.ModelFile))];
        }
        var name = MethodTable.MethodLabel(folder);
        var scored = timed.Timed($"checkpoints of {name}: {target.Name}", checkpoints.All(c => File.Exists(Path.Combine(EvaluationFolder(folder, c.Stage), ScoresFile))), () =>
            checkpoints.Select(c => new ToyCheckpoint(c.Label, Evaluate(artifact, device, c.Weights, icu, person, EvaluationFolder(folder, c.Stage), $"{name} {target.Name}, {c.Label}", reporter), c.Weights, icu ? null : c.Stage)).ToList());
        return new ToyMethodRun(name, target, before, scored, stages);
    }

    static string EvaluationFolder(string runFolder, int stage) => Path.Combine(runFolder, ReportFolderName, $"stage-{stage.ToString(CultureInfo.InvariantCulture)}");

    /// <summary>The method of a toy run's name (ga, or ga-lora: GA with LoRA adapters).</summary>
    static (UnlearningMethod Method, bool Lora) MethodOf(string run) => run.EndsWith(LoraSuffix, StringComparison.Ordinal)
        ? (MethodRegistry.Get(run[..^LoraSuffix.Length]), true) : (MethodRegistry.Get(run), false);

    /// <summary>The stage at which a threshold was first crossed (the row of the stage table that names it).</summary>
    static int StageOf(UnlearningRunResult result, double threshold) =>
        result.Stages.First(s => s.Checkpoint?.Split(", ").Contains(ThresholdCheckpoints.NameOf(threshold)) == true).Stage;

    static string CheckWorld(string world, int seed)
    {
        var found = WorldFolder.ReadWorld(world).Seed;
        if (found != seed) throw new InvalidOperationException($"'{world}' holds the world of seed {found}, not {seed}; choose another --out or remove it");
        return world;
    }

    /// <summary>A run's summary from its results.json when an earlier run wrote it, else from <paramref name="evaluate"/> (then written).</summary>
    static RunSummary Evaluated(string folder, Func<RunEvaluation> evaluate)
    {
        var path = Path.Combine(folder, RwkuReports.ResultsFile);
        if (File.Exists(path)) return ResultsJson.Read(path);
        var run = evaluate();
        RwkuReports.WriteRun(folder, run);
        return run.Summary;
    }

    static RunEvaluation Score(ArtifactModel artifact, ExecutionDevice device, string? weights, IReadOnlyList<RwkuTargetData> targets, string name, string? series,
        string what, IJobReporter reporter)
    {
        RunEvaluation run = null!;
        var options = new RwkuEvaluationOptions { ChatFormat = ChatFormat.None };
        reporter.Track($"RWKU: {what}", 1, (task, _) =>
            run = RwkuScoring.Evaluate(artifact, device, weights, targets, options, name, series, Progress(task)));
        return run;
    }

    /// <summary>An evaluation's progress as a bar's.</summary>
    static Callback<EvaluationProgress> Progress(IProgress<WorkProgress> task) => new(p => task.Report(new WorkProgress(p.Done, p.Total)));

    /// <summary>One model (null: the pre-trained one; <paramref name="icu"/>: asked with RWKU's unlearning prompt) on one
    /// person, opened once: the toy figures written to <paramref name="folder"/> (results.json: the person's RWKU scores;
    /// <see cref="ScoresFile"/>: retain QA, fluency, MIA AUC), or read from there when an earlier run wrote them.</summary>
    static ToyScores Evaluate(ArtifactModel artifact, ExecutionDevice device, string? weights, bool icu, Person person, string folder, string what, IJobReporter reporter)
    {
        var scoresPath = Path.Combine(folder, ScoresFile);
        if (File.Exists(scoresPath)) return ReadScores(folder);
        var options = new RwkuEvaluationOptions { ChatFormat = ChatFormat.None, Icu = icu };
        var utilityOptions = new RwkuUtilityOptions { ChatFormat = ChatFormat.None, Tasks = RwkuTasks.Fluency | RwkuTasks.Mia, Icu = icu };
        bool probes = person.Probes.Probes.Count > 0;
        SuiteEvaluation suite = null!;
        reporter.Track($"RWKU: {what}", 1, (task, _) =>
        {
            var progress = Progress(task);
            suite = RwkuScoring.EvaluateSuite(artifact, device, weights, [.. probes ? new[] { person.Probes } : [], .. person.Retain], options,
                [person.Utility], utilityOptions, what, null, progress, progress);
        });
        var own = suite.Probes.Summary.Targets.FirstOrDefault(t => probes && t.Number == person.Target.Number);
        var mia = suite.Utility.SelectMany(u => u.Mia).Where(m => m.Scores is not null).ToList();
        var scores = new ToyScores(own?.Scores ?? new RwkuScores(null, null, null, null, null, null),
            ToyFigures.RetainQA(suite.Probes.Summary.Targets.Where(t => t.Number != person.Target.Number || !probes)),
            suite.UtilityMean.Fluency,
            ToyFigures.MiaAuc([.. mia.Where(m => m.Text.Set == MiaSet.Forget).Select(m => m.Scores!.Loss)], [.. mia.Where(m => m.Text.Set == MiaSet.Retain).Select(m => m.Scores!.Loss)]));
        Directory.CreateDirectory(folder);
        if (own is not null)
        {
            var evaluation = suite.Probes.Targets.Where(t => t.Scores.Number == own.Number).ToList();
            RwkuReports.WriteRun(folder, new RunEvaluation(suite.Probes.Summary with { Targets = [own] }, evaluation));
        }
        var json = new JsonObject { ["retain_qa"] = scores.RetainQA, ["fluency"] = scores.Fluency, ["mia_auc"] = scores.Mia };
        AtomicFile.WriteAllBytes(scoresPath, Encoding.UTF8.GetBytes(json.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true })));
        return scores;
    }

    static ToyScores ReadScores(string folder)
    {
        var scoresPath = Path.Combine(folder, ScoresFile);
        var json = JsonNode.Parse(File.ReadAllBytes(scoresPath)) as JsonObject
            ?? throw new InvalidDataException($"'{scoresPath}' is not a JSON object of retain_qa, fluency and mia_auc");
        double? Read(string key) => json[key]?.GetValue<double>();
        var results = Path.Combine(folder, RwkuReports.ResultsFile);
        var rwku = File.Exists(results) ? ResultsJson.Read(results).Targets[0].Scores : new RwkuScores(null, null, null, null, null, null);
        return new ToyScores(rwku, Read("retain_qa"), Read("fluency"), Read("mia_auc"));
    }

    /// <summary>timing.md: every stage's wall time, each method's total, and the process's CPU user time (the machine may be shared).</summary>
    static string TimingMarkdown(IReadOnlyList<(string Stage, TimeSpan Time, bool Cached)> timings, TimeSpan total, TimeSpan cpu, ExecutionDevice device, int parallelJobs)
    {
        string S(TimeSpan t) => t.TotalSeconds.ToString("F0", CultureInfo.InvariantCulture);
        var text = new StringBuilder($"# atu toy: time per stage\n\n{Environment.ProcessorCount} cores, {device.Description}, {parallelJobs} run(s) at a time"
            + $"{(parallelJobs > 1 ? " (their stages' times overlap)" : "")}; cached stages took no time in this run.\n\n| stage | seconds |\n| :-- | --: |\n");
        foreach (var (stage, time, cached) in timings) text.Append(CultureInfo.InvariantCulture, $"| {stage} | {(cached ? "cached" : S(time))} |\n");
        text.Append(CultureInfo.InvariantCulture, $"| **total** (wall) | {S(total)} |\n| **CPU user time** (this process, every thread) | {S(cpu)} |\n");
        return text.ToString();
    }

    /// <summary>The wall time of each stage of the run, printed as it ends (stages may run on two threads at once).</summary>
    sealed class StageTimes(IJobReporter reporter)
    {
        readonly Stopwatch _clock = Stopwatch.StartNew();
        public List<(string Stage, TimeSpan Time, bool Cached)> Rows { get; } = [];
        public TimeSpan Elapsed => _clock.Elapsed;

        public T Timed<T>(string stage, bool cached, Func<T> work)
        {
            var start = _clock.Elapsed;
            var result = work();
            lock (Rows) Rows.Add((stage, _clock.Elapsed - start, cached));
            reporter.Detail($"{stage}: {(cached ? "cached" : $"{(_clock.Elapsed - start).TotalSeconds:F0} s")}");
            return result;
        }
    }
}
