using System.Diagnostics;
using System.Text.Json;
using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Sweeps;
using AlignThenUnlearn.Tests.Evaluation;
using AlignThenUnlearn.Tests.Support;
using AlignThenUnlearn.Unlearning;
using Xunit.Abstractions;

namespace AlignThenUnlearn.Tests.Sweeps;

/// <summary>A real one-node Slurm cluster (tools/slurm-local.sh): issue 19's 4-cell sweep (2 people x ATU/GA with tiny
/// step counts on a tiny random model) submitted as one job array, the ATU task of the first person requeued mid-run,
/// every cell done with the same results as `atu sweep run --local`. Skipped, with the reason, only when the daemons
/// cannot start here.</summary>
public sealed class SlurmSweepTests(ITestOutputHelper output) : IDisposable
{
    readonly TempFolder _temp = new();
    public void Dispose() => _temp.Dispose();

    static (int Code, string Output) Script(params string[] arguments)
    {
        var (code, stdout, stderr) = Tool.Run(RepositoryFiles.Path("tools", "slurm-local.sh"), arguments);
        return (code, stdout + stderr);
    }

    /// <summary>This build's atu, run through dotnet (the test binaries' folder holds it with its runtime files).</summary>
    static string[] Atu() =>
        [AtuProcess.Host, AtuProcess.Dll];

    string SweepFile(string artifacts, string rwku)
    {
        // 20 alignment steps, then three stages: long enough (tens of seconds) for a requeue to land mid-run, with a
        // checkpoint every 5 steps to resume from.
        var preset = AtuPreset.Load("toy") with
        {
            Name = "tiny",
            Layers = [1],
            Head = new HeadSettings { Layers = 1, DModel = 16, Heads = 2, FeedForward = 32 },
            AlignmentExtraTargets = 1,
            Alignment = new PhaseSettings { Optimizer = "adam", LearningRate = 3e-3, MaxGradNorm = 1, BatchSize = 2, SequenceLength = 16, Steps = 20 },
            Realignment = new PhaseSettings { Optimizer = "adam", LearningRate = 3e-3, MaxGradNorm = 1, BatchSize = 2, SequenceLength = 16 },
            Unlearning = new PhaseSettings { Optimizer = "sgd", LearningRate = 0.05, MaxGradNorm = 1, BatchSize = 2, SequenceLength = 16 },
            Stages = [new(0.5, 10, 5), new(0.35, 10, 5), new(0.2, 10, 0)],
            CheckpointEvery = 5,
        };
        File.WriteAllText(_temp.File("tiny.json"), preset.ToJson());
        // GA: 2 epochs over the person's 2 passages, one step each (batch 2).
        var ga = MethodPreset.Load("toy-ga") with { Name = "tiny-ga", ForgetCorpus = "passage.json", Epochs = 2, BatchSize = 2, LearningRate = 1e-2, WarmupSteps = 1, Cutoff = 64 };
        File.WriteAllText(_temp.File("tiny-ga.json"), ga.ToJson());
        var path = _temp.File("sweep.json");
        File.WriteAllText(path, $$"""
            { "name": "slurm-test", "artifacts": {{JsonSerializer.Serialize(artifacts)}}, "rwku": {{JsonSerializer.Serialize(rwku)}},
              "targets": "1-2", "methods": ["atu", "ga"], "presets": ["tiny.json"],
              "method_presets": { "ga": ["tiny-ga.json"] }, "device": "cpu", "threads": 1,
              "slurm": { "cpus": 1, "memory": "2G", "time": "00:30:00", "throttle": 2 } }
            """);
        return path;
    }

