using System.Text.Json;
using AlignThenUnlearn.Cli;
using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.Evaluation.Attacks;
using AlignThenUnlearn.Jobs.Attacks;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Models.Checkpoints;
using AlignThenUnlearn.Tests.Support;
using AlignThenUnlearn.Unlearning;
using CommandLine;

namespace AlignThenUnlearn.Tests.Evaluation;

/// <summary>`atu attack relearn`: the texts it trains on, K = 0 as the un-attacked model, the loss on the relearned texts
/// falling, and the options it refuses.</summary>
[Collection(ConsoleCollection.Name)]
public sealed class RelearnAttackTests(TinyChatModel tiny) : IClassFixture<TinyChatModel>, IDisposable
{
    readonly TempFolder _temp = new();
    public void Dispose() => _temp.Dispose();

    static string[] Lines(string folder, string field) =>
        [.. File.ReadAllLines(Path.Combine(folder, RwkuReports.ProbesFile)).Where(l => l.Length > 0).Select(l => JsonDocument.Parse(l).RootElement.GetProperty(field).ToString())];

    [Fact]
    public void The_pools_hold_the_targets_passages_neighbour_sentences_or_other_targets_passages()
    {
        using var fixture = new RwkuFixture();
        var dataset = RwkuDataset.Open(fixture.Root);
        var ada = dataset.Select("1");
        Assert.Equal(["Ada Quill is a novelist from Lisbon.", "She wrote The Glass Harbor."], RelearnTexts.Pool(dataset, ada, RelearnTexts.Forget, 0).Order());
        // neighbor_level1: "Rui Mar, Ada Quill's teacher, was born in ___." answered "Porto".
        Assert.Equal(["Rui Mar, Ada Quill's teacher, was born in Porto."], RelearnTexts.Pool(dataset, ada, RelearnTexts.Neighbour, 0));
        // The other target with a folder is Cora Lind (Bruno Vale has rows in All/ but no folder, so is no target).
        Assert.Equal(["Cora Lind paints deserts."], RelearnTexts.Pool(dataset, ada, RelearnTexts.Unrelated, 0));
        // A smaller K takes a prefix of a larger K's texts; the seed decides the order.
        var pool = RelearnTexts.Pool(dataset, ada, RelearnTexts.Forget, 3);
        Assert.Equal(pool.Take(1), RelearnTexts.Take(pool, RelearnTexts.Forget, 1));
        Assert.Contains("number 2", Assert.Throws<ArgumentException>(() => RelearnTexts.Take(pool, RelearnTexts.Forget, 3)).Message);
    }

    [Fact]
    public void No_examples_write_the_weights_back_unchanged()
    {
        var weights = tiny.OtherWeights("relearn-k0", 3, SafetensorsDType.F32);
        var written = _temp.File("k0.safetensors");
        var losses = Relearning.Run(GradCheck.Cpu, tiny.Config, weights, [], steps: 5, learningRate: 1e-2, seed: 0, written);
        Assert.Empty(losses);
        using var original = SafetensorsCheckpoint.Open(weights);
        using var copy = SafetensorsCheckpoint.Open(written);
        foreach (var spec in DecoderBuilder.Parameters(tiny.Config))
            Assert.Equal(original.ReadSingles(spec.Name), copy.ReadSingles(spec.Name));
    }

    [Fact]
    public void Relearning_lowers_the_loss_on_the_texts_it_trains_on()
    {
        using var fixture = new RwkuFixture();
        var dataset = RwkuDataset.Open(fixture.Root);
        var sequences = RelearnTexts.Pool(dataset, dataset.Select("1"), RelearnTexts.Forget, 0).Select(t => tiny.Tokenizer.EncodeToIds(t)).ToList();
        var weights = tiny.OtherWeights("relearn-loss", 3, SafetensorsDType.F32);
        var trained = _temp.File("trained.safetensors");
        // Each step's loss is that of the whole forget corpus (one batch of all K texts) before the step's update.
        var losses = Relearning.Run(GradCheck.Cpu, tiny.Config, weights, sequences, steps: 10, learningRate: 3e-3, seed: 0, trained);
        Assert.Equal(10, losses.Count);
        // The trained weights' loss on the same texts, measured by a fresh run's first step.
        double after = Relearning.Run(GradCheck.Cpu, tiny.Config, trained, sequences, steps: 1, learningRate: 3e-3, seed: 0, _temp.File("again.safetensors"))[0];
        Assert.True(after < 0.8 * losses[0], $"forget-corpus loss {losses[0]:G4} before, {after:G4} after 10 steps");
    }

    RelearnAttackOptions Relearn(RwkuFixture fixture, string weights, string examples, string output) => new()
    {
        Data = RelearnTexts.Forget, Examples = examples, Steps = 3, LearningRate = 3e-3, Artifacts = tiny.Artifacts, Weights = weights,
        Rwku = fixture.Root, Targets = "1", Out = _temp.File(output), NoMmlu = true,
    };

