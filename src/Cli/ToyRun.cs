using System.Diagnostics;
using System.Globalization;
using System.Text;
using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.ToyWorld;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Unlearning;
using Spectre.Console;

namespace AlignThenUnlearn.Cli;

/// <summary>`atu toy`, the embedded default end to end (DESIGN.md section 5): world -> pre-training -> the model before
/// unlearning on every person -> Align-then-Unlearn of several people, one at a time -> each kept checkpoint evaluated
/// -> Table 1, the acceptance figures and the trade-off plot. Each stage leaves its output under the root folder and
/// is skipped when a rerun finds it complete, so a rerun after an interruption continues and a finished run only
/// rewrites its report.</summary>
public static class ToyRun
{
    public const string WorldFolderName = "world", ModelFolderName = "model", BeforeFolderName = "before", RunsFolderName = "runs",
        ReportFolderName = "report";

    public static int Run(string root, int seed, int peopleCount, ExecutionDevice device, ToyPretrainingSettings pretraining, bool check = false,
        bool attacks = false)   // ToyAttacks: --attacks
    {
        var clock = Stopwatch.StartNew();
        var timings = new List<(string Stage, TimeSpan Time, bool Cached)>();
        T Timed<T>(string stage, bool cached, Func<T> work)
        {
            var start = clock.Elapsed;
            var result = work();
            timings.Add((stage, clock.Elapsed - start, cached));
            AnsiConsole.MarkupLineInterpolated($"[grey]{stage}: {(cached ? "cached" : $"{(clock.Elapsed - start).TotalSeconds:F0} s")}[/]");
            return result;
        }

        var world = Path.Combine(root, WorldFolderName);
        Timed("world", Directory.Exists(world), () => Directory.Exists(world) ? CheckWorld(world, seed) : ToyCommand.WriteWorld(seed, world));
        var model = Path.Combine(root, ModelFolderName);
        Timed("pre-training", Directory.Exists(model), () => Directory.Exists(model) ? model : ToyCommand.Pretrain(world, model, pretraining, device, resume: true, force: false));

        var artifact = ArtifactModel.Open(model);
        var dataset = RwkuDataset.Open(world);
        var everyone = dataset.Targets.Select(t => dataset.Load(t)).ToList();
        var utility = everyone.SelectMany(d => d.Mmlu).ToList();
        var beforePath = Path.Combine(root, BeforeFolderName);
        var before = Timed("before unlearning, every person", File.Exists(Path.Combine(beforePath, RwkuReports.ResultsFile)),
            () => Evaluated(beforePath, () => Score(artifact, device, null, everyone, "before", null, $"every person ({everyone.Count})")));
        var utilityBefore = before.Mean.Mmlu;

        var chosen = new DataOrder(dataset.Targets.Count, seed).Permutation(0).Take(Math.Min(peopleCount, dataset.Targets.Count))
            .Select(i => dataset.Targets[i]).OrderBy(t => t.Number).ToList();
        AnsiConsole.MarkupLineInterpolated($"unlearning, one at a time: {string.Join(", ", chosen.Select(t => t.Name))}");
        var people = new List<UnlearnedPerson>();
        var weightsOf = new List<IReadOnlyList<string>>();   // ToyAttacks: each person's checkpoint weights (until the toy-run helper's ToyMethodRun list)
        foreach (var target in chosen)
        {
            var folder = Path.Combine(root, RunsFolderName, Path.GetFileName(target.Folder));
            var finished = File.Exists(Path.Combine(folder, AtuRun.FinalFolder, AtuRun.ModelFile));
            var result = Timed($"Align-then-Unlearn: {target.Name}", finished, () => AtuCommand.Execute(new AtuJob(model, null, world, target.Number,
                AtuPreset.Load("toy"), folder, Path.Combine(root, RunsFolderName, "window-cache"), Resume: true, AlignmentOnly: false, ScoreStages: true, Report: false), device));
            // Every kept checkpoint: the person's forget and neighbour probes, and the whole world's utility questions. Thresholds
            // crossed at one stage name the same model, which is scored once.
            var data = everyone.Single(d => d.Target.Number == target.Number) with { Mmlu = utility };
            var checkpoints = result.Named.OrderByDescending(kv => kv.Key).Select(kv => (Label: ThresholdCheckpoints.NameOf(kv.Key), Stage: StageOf(result, kv.Key), Folder: kv.Value))
                .Append((Label: UnlearnedPerson.FinalLabel, Stage: result.Stages.Count, Folder: result.Final!)).ToList();
            var scored = Timed($"checkpoints of {target.Name}", checkpoints.All(c => File.Exists(Path.Combine(folder, ReportFolderName, $"stage-{c.Stage}", RwkuReports.ResultsFile))), () =>
                checkpoints.Select(c => (c.Label, Evaluated(Path.Combine(folder, ReportFolderName, $"stage-{c.Stage}"),
                    () => Score(artifact, device, Path.Combine(c.Folder, AtuRun.ModelFile), [data], $"stage {c.Stage}", "ATU", $"{target.Name}, {c.Label}")).Mean)).ToList());
            var own = before.Targets.Single(t => t.Number == target.Number).Scores with { Mmlu = utilityBefore };
            people.Add(new UnlearnedPerson(target, own, scored));
            weightsOf.Add([.. checkpoints.Select(c => Path.Combine(c.Folder, AtuRun.ModelFile))]);   // ToyAttacks
        }

        var report = Path.Combine(root, ReportFolderName);
        Directory.CreateDirectory(report);
        var table = ToyReport.Markdown(seed, before, people);
        AtomicFile.WriteAllBytes(Path.Combine(report, ToyReport.TableFile), Encoding.UTF8.GetBytes(table));
        AtomicFile.WriteAllBytes(Path.Combine(report, TradeoffPlot.FileName), TradeoffPlot.RenderPng(ToyReport.PlotRuns(people)));
        if (attacks)   // ToyAttacks: today's Align-then-Unlearn runs as the records the toy-run helper's list will hold
        {
            var runs = people.Select((p, i) => new ToyMethodRun("ATU", p.Target, new ToyScores(p.Before),
                [.. p.Checkpoints.Select((c, j) => new ToyCheckpoint(c.Label, new ToyScores(c.Scores), weightsOf[i][j]))])).ToList();
            Timed("attacks on every method's strongest checkpoint", false, () => ToyAttacks.Run(root, artifact, device, dataset, runs));
        }
        var timing = new StringBuilder($"# atu toy: time per stage\n\n{Environment.ProcessorCount} cores, {device.Description}; cached stages took no time in this run.\n\n| stage | seconds |\n| :-- | --: |\n");
        foreach (var (stage, time, cached) in timings) timing.Append(CultureInfo.InvariantCulture, $"| {stage} | {(cached ? "cached" : time.TotalSeconds.ToString("F0", CultureInfo.InvariantCulture))} |\n");
        timing.Append(CultureInfo.InvariantCulture, $"| **total** | {clock.Elapsed.TotalSeconds:F0} |\n");
        AtomicFile.WriteAllBytes(Path.Combine(report, ToyReport.TimingFile), Encoding.UTF8.GetBytes(timing.ToString()));

        var checks = people.Select(ToyAcceptance.Of).ToList();
        AnsiConsole.Write(new Markup(Markup.Escape(string.Join("\n", checks.Select(c => string.Create(CultureInfo.InvariantCulture,
            $"{c.Person}: forget {100 * c.ForgetBefore:F1} -> {100 * c.ForgetAfter:F1}, neighbour {100 * c.NeighbourBefore:F1} -> {100 * c.NeighbourAfter:F1}, utility {100 * c.UtilityBefore:F1} -> {100 * c.UtilityAfter:F1} at {c.Checkpoint}: {(c.Passes ? "passes" : "FAILS")}")))) + "\n"));
        AnsiConsole.MarkupLineInterpolated($"[green]wrote[/] {Path.Combine(report, ToyReport.TableFile)}, {TradeoffPlot.FileName} and {ToyReport.TimingFile} ({clock.Elapsed.TotalMinutes:F1} min)");
        if (!check || ToyReport.Accepted(before, people)) return 0;
        AnsiConsole.MarkupLine("[red]the acceptance figures of the toy run are not met[/] (see the report)");
        return 3;
    }

    /// <summary>The stage at which a threshold was first crossed (the row of the stage table that names it).</summary>
    static int StageOf(AtuRunResult result, double threshold) =>
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

    static RunEvaluation Score(ArtifactModel artifact, ExecutionDevice device, string? weights, IReadOnlyList<RwkuTargetData> targets, string name, string? series, string what)
    {
        RunEvaluation run = null!;
        var options = new RwkuEvaluationOptions { ChatFormat = ChatFormat.None };
        AtuCommand.WithProgress($"RWKU: {what}", 1, (task, _) =>
            run = RwkuScoring.Evaluate(artifact, device, weights, targets, options, name, series, new RwkuScoring.Callback<EvaluationProgress>(p =>
            {
                task.MaxValue = p.Total;
                task.Value = p.Done;
            })));
        return run;
    }
}