    [SkippableFact]
    public void Four_cells_on_slurm_with_one_task_requeued_mid_run_end_as_the_local_run_does()
    {
        var clock = Stopwatch.StartNew();
        bool wasUp = Script("status").Code == 0;
        var (started, log) = wasUp ? (0, "") : Script("start");
        if (started != 0)
        {
            var reason = $"the Slurm daemons cannot start here (tools/slurm-local.sh start, exit {started}): {string.Join(" | ", log.Trim().Split('\n').TakeLast(3))}";
            Console.Error.WriteLine($"SlurmSweepTests skipped: {reason}");   // in the test log too, not only in detailed results
            throw new SkipTestException(reason);
        }
        string? job = null;
        try
        {
            using var model = new TinyChatModel();
            using var rwku = new RwkuFixture();   // targets 1 and 2
            EncoderInstaller.Install(model.Artifacts, EncoderInstaller.MiniLm, GradCheck.Cpu, force: false);
            var file = SweepFile(model.Artifacts, rwku.Root);
            var onSlurm = _temp.File("slurm-sweep");
            var manifest = SweepPlanner.Plan(file, onSlurm, Atu());
            Assert.Equal(["atu_tiny_t001", "ga_tiny-ga_t001", "atu_tiny_t002", "ga_tiny-ga_t002"], manifest.Cells.Select(c => c.Name));
            output.WriteLine($"setup {clock.Elapsed.TotalSeconds:F0} s");

            job = SlurmJobs.Submit(onSlurm);
            var submitted = clock.Elapsed;
            // Requeue cell 0 (ATU on target 1) once its run has a checkpoint (stage 1 scored: the alignment phase is saved).
            var victim = manifest.Cells[0];
            var runLog = Path.Combine(victim.Run, RunHarness.LogFile);
            WaitFor(() => File.Exists(runLog) && File.ReadAllText(runLog).Contains("stage 1:", StringComparison.Ordinal), TimeSpan.FromMinutes(10), "cell 0 to score stage 1");
            Assert.False(CellState.Read(Path.Combine(onSlurm, victim.Folder)).Done);
            Assert.Equal(0, Tool.Run("scontrol", "requeue", $"{job}_0").Code);
            // A requeued job waits about two minutes before it may start again; it may start now.
            Thread.Sleep(1000);
            Tool.Run("scontrol", "update", $"JobId={job}_0", "StartTime=now");
            output.WriteLine($"requeued task 0 at {(clock.Elapsed - submitted).TotalSeconds:F0} s after submitting");

            WaitFor(() => SweepStatus.Of(onSlurm, manifest, SlurmJobs.TaskStates(onSlurm, out _)).All(c => c.State is CellStatus.Done or CellStatus.Failed)
                && SlurmJobs.TaskStates(onSlurm, out _)!.Values.All(s => s is not ("RUNNING" or "PENDING" or "COMPLETING")), TimeSpan.FromMinutes(15), "the array to finish");
            var onSlurmTime = clock.Elapsed - submitted;
            var states = SweepStatus.Of(onSlurm, manifest, null);
            Assert.True(states.All(c => c.State == CellStatus.Done), string.Join("\n", states.Select(c => $"{c.Cell.Name}: {c.State} {c.Detail}")));
            var attempts = File.ReadAllText(Path.Combine(onSlurm, victim.Folder, CellState.AttemptsFile));
            Assert.Contains("terminated", attempts);
            Assert.Equal(2, CellState.Read(Path.Combine(onSlurm, victim.Folder)).Attempts);
            Assert.Contains("resumed from", File.ReadAllText(runLog));

            var local = _temp.File("local-sweep");
            var localManifest = SweepPlanner.Plan(file, local, Atu());
            var localClock = Stopwatch.StartNew();
            Assert.Equal(0, CellRunner.RunLocal(local, parallel: 2, output.WriteLine));
            output.WriteLine($"slurm: {onSlurmTime.TotalSeconds:F0} s from submit to done; local (--parallel 2): {localClock.Elapsed.TotalSeconds:F0} s");

            foreach (var (slurmCell, localCell) in manifest.Cells.Zip(localManifest.Cells))
            {
                var reports = Path.Combine(slurmCell.Run, SweepReport.ReportFolderOfRun);
                var checkpoints = Directory.GetDirectories(reports).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList();
                Assert.Equal(checkpoints, Directory.GetDirectories(Path.Combine(localCell.Run, SweepReport.ReportFolderOfRun)).Select(Path.GetFileName).Order(StringComparer.Ordinal));
                Assert.Contains(slurmCell.Method == AlignThenUnlearnMethod.Id ? "ATU-final" : "GA-F-final", checkpoints);
                foreach (var checkpoint in checkpoints)
                    Assert.Equal(File.ReadAllText(Path.Combine(reports, checkpoint!, RwkuReports.ResultsFile)),
                        File.ReadAllText(Path.Combine(localCell.Run, SweepReport.ReportFolderOfRun, checkpoint!, RwkuReports.ResultsFile)));
                var stages = Path.Combine(slurmCell.Run, RunHarness.StagesJson);
                if (slurmCell.Method == AlignThenUnlearnMethod.Id || File.Exists(stages))   // GA writes one when it has evaluated
                    Assert.Equal(File.ReadAllText(stages), File.ReadAllText(Path.Combine(localCell.Run, RunHarness.StagesJson)));
            }
            SweepReport.Write(onSlurm);
            SweepReport.Write(local);
            Assert.Equal(File.ReadAllText(Path.Combine(local, SweepReport.Folder, RwkuReports.CombinedTableFile)),
                File.ReadAllText(Path.Combine(onSlurm, SweepReport.Folder, RwkuReports.CombinedTableFile)));
            output.WriteLine($"total {clock.Elapsed.TotalSeconds:F0} s");
        }
        finally
        {
            if (job is not null) Tool.Run("scancel", job);
            if (!wasUp) Script("stop");   // by the PIDs in the daemons' PID files
        }
    }

    static void WaitFor(Func<bool> condition, TimeSpan limit, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.Elapsed > limit) throw new TimeoutException($"waited {limit.TotalMinutes:F0} min for {what}");
            Thread.Sleep(500);
        }
    }
}
