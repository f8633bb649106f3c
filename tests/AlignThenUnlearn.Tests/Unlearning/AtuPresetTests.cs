using AlignThenUnlearn.Unlearning;
using AlignThenUnlearn.Tests.Support;

namespace AlignThenUnlearn.Tests.Unlearning;

public sealed class AtuPresetTests : IDisposable
{
    readonly TempFolder _temp = new();
    public void Dispose() => _temp.Dispose();

    /// <summary>The paper preset holds the authors' defaults as issue 6 lists them (values typed in from the issue).</summary>
    [Fact]
    public void Paper_preset_matches_the_published_defaults()
    {
        var p = AtuPreset.Load("paper");
        Assert.Equal([29], p.Layers);
        Assert.Equal(8, p.WindowTokens);
        Assert.Equal((6, 768, 8, 3072, 0.1, 1e-5), (p.Head.Layers, p.Head.DModel, p.Head.Heads, p.Head.FeedForward, p.Head.Dropout, p.Head.LayerNormEps));
        Assert.Equal(("adam", 1e-4, 0.0, 1.0, 16, 256, 15000), (p.Alignment.Optimizer, p.Alignment.LearningRate, p.Alignment.WeightDecay, p.Alignment.MaxGradNorm, p.Alignment.BatchSize, p.Alignment.SequenceLength, p.Alignment.Steps));
        Assert.Equal(("sgd", 3e-4, 0.0, 1.0, 16, 256), (p.Unlearning.Optimizer, p.Unlearning.LearningRate, p.Unlearning.Momentum, p.Unlearning.MaxGradNorm, p.Unlearning.BatchSize, p.Unlearning.SequenceLength));
        Assert.Equal(3, p.AlignmentExtraTargets);
        Assert.Equal([0.9, 0.8, 0.75, 0.7, 0.65, 0.6, 0.5, 0.4, 0.3, 0.2], p.Stages.Select(s => s.Tau));
        Assert.All(p.Stages, s => Assert.Equal(1000, s.UnlearnSteps));
        Assert.Equal(Enumerable.Repeat(1000, 9).Append(0), p.Stages.Select(s => s.RealignSteps));
        Assert.True(p.ResetHeadOptimizerEachStage);
        Assert.Equal([50.0, 35, 20], p.CheckpointThresholds);
    }

    [Fact]
    public void Presets_round_trip_through_a_file()
    {
        var toy = AtuPreset.Load("toy");
        File.WriteAllText(_temp.File("mine.json"), toy.ToJson());
        Assert.Equal(toy.ToJson(), AtuPreset.Load(_temp.File("mine.json")).ToJson());
    }

    [Fact]
    public void Unknown_fields_and_bad_values_are_refused_naming_the_file()
    {
        File.WriteAllText(_temp.File("typo.json"), AtuPreset.Load("toy").ToJson().Replace("\"window_tokens\"", "\"window_tokenz\""));
        var e = Assert.Throws<InvalidDataException>(() => AtuPreset.Load(_temp.File("typo.json")));
        Assert.Contains("typo.json", e.Message);
        Assert.Contains("window_tokenz", e.Message);

        File.WriteAllText(_temp.File("bad.json"), AtuPreset.Load("toy").ToJson().Replace("\"optimizer\": \"sgd\"", "\"optimizer\": \"lbfgs\""));
        Assert.Contains("lbfgs", Assert.Throws<InvalidDataException>(() => AtuPreset.Load(_temp.File("bad.json"))).Message);
        Assert.Throws<FileNotFoundException>(() => AtuPreset.Load("no-such-preset"));
    }
}
