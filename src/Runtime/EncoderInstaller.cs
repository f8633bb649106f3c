using System.Text.Json.Nodes;
using AlignThenUnlearn.Models;

namespace AlignThenUnlearn.Runtime;

/// <summary>Puts a sentence encoder into an artifact folder (`atu export --encoder`): model, vocabulary and settings go to
/// <c>encoder/</c> after the encoder has embedded a test sentence, and the manifest lists the files and records the
/// encoder's dimension, pooling and tokenization, so one folder holds everything an operator runs.</summary>
public static class EncoderInstaller
{
    public const string Folder = "encoder", MiniLm = "minilm";
    public const string TestSentence = "The quick brown fox jumps over the lazy dog.";

    /// <summary>An encoder copied into a staging folder and checked, not yet part of an artifact folder.</summary>
    public sealed record StagedEncoder(string Path, string Source, int Dimension, EncoderSettings Settings);

    /// <param name="source">An encoder folder (model.onnx or onnx/model.onnx, vocab.txt, and encoder.json or the
    /// sentence-transformers configuration files) or <c>minilm</c> for the all-MiniLM-L6-v2 model that travels with this program.</param>
    public static int Install(string artifacts, string source, ExecutionDevice device, bool force)
    {
        ArtifactManifest.Load(artifacts);   // refuse a folder that is not an artifact folder before copying anything
        if (Directory.Exists(Path.Combine(artifacts, Folder)) && !force) throw new IOException($"'{artifacts}' already holds an encoder; pass --force to replace it");
        var staged = Stage(source, Path.Combine(artifacts, Folder + ".partial"), device);
        Commit(staged, artifacts);
        return staged.Dimension;
    }

    /// <summary>Copies the encoder to <paramref name="staging"/> and embeds <see cref="TestSentence"/> with the copy;
    /// nothing is left behind if either fails.</summary>
    public static StagedEncoder Stage(string source, string staging, ExecutionDevice device)
    {
        if (Directory.Exists(staging)) Directory.Delete(staging, recursive: true);
        try
        {
            if (source == MiniLm) EncoderFolder.FromMiniLmPackage(staging);
            else EncoderFolder.CopyTo(source, staging);
            using var encoder = SentenceEncoder.Open(staging, device);
            var embedding = encoder.Embed([TestSentence])[0];
            if (embedding.Length != encoder.Dimension || !embedding.All(float.IsFinite) || embedding.All(v => v == 0))
                throw new InvalidDataException($"the encoder from '{source}' gives no usable embedding of a test sentence");
            return new StagedEncoder(staging, source, encoder.Dimension, encoder.Settings);
        }
        catch
        {
            if (Directory.Exists(staging)) Directory.Delete(staging, recursive: true);
            throw;
        }
    }

    /// <summary>Moves a staged encoder to <c>encoder/</c> of the artifact folder (replacing one that is there) and
    /// rewrites the manifest: the encoder's files with sizes and hashes, and its settings under extra.encoder.</summary>
    public static void Commit(StagedEncoder staged, string artifacts)
    {
        var manifest = ArtifactManifest.Load(artifacts);
        var target = Path.Combine(artifacts, Folder);
        if (Directory.Exists(target)) Directory.Delete(target, recursive: true);
        Directory.Move(staged.Path, target);
        var files = manifest.Files.Where(f => !f.Path.StartsWith(Folder + "/", StringComparison.Ordinal)).ToList();
        foreach (var file in Directory.GetFiles(target).Order(StringComparer.Ordinal))
            files.Add(ArtifactManifest.Describe(artifacts, $"{Folder}/{Path.GetFileName(file)}"));
        var extra = manifest.Extra?.DeepClone().AsObject() ?? [];
        var s = staged.Settings;
        extra["encoder"] = new JsonObject
        {
            ["folder"] = Folder, ["source"] = staged.Source, ["dimension"] = staged.Dimension,
            ["pooling"] = s.Pooling, ["max_length"] = s.MaxLength, ["lower_case"] = s.LowerCase, ["strip_accents"] = s.StripsAccents,
        };
        (manifest with { Files = files, Extra = extra }).Save(artifacts);
    }
}
