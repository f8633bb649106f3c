using System.Text.Json;
using System.Text.Json.Serialization;

namespace AlignThenUnlearn.Unlearning;

/// <summary>How presets (<see cref="AtuPreset"/>, <see cref="MethodPreset"/>) are read and written: snake_case JSON with
/// comments, unknown keys refused, built-ins embedded in this assembly under <c>Presets/NAME.json</c>.</summary>
static class PresetJson
{
    public static readonly JsonSerializerOptions Options = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        ReadCommentHandling = JsonCommentHandling.Skip,
    };

    /// <summary>The built-in preset <paramref name="nameOrPath"/>, or the JSON file of that path; <paramref name="kind"/>
    /// names what is read in the error when it is neither. Returns the preset and a description of where it came from.</summary>
    public static (T Preset, string Source) Read<T>(string nameOrPath, IReadOnlyList<string> builtin, string kind) where T : class
    {
        string json, source;
        if (builtin.Contains(nameOrPath))
        {
            source = $"built-in preset '{nameOrPath}'";
            using var stream = typeof(PresetJson).Assembly.GetManifestResourceStream($"AlignThenUnlearn.Unlearning.Presets.{nameOrPath}.json")
                ?? throw new InvalidOperationException($"{source} is missing from the assembly");
            json = new StreamReader(stream).ReadToEnd();
        }
        else if (File.Exists(nameOrPath)) (json, source) = (File.ReadAllText(nameOrPath), $"preset file '{nameOrPath}'");
        else throw new FileNotFoundException($"{kind} '{nameOrPath}' is neither a built-in preset ({string.Join(", ", builtin)}) nor a file", nameOrPath);
        try { return (JsonSerializer.Deserialize<T>(json, Options) ?? throw new InvalidDataException($"{source} is empty"), source); }
        catch (JsonException e) { throw new InvalidDataException($"{source}: {e.Message}", e); }
    }
}
