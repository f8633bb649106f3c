using AlignThenUnlearn.Models;
using AlignThenUnlearn.Models.Checkpoints;
using AlignThenUnlearn.Tests.Support;
using GenAi = Microsoft.ML.OnnxRuntimeGenAI;

namespace AlignThenUnlearn.Tests.Models;

/// <summary>An independent implementation of Hugging Face's tokenizer.json: ONNX Runtime GenAI's tokenizer
/// (onnxruntime-extensions) reads the SentencePiece-style tokenizer.json of <see cref="SentencePieceBpeTests"/>,
/// shipped with a tiny model, and must encode every text as the project does.</summary>
[Collection(ConsoleCollection.Name)]
public sealed class SentencePieceGenAiTests : IDisposable
{
    readonly TempFolder _temp = new();
    public void Dispose() => _temp.Dispose();

    [Fact]
    public void Genai_encodes_the_sentencepiece_style_tokenizer_json_as_the_project_does()
    {
        using var tokenizerFiles = SentencePieceBpeTests.JsonFolder();
        // GenAI takes the BOS rule from tokenizer.json only for a named tokenizer class (see ModelShipper).
        tokenizerFiles.Write("tokenizer_config.json",
            """{"tokenizer_class": "LlamaTokenizer", "add_bos_token": true, "add_eos_token": false, "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}""");
        var config = HfConfig.Load(RepositoryFiles.Path("models", "tiny-llama-gqa.json"));
        var snapshot = _temp.File("snapshot");
        RandomCheckpoint.Write(config, snapshot, seed: 11, SafetensorsDType.BF16, std: 0.2);
        foreach (var file in Directory.GetFiles(tokenizerFiles.Path)) File.Copy(file, Path.Combine(snapshot, Path.GetFileName(file)));
        ArtifactExporter.Export(snapshot, _temp.File("artifact"), new ExportOptions { MaxSequenceLength = 64 });
        var weights = Path.Combine(_temp.File("artifact"), ArtifactExporter.WeightsFile);
        Assert.Empty(ModelShipper.Ship(_temp.File("artifact"), weights, _temp.File("shipped"), new ShipOptions { Format = ShipFormat.Onnx }).Warnings);

        var ours = LlmTokenizer.Load(_temp.File("shipped"));
        using var model = new GenAi.Model(_temp.File("shipped"));
        using var tokenizer = new GenAi.Tokenizer(model);
        // The texts of SentencePieceBpeTests: equal-pair ties, runs of 5 a's and 21 spaces, byte fallback, the tie of two
        // different pieces (where the merges order decides), a leading space, a run of 4 spaces.
        foreach (var text in new[] { "aaa", "aaaaa", new string(' ', 21), "ad é日", "cabc", " a", "aa a", "    " })
        {
            using var sequences = tokenizer.Encode(text); // GenAI adds no special tokens unless told
            Assert.Equal(ours.EncodeToIds(text, addSpecialTokens: false), sequences[0].ToArray());
        }
    }
}
