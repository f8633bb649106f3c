using System.Reflection;
using System.Text.Json;
using AlignThenUnlearn.Cli;
using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Tests.Evaluation;
using AlignThenUnlearn.Tests.Support;
using AlignThenUnlearn.Unlearning;
using CommandLine;
using AlignThenUnlearn.Jobs;
using AlignThenUnlearn.Jobs.Unlearning;

namespace AlignThenUnlearn.Tests.Unlearning;

/// <summary>`atu align`, `atu unlearn` and `atu run` on a tiny random model (with the real MiniLM encoder added to its
/// artifact folder) and the RWKU-shaped fixture.</summary>
[Collection(ConsoleCollection.Name)]
public sealed class AtuCommandTests : IDisposable
{
    readonly TinyChatModel _model = new();
    readonly RwkuFixture _rwku = new();
    readonly TempFolder _temp = new();
    public void Dispose() { _model.Dispose(); _rwku.Dispose(); _temp.Dispose(); }

    string SmallPreset(Func<AtuPreset, AtuPreset>? change = null)
    {
        var preset = AtuPreset.Load("toy") with
        {
            Layers = [1],
            Head = new HeadSettings { Layers = 1, DModel = 16, Heads = 2, FeedForward = 32 },
            Alignment = new PhaseSettings { Optimizer = "adam", LearningRate = 3e-3, MaxGradNorm = 1, BatchSize = 2, SequenceLength = 16, Steps = 4 },
            Realignment = new PhaseSettings { Optimizer = "adam", LearningRate = 3e-3, MaxGradNorm = 1, BatchSize = 2, SequenceLength = 16 },
            Unlearning = new PhaseSettings { Optimizer = "sgd", LearningRate = 0.05, MaxGradNorm = 1, BatchSize = 2, SequenceLength = 16 },
            Stages = [new(0.5, 3, 2), new(0.2, 3, 0)],
        };
        var path = _temp.File(change is null ? "small.json" : "changed.json");
        File.WriteAllText(path, (change?.Invoke(preset) ?? preset).ToJson());
        return path;
    }

    [Fact]
    public void Align_then_unlearn_writes_the_stage_table_and_names_each_first_crossing_and_run_adds_the_report()
    {
        EncoderInstaller.Install(_model.Artifacts, EncoderInstaller.MiniLm, GradCheck.Cpu, force: false);
        var preset = SmallPreset();
        var folder = _temp.File("run");
        T Options<T>() where T : AtuOptions, new() => new() { Artifacts = _model.Artifacts, Rwku = _rwku.Root, Target = 1, Preset = preset, Out = folder, Device = "cpu" };

        var early = Assert.Throws<InvalidOperationException>(() => AtuCommand.Run(Options<UnlearnOptions>()));
        Assert.Contains("atu align", early.Message);

        Assert.Equal(0, AtuCommand.Run(Options<AlignOptions>()));
        Assert.False(File.Exists(Path.Combine(folder, RunHarness.StagesJson)) && StageTable.FromJson(File.ReadAllText(Path.Combine(folder, RunHarness.StagesJson))).Count > 0);
        Assert.Equal(0, AtuCommand.Run(Options<UnlearnOptions>()));

        var stages = StageTable.FromJson(File.ReadAllText(Path.Combine(folder, RunHarness.StagesJson)));
        Assert.Equal([0.5, 0.2], stages.Select(s => s.Tau));
        Assert.All(stages, s => Assert.NotNull(s.ForgetAverage));
        // Each threshold names the first stage whose forget average is below it, and only that one.
        foreach (var threshold in new[] { 50.0, 35, 20 })
        {
            var name = ThresholdCheckpoints.NameOf(threshold);
            var first = stages.FirstOrDefault(s => s.ForgetAverage < threshold);
            Assert.Equal(first is not null, Directory.Exists(Path.Combine(folder, name)));
            foreach (var s in stages) Assert.Equal(s == first, s.Checkpoint?.Split(", ").Contains(name) ?? false);
            if (first is not null) Assert.True(File.Exists(Path.Combine(folder, name, RunHarness.ModelFile)));
        }
        Assert.True(File.Exists(Path.Combine(folder, RunHarness.FinalFolder, RunHarness.ModelFile)));

        // `atu run --resume` on the finished run only adds the report: before, the named checkpoints, the end.
        var run = Options<RunOptions>();
        run.Resume = true;
        Assert.Equal(0, AtuCommand.Run(run));
        var table = File.ReadAllText(Path.Combine(folder, AtuCommand.ReportFolder, RwkuReports.CombinedTableFile));
        Assert.Contains("| before |", table);
        Assert.Contains("| ATU final |", table);
        Assert.Equal(stages.Count(s => s.Checkpoint is not null) > 0, table.Contains("ATU forget-below-"));
        Assert.True(File.Exists(Path.Combine(folder, AtuCommand.ReportFolder, TradeoffPlot.FileName)));
    }