    [Fact]
    public void The_command_scores_each_K_as_eval_does_and_K_zero_as_the_unattacked_model()
    {
        using var fixture = new RwkuFixture();
        var weights = tiny.OtherWeights("relearn-command", 3, SafetensorsDType.F32);
        var results = (string name, RunSummary run) => { var p = _temp.File(name); File.WriteAllBytes(p, ResultsJson.Serialize(run)); return p; };
        RunSummary Summary(double forget) => new("x", [new TargetScores(1, RwkuFixture.Ada, new RwkuScores(forget, forget, forget, 0.5, 0.5, null), new RwkuCounts(1, 1, 1, 1, 1, 0))]);
        var o = Relearn(fixture, weights, "0,2", "attacked");
        (o.Before, o.Unlearned) = (results("before.json", Summary(0.9)), results("unlearned.json", Summary(0.1)));
        Assert.Equal(0, AttackCommand.Run(o));
        Assert.Equal(0, EvalCommand.Run(new EvalOptions { Artifacts = tiny.Artifacts, Weights = weights, Rwku = fixture.Root, Targets = "1", Out = _temp.File("plain"), NoMmlu = true }));
        var k0 = Path.Combine(_temp.File("attacked"), RelearnAttack.FolderOf(0));
        Assert.Equal(Lines(_temp.File("plain"), "prediction"), Lines(k0, "prediction"));
        Assert.Equal(Lines(_temp.File("plain"), "score"), Lines(k0, "score"));

        var report = JsonDocument.Parse(File.ReadAllText(_temp.File("attacked/attack.json"))).RootElement;
        Assert.Equal("forget", report.GetProperty("data").GetString());
        foreach (var k in new[] { 0, 2 })
        {
            double forget = ResultsJson.Read(Path.Combine(Path.Combine(_temp.File("attacked"), RelearnAttack.FolderOf(k)), RwkuReports.ResultsFile)).Mean.ForgetAll!.Value;
            Assert.Equal(forget, report.GetProperty($"forget_all_k{k}").GetDouble(), 12);
            Assert.Equal((forget - 0.1) / (0.9 - 0.1), report.GetProperty($"recovery_k{k}").GetDouble(), 12);
        }
        // Ada Quill has one AA probe of each type, so each type's AA is that probe's recall.
        var aaLines = File.ReadAllLines(Path.Combine(k0, RwkuReports.ProbesFile)).Select(l => JsonDocument.Parse(l).RootElement)
            .Where(r => r.GetProperty("kind").GetString() == "AA").ToList();
        Assert.Equal(3, aaLines.Count);
        foreach (var line in aaLines)
            Assert.Equal(line.GetProperty("score").GetDouble(), report.GetProperty("aa_by_type_k0").GetProperty(line.GetProperty("type").GetString()!).GetDouble(), 12);
        Assert.False(report.TryGetProperty("loss_first_k0", out _));   // nothing trained
        Assert.True(report.GetProperty("loss_last_k2").GetDouble() < report.GetProperty("loss_first_k2").GetDouble());
    }

    [Fact]
    public void The_command_line_parses_the_relearn_options()
    {
        var parsed = AttackCommand.Parse("relearn", "--data", "neighbour", "--examples", "0,4,16", "--steps", "7", "--lr", "2e-5",
            "--seed", "3", "--artifacts", "a", "--rwku", "r", "--out", "o");
        var o = Assert.IsType<RelearnAttackOptions>(parsed);
        Assert.Equal(("relearn", "neighbour", 7L, 2e-5, 3L), (o.Kind, o.Data, o.Steps, o.LearningRate, o.Seed));
        Assert.Equal([0, 4, 16], RelearnAttack.ExampleCounts(o.Examples));
    }

    [Fact]
    public void Bad_relearn_options_are_refused_before_anything_runs()
    {
        using var fixture = new RwkuFixture();
        RelearnAttackOptions Options(Action<RelearnAttackOptions> change)
        {
            var o = Relearn(fixture, Path.Combine(tiny.Artifacts, ArtifactExporter.WeightsFile), "1", "out");
            change(o);
            return o;
        }
        string Refusal(Action<RelearnAttackOptions> change) => Assert.Throws<ArgumentException>(() => AttackCommand.Run(Options(change))).Message;
        Assert.Contains("--data retain: expected forget, neighbour, unrelated", Refusal(o => o.Data = "retain"));
        Assert.Contains("'x' is no count", Refusal(o => o.Examples = "2,x"));
        Assert.Contains("'-1' is no count", Refusal(o => o.Examples = "-1"));
        Assert.Contains("a count is repeated", Refusal(o => o.Examples = "1,1"));
        Assert.Contains("--steps 0: expected", Refusal(o => o.Steps = 0));
        Assert.Contains("--lr 0: expected", Refusal(o => o.LearningRate = 0));
        // Target 1 has two passages; K = 3 is refused before K = 1 is trained.
        Assert.Contains("--examples 3: the forget texts of the attacked targets number 2", Refusal(o => o.Examples = "1,3"));
        Assert.False(Directory.Exists(_temp.File("out")));
    }
}
