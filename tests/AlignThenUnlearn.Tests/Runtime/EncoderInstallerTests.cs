using AlignThenUnlearn.Cli;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Tests.Support;

namespace AlignThenUnlearn.Tests.Runtime;

/// <summary>`atu export --encoder minilm` puts the checked encoder into an artifact folder and lists it in the manifest.</summary>
[Collection(ConsoleCollection.Name)]
public sealed class EncoderInstallerTests : IDisposable
{
    readonly TempFolder _temp = new();
    public void Dispose() => _temp.Dispose();

    [Fact]
    public void Minilm_goes_into_the_artifact_folder_with_hashes_and_settings_in_the_manifest()
    {
        var art = _temp.File("art");
        Assert.Equal(0, ExportCommand.Run(new ExportOptionsCli { RandomConfig = RepositoryFiles.Path("models", "tiny-phi3.json"), Out = art, Dtype = "f32" }));
        Assert.Equal(0, ExportCommand.Run(new ExportOptionsCli { Encoder = "minilm", Out = art, Device = "cpu" }));
        var manifest = ArtifactManifest.Load(art);
        Assert.Contains(manifest.Files, f => f.Path == "encoder/model.onnx" && f.Bytes == 90_893_304);
        Assert.Contains(manifest.Files, f => f.Path == "encoder/vocab.txt");
        Assert.Equal(384, (int)manifest.Extra!["encoder"]!["dimension"]!);
        manifest.Verify(art, hashes: true);
        Assert.False(Directory.Exists(Path.Combine(art, "encoder.partial")));

        // A second install needs --force; a folder without a model is refused and leaves the installed encoder alone.
        Assert.Throws<IOException>(() => EncoderInstaller.Install(art, "minilm", GradCheck.Cpu, force: false));
        Directory.CreateDirectory(_temp.File("empty"));
        Assert.Throws<FileNotFoundException>(() => EncoderInstaller.Install(art, _temp.File("empty"), GradCheck.Cpu, force: true));
        Assert.True(File.Exists(Path.Combine(art, "encoder", "model.onnx")));
        ArtifactManifest.Load(art).Verify(art, hashes: false);
    }

    [Fact]
    public void A_sentence_transformers_snapshot_goes_into_a_new_artifact_folder_with_its_settings()
    {
        // The MiniLM model and vocabulary laid out as on the Hugging Face hub, with a shorter max_seq_length to tell the
        // snapshot's settings from the defaults.
        var minilm = EncoderFolder.FromMiniLmPackage(_temp.File("minilm"));
        var hub = _temp.File("hub");
        Directory.CreateDirectory(Path.Combine(hub, "onnx"));
        Directory.CreateDirectory(Path.Combine(hub, "1_Pooling"));
        File.Copy(Path.Combine(minilm, "model.onnx"), Path.Combine(hub, "onnx", "model.onnx"));
        File.Copy(Path.Combine(minilm, "vocab.txt"), Path.Combine(hub, "vocab.txt"));
        File.WriteAllText(Path.Combine(hub, "tokenizer_config.json"), """{"do_lower_case": true, "cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]", "unk_token": "[UNK]"}""");
        File.WriteAllText(Path.Combine(hub, "sentence_bert_config.json"), """{"max_seq_length": 128, "do_lower_case": false}""");
        File.WriteAllText(Path.Combine(hub, "1_Pooling", "config.json"), """{"pooling_mode_mean_tokens": true, "pooling_mode_cls_token": false}""");

        var art = _temp.File("new-art");
        Assert.Equal(0, ExportCommand.Run(new ExportOptionsCli { RandomConfig = RepositoryFiles.Path("models", "tiny-llama-gqa.json"), Encoder = hub, Out = art, Device = "cpu" }));
        var manifest = ArtifactManifest.Load(art);
        manifest.Verify(art, hashes: true);
        Assert.Contains(manifest.Files, f => f.Path == "model.onnx");
        Assert.Contains(manifest.Files, f => f.Path == "encoder/encoder.json");
        Assert.Equal(128, (int)manifest.Extra!["encoder"]!["max_length"]!);
        Assert.False(Directory.Exists(art + ".encoder.partial"));
        // The installed copy embeds as the package's MiniLM does.
        using var installed = SentenceEncoder.Open(Path.Combine(art, "encoder"), GradCheck.Cpu);
        using var original = SentenceEncoder.Open(minilm, GradCheck.Cpu);
        Assert.Equal(original.Embed(["Stephen King"])[0], installed.Embed(["Stephen King"])[0]);

        // An encoder that cannot be used stops the export before any model folder appears.
        File.Delete(Path.Combine(hub, "vocab.txt"));
        var refused = _temp.File("refused-art");
        Assert.Throws<FileNotFoundException>(() => ExportCommand.Run(new ExportOptionsCli { RandomConfig = RepositoryFiles.Path("models", "tiny-llama-gqa.json"), Encoder = hub, Out = refused, Device = "cpu" }));
        Assert.False(Directory.Exists(refused));
        Assert.False(Directory.Exists(refused + ".encoder.partial"));
        // Neither a model nor an encoder: nothing to do.
        Assert.Throws<ArgumentException>(() => ExportCommand.Run(new ExportOptionsCli { Out = refused }));
    }
}
