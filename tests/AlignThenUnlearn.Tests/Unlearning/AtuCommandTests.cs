using System.Reflection;
using AlignThenUnlearn.Cli;
using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Tests.Evaluation;
using AlignThenUnlearn.Tests.Support;
using AlignThenUnlearn.Unlearning;
using CommandLine;

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

    string SmallPreset()
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
        var path = _temp.File("small.json");
        File.WriteAllText(path, preset.ToJson());
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
        Assert.False(File.Exists(Path.Combine(folder, AtuRun.StagesJson)) && StageTable.FromJson(File.ReadAllText(Path.Combine(folder, AtuRun.StagesJson))).Count > 0);
        Assert.Equal(0, AtuCommand.Run(Options<UnlearnOptions>()));

        var stages = StageTable.FromJson(File.ReadAllText(Path.Combine(folder, AtuRun.StagesJson)));
        Assert.Equal([0.5, 0.2], stages.Select(s => s.Tau));
        Assert.All(stages, s => Assert.NotNull(s.ForgetAverage));
        // Each threshold names the first stage whose forget average is below it, and only that one.
        foreach (var threshold in new[] { 50.0, 35, 20 })
        {
            var name = ThresholdCheckpoints.NameOf(threshold);
            var first = stages.FirstOrDefault(s => s.ForgetAverage < threshold);
            Assert.Equal(first is not null, Directory.Exists(Path.Combine(folder, name)));
            foreach (var s in stages) Assert.Equal(s == first, s.Checkpoint?.Split(", ").Contains(name) ?? false);
            if (first is not null) Assert.True(File.Exists(Path.Combine(folder, name, AtuRun.ModelFile)));
        }
        Assert.True(File.Exists(Path.Combine(folder, AtuRun.FinalFolder, AtuRun.ModelFile)));

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
        var settings = File.ReadAllText(Path.Combine(folder, AtuRun.SettingsFile));
        Assert.Contains("\"alignment_targets\": \"2 (Cora Lind)\"", settings);
        Assert.Contains("\"encoder\": \"all-MiniLM-L6-v2\"", settings);

        var positive = _temp.File("positive.json");
        File.WriteAllText(positive, (AtuPreset.Load(preset) with { ForgetCorpus = "positive_phi.json" }).ToJson());
        var missing = Assert.Throws<FileNotFoundException>(() => AtuCommand.Run(Options(positive, _temp.File("positive-run"))));
        Assert.Contains(Path.Combine(_rwku.Root, "1_Ada_Quill", "positive_phi.json"), missing.Message);
        Assert.Contains("atu corpus", missing.Message);
    }

    [Fact]
    public void Every_verb_the_program_declares_is_parsed_and_dispatched()
    {
        var declared = typeof(Verbs).Assembly.GetTypes().Where(t => t.GetCustomAttribute<VerbAttribute>() is not null).ToHashSet();
        Assert.Equal(declared.OrderBy(t => t.Name), Verbs.Types.OrderBy(t => t.Name));
        Assert.Contains(typeof(RunOptions), declared);
    }
}
