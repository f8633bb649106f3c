using AlignThenUnlearn.Cli;
using AlignThenUnlearn.Tests.Evaluation;
using AlignThenUnlearn.Tests.Support;
using AlignThenUnlearn.Unlearning;
using CommandLine;

namespace AlignThenUnlearn.Tests.Unlearning;

/// <summary>`atu unlearn --method ...` on a tiny random model and the RWKU-shaped fixture: a baseline runs in the harness
/// and scores the probes after every epoch, ICU only evaluates, and unknown methods are refused.</summary>
[Collection(ConsoleCollection.Name)]
public sealed class MethodCommandTests : IDisposable
{
    readonly TinyChatModel _model = new();
    readonly RwkuFixture _rwku = new();
    readonly TempFolder _temp = new();
    public void Dispose() { _model.Dispose(); _rwku.Dispose(); _temp.Dispose(); }

    UnlearnOptions Options(string method, string folder, string preset = "paper") =>
        new() { Artifacts = _model.Artifacts, Rwku = _rwku.Root, Target = 1, Preset = preset, Out = folder, Device = "cpu", Method = method };

    [Fact]
    public void A_baseline_scores_the_probes_after_every_epoch_in_the_run_folder()
    {
        var preset = _temp.File("ga-star.json");
        File.WriteAllText(preset, (MethodPreset.Load("toy-ga-star") with { Epochs = 2, BatchSize = 2, LearningRate = 1e-2, WarmupSteps = 1 }).ToJson());
        var folder = _temp.File("run");
        Assert.Equal(0, AtuCommand.Run(Options(GradientAscentStar.Id, folder, preset)));
        var stages = StageTable.FromJson(File.ReadAllText(Path.Combine(folder, RunHarness.StagesJson)));
        Assert.Equal(2, stages.Count);   // one evaluation per epoch
        Assert.All(stages, s => Assert.NotNull(s.ForgetAverage));
        Assert.True(File.Exists(Path.Combine(folder, RunHarness.FinalFolder, RunHarness.ModelFile)));
        Assert.Contains("ga-star", File.ReadAllText(Path.Combine(folder, RunHarness.PresetFile)));
    }

    [Fact]
    public void A_baselines_stage_tasks_are_scored_after_every_epoch_as_atu_eval_scores_its_weights()
    {
        RwkuUtilityFixture.AddTo(_rwku);
        var preset = _temp.File("ga-star-mia.json");
        File.WriteAllText(preset, (MethodPreset.Load("toy-ga-star") with { Epochs = 1, BatchSize = 2, LearningRate = 1e-2, WarmupSteps = 1, StageTasks = ["mia"] }).ToJson());
        var folder = _temp.File("run-mia");
        Assert.Equal(0, AtuCommand.Run(Options(GradientAscentStar.Id, folder, preset)));
        var stage = Assert.Single(StageTable.FromJson(File.ReadAllText(Path.Combine(folder, RunHarness.StagesJson))));
        Assert.Equal(["MIA FM", "MIA RM"], stage.Utility!.Keys.ToArray());   // only the columns of the task asked

        // The one evaluation is of the final weights: `atu eval --suite rwku --tasks mia` of them, x 100, is the same figure.
        var eval = _temp.File("eval-mia");
        Assert.Equal(0, EvalCommand.Run(new EvalOptions { Artifacts = _model.Artifacts, Weights = Path.Combine(folder, RunHarness.FinalFolder, RunHarness.ModelFile),
            Rwku = _rwku.Root, Targets = "1", Out = eval, Suite = "rwku", Tasks = "mia" }));
        var mean = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(eval, AlignThenUnlearn.Evaluation.RwkuSuiteReports.UtilityFile))).RootElement.GetProperty("mean");
        Assert.Equal(100 * mean.GetProperty("mia_forget_loss").GetDouble(), stage.Utility!["MIA FM"], 3);
        Assert.Equal(100 * mean.GetProperty("mia_retain_loss").GetDouble(), stage.Utility!["MIA RM"], 3);
    }

    [Fact]
    public void Icu_trains_nothing_and_reports_the_prompted_model()
    {
        var folder = _temp.File("icu");
        Assert.Equal(0, AtuCommand.Run(Options(InContextUnlearning.Id, folder)));
        Assert.True(Directory.Exists(Path.Combine(folder, AtuCommand.ReportFolder, "ICU")));
        Assert.False(Directory.Exists(Path.Combine(folder, RunHarness.CheckpointsFolder)));
    }

    [Fact]
    public void An_explicit_preset_is_never_ignored_for_a_trained_method()
    {
        AtuOptions Parse(params string[] extra) => Parser.Default.ParseArguments(
            ["run", "--method", GradientAscent.Id, "--artifacts", "a", "--rwku", "r", "--target", "1", "--out", "o", .. extra], Verbs.Types)
            .MapResult(o => (AtuOptions)o, errors => throw new ArgumentException(string.Join("; ", errors)));
        // --preset paper names Align-then-Unlearn's preset: refused, not silently replaced by GA's default.
        Assert.Contains("paper", Assert.Throws<ArgumentException>(() => MethodCommand.PresetOf(Parse("--preset", "paper"))).Message);
        Assert.Equal("rwku-llama3-ga", MethodCommand.PresetOf(Parse()).Name);
        Assert.Equal("toy-ga", MethodCommand.PresetOf(Parse("--preset", "toy-ga")).Name);
        Assert.True(MethodCommand.PresetOf(Parse("--lora")).Lora);
        // --micro-batch overrides the preset's micro_batch, checked against its batch size (rwku-llama3-ga: 8).
        Assert.Equal(4, MethodCommand.PresetOf(Parse("--micro-batch", "4")).MicroBatch);
        Assert.Contains("--micro-batch: micro_batch 3 does not divide batch_size 8",
            Assert.Throws<InvalidDataException>(() => MethodCommand.PresetOf(Parse("--micro-batch", "3"))).Message);
        // Align-then-Unlearn's run refuses it before any work (toy: batches of 8).
        var atu = new RunOptions { Artifacts = "a", Rwku = "r", Target = 1, Out = _temp.File("atu"), Preset = "toy", MicroBatch = 3 };
        Assert.Contains("micro_batch 3 does not divide alignment.batch_size 8", Assert.Throws<InvalidDataException>(() => AtuCommand.Run(atu)).Message);
        Assert.False(Directory.Exists(_temp.File("atu")));
    }

    [Fact]
    public void Unknown_methods_and_align_with_a_baseline_are_refused()
    {
        var e = Assert.Throws<ArgumentException>(() => AtuCommand.Run(Options("gradient-ascent", _temp.File("x"))));
        Assert.Contains("'gradient-ascent'", e.Message);
        var align = new AlignOptions { Artifacts = _model.Artifacts, Rwku = _rwku.Root, Target = 1, Out = _temp.File("y"), Device = "cpu", Method = GradientAscent.Id };
        Assert.Contains("atu unlearn", Assert.Throws<ArgumentException>(() => AtuCommand.Run(align)).Message);
        // A preset of another method is refused rather than silently run.
        Assert.Contains("not npo", Assert.Throws<ArgumentException>(() => AlignThenUnlearn.Jobs.Unlearning.MethodJob.PresetOf(NegativePreferenceOptimization.Id, "toy-ga", lora: false)).Message);
    }
}
