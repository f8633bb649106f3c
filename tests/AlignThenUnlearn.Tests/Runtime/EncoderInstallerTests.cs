using AlignThenUnlearn.Cli;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Tests.Support;

namespace AlignThenUnlearn.Tests.Runtime;

/// <summary>`atu export --encoder minilm` puts the checked encoder into an artifact folder and lists it in the manifest.</summary>
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
}