    [Fact]
    public void Chosen_alignment_targets_and_the_encoder_are_recorded_and_a_missing_forget_corpus_names_its_path()
    {
        EncoderInstaller.Install(_model.Artifacts, EncoderInstaller.MiniLm, GradCheck.Cpu, force: false);
        var preset = SmallPreset();
        var folder = _temp.File("chosen");
        AlignOptions Options(string p, string f, params int[] others) => new()
        {
            Artifacts = _model.Artifacts, Rwku = _rwku.Root, Target = 1, Preset = p, Out = f, Device = "cpu", AlignTargets = others,
        };
        Assert.Contains("target 1 itself", Assert.Throws<ArgumentException>(() => AtuCommand.Run(Options(preset, _temp.File("self"), 1))).Message);
        Assert.Equal(0, AtuCommand.Run(Options(preset, folder, 2)));
        var settings = File.ReadAllText(Path.Combine(folder, RunHarness.SettingsFile));
        Assert.Contains("\"alignment_targets\": \"2 (Cora Lind)\"", settings);
        Assert.Contains("\"encoder\": \"all-MiniLM-L6-v2\"", settings);

        var positive = _temp.File("positive.json");
        File.WriteAllText(positive, (AtuPreset.Load(preset) with { ForgetCorpus = "positive_phi.json" }).ToJson());
        var missing = Assert.Throws<FileNotFoundException>(() => AtuCommand.Run(Options(positive, _temp.File("positive-run"))));
        Assert.Contains(Path.Combine(_rwku.Root, "1_Ada_Quill", "positive_phi.json"), missing.Message);
        Assert.Contains("atu corpus", missing.Message);
    }

