using AlignThenUnlearn.Cli;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Models.Checkpoints;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Tests.Support;

namespace AlignThenUnlearn.Tests.Models;

/// <summary>`atu export --random` then `atu forward`: the written safetensors holds the logits and every hidden state
/// of the forward pass, equal to the reference decoder on the artifact's weights.</summary>
[Collection(ConsoleCollection.Name)]
public sealed class ExportForwardCommandTests : IDisposable
{
    readonly TempFolder _temp = new();
    public void Dispose() => _temp.Dispose();

    [Fact]
    public void Random_export_and_forward_write_logits_and_all_hidden_states()
    {
        var art = _temp.File("art");
        Assert.Equal(0, ExportCommand.Run(new ExportOptionsCli { RandomConfig = RepositoryFiles.Path("models", "tiny-llama-gqa.json"), Out = art, Seed = 3, Dtype = "f32" }));
        var output = _temp.File("forward.safetensors");
        Assert.Equal(0, ForwardCommand.Run(new ForwardOptions { Artifacts = art, Ids = "5, 9, 2, 7", Out = output, Device = "cpu" }));

        var model = ArtifactModel.Open(art);
        var weights = model.ReadWeights(DecoderBuilder.Parameters(model.Config))
            .ToDictionary(kv => kv.Key, kv => new ParameterArray(kv.Value.Data, kv.Value.Shape));
        var (states, logits) = new ReferenceDecoder(model.Config, weights).Forward([5, 9, 2, 7]);
        using var written = SafetensorsFile.Open(output);
        Assert.Equal(model.Config.NumHiddenLayers + 2, written.Entries.Count);
        Assert.Equal("5,9,2,7", written.Metadata["input_ids"]);
        var writtenLogits = written.ReadSingles("logits");
        for (int s = 0; s < 4; s++)
            for (int j = 0; j < model.Config.VocabSize; j++)
                Assert.True(Math.Abs(logits[s][j] - writtenLogits[s * model.Config.VocabSize + j]) < 1e-4);
        for (int k = 0; k <= model.Config.NumHiddenLayers; k++)
        {
            var h = written.ReadSingles($"hidden_states.{k}");
            for (int s = 0; s < 4; s++)
                for (int j = 0; j < model.Config.HiddenSize; j++)
                    Assert.True(Math.Abs(states[k][s][j] - h[s * model.Config.HiddenSize + j]) < 1e-4, $"hidden_states.{k}[{s},{j}]");
        }

        // The output is not overwritten without --force, and text needs a tokenizer the random export lacks.
        Assert.Throws<IOException>(() => ForwardCommand.Run(new ForwardOptions { Artifacts = art, Ids = "1", Out = output }));
        var e = Assert.Throws<InvalidOperationException>(() => ForwardCommand.Run(new ForwardOptions { Artifacts = art, Prompt = "hi", Out = _temp.File("x.safetensors") }));
        Assert.Contains("--ids", e.Message);
        Assert.Contains("outside the vocabulary", Assert.Throws<ArgumentException>(() =>
            ForwardCommand.Run(new ForwardOptions { Artifacts = art, Ids = "100000", Out = _temp.File("y.safetensors") })).Message);
    }
}