    [Fact]
    public void Stage_tasks_put_the_suites_figures_of_each_stages_model_in_the_stage_table_and_a_resume_keeps_them()
    {
        EncoderInstaller.Install(_model.Artifacts, EncoderInstaller.MiniLm, GradCheck.Cpu, force: false);
        RwkuUtilityFixture.AddTo(_rwku);
        // Threshold 100: stage 1's model is kept under a name (its forget average is below 100), stage 2's is the final
        // model (realignment moves only the head), so `atu eval --suite` can score both models independently.
        // The tiny model's cosine to the target is near 0: thresholds below it make the unlearning loss, and the model move.
        var preset = SmallPreset(p => p with { StageTasks = ["mia", "fluency"], CheckpointThresholds = [100], Stages = [new(-0.5, 3, 2), new(-0.9, 3, 0)] });
        var folder = _temp.File("stage-tasks");
        T Options<T>() where T : AtuOptions, new() => new() { Artifacts = _model.Artifacts, Rwku = _rwku.Root, Target = 1, Preset = preset, Out = folder, Device = "cpu" };
        // The whole schedule with the model before scored too (what `atu run` does, without its final report).
        new AtuJob(_model.Artifacts, null, _rwku.Root, 1, AtuPreset.Load(preset), folder, _temp.File("window-cache"),
            Resume: false, AlignmentOnly: false, ScoreStages: true, Report: false).Run(GradCheck.Cpu, JobReporter.Silent);

        var stagesPath = Path.Combine(folder, RunHarness.StagesJson);
        var stagesJson = File.ReadAllText(stagesPath);
        var stages = StageTable.FromJson(stagesJson);
        Assert.Equal(2, stages.Count);
        Assert.All(stages, s => Assert.True(s.UnlearnLoss > 0));
        Assert.Equal("forget-below-100", stages[0].Checkpoint);
        string[] figures = ["MIA FM", "MIA RM", "Flu"];   // only the columns of the tasks asked
        Assert.All(stages, s => Assert.Equal(figures, s.Utility!.Keys.ToArray()));
        var markdownPath = Path.Combine(folder, RunHarness.StagesMarkdown);
        var markdown = File.ReadAllText(markdownPath);
        Assert.Contains("| neighbour avg | MIA FM | MIA RM | Flu | checkpoint |", markdown);
        Assert.Matches(@"Before unlearning: forget average [0-9.]+, neighbour average [0-9.]+, MIA FM [0-9.]+, MIA RM [0-9.]+, Flu [0-9.]+\.", markdown);

        // Each stage's figures are `atu eval --suite rwku --tasks mia,fluency` of its model's weights, x 100 (results.md's scale).
        string[] models = [Path.Combine(folder, "forget-below-100", RunHarness.ModelFile), Path.Combine(folder, RunHarness.FinalFolder, RunHarness.ModelFile)];
        for (int i = 0; i < stages.Count; i++)
        {
            var eval = _temp.File($"eval-{i}");
            Assert.Equal(0, EvalCommand.Run(new EvalOptions { Artifacts = _model.Artifacts, Weights = models[i], Rwku = _rwku.Root, Targets = "1", Out = eval, Suite = "rwku", Tasks = "mia,fluency" }));
            var mean = JsonDocument.Parse(File.ReadAllText(Path.Combine(eval, RwkuSuiteReports.UtilityFile))).RootElement.GetProperty("mean");
            Assert.Equal(100 * mean.GetProperty("mia_forget_loss").GetDouble(), stages[i].Utility!["MIA FM"], 3);
            Assert.Equal(100 * mean.GetProperty("mia_retain_loss").GetDouble(), stages[i].Utility!["MIA RM"], 3);
            Assert.Equal(100 * mean.GetProperty("fluency_entropy").GetDouble(), stages[i].Utility!["Flu"], 3);
        }
        Assert.NotEqual(stages[0].Utility!["MIA FM"], stages[1].Utility!["MIA FM"]);   // the unlearning moved the model between the stages

        // Resume from the checkpoint before the last phase: the stage table is rewritten from the checkpoint's records.
        var checkpoints = new CheckpointDirectory(Path.Combine(folder, RunHarness.CheckpointsFolder));
        var complete = checkpoints.Complete();
        Directory.Delete(complete[^1].Folder, recursive: true);
        File.WriteAllText(Path.Combine(checkpoints.Root, CheckpointDirectory.LatestFile), Path.GetFileName(complete[^2].Folder) + "\n");
        File.Delete(stagesPath);
        File.Delete(markdownPath);
        Assert.Equal(0, AtuCommand.Run(Options<UnlearnOptions>()));
        Assert.Equal(stagesJson, File.ReadAllText(stagesPath));
        Assert.Equal(markdown, File.ReadAllText(markdownPath));
    }

    [Fact]
    public void Stage_tasks_are_checked_against_the_suites_names_and_absent_by_default()
    {
        Assert.Null(AtuPreset.Load("toy").StageTasks);
        Assert.DoesNotContain("stage_tasks", AtuPreset.Load("toy").ToJson());   // runs started before the key resume
        Assert.Equal(RwkuTaskNames.Names.Select(n => n.Name).Except(["forget", "neighbor"]), AtuPreset.StageTaskNames);
        Assert.Equal(["mmlu", "mia"], AtuPreset.Load(SmallPreset(p => p with { StageTasks = ["mmlu", "mia"] })).StageTasks!);
        foreach (var unknown in new[] { "mai", "forget" })
        {
            var error = Assert.Throws<InvalidDataException>(() => AtuPreset.Load(SmallPreset(p => p with { StageTasks = ["bbh", unknown] })));
            Assert.Contains($"stage_tasks: unknown task '{unknown}'", error.Message);
        }
        Assert.Contains("stage_tasks names a task twice", Assert.Throws<InvalidDataException>(() => AtuPreset.Load(SmallPreset(p => p with { StageTasks = ["mia", "mia"] }))).Message);
    }

    [Fact]
    public void Every_verb_the_program_declares_is_parsed_and_dispatched()
    {
        // Declared on the type itself: an attack kind's options class inherits eval's, but `atu attack KIND` parses it.
        var declared = typeof(Verbs).Assembly.GetTypes().Where(t => t.GetCustomAttribute<VerbAttribute>(inherit: false) is not null).ToHashSet();
        Assert.Equal(declared.OrderBy(t => t.Name), Verbs.Types.OrderBy(t => t.Name));
        Assert.Contains(typeof(RunOptions), declared);
        Assert.Equal(["quantize", "sample", "relearn", "cast"], AttackCommand.KindNames);
    }
}
