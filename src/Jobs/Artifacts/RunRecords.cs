using System.Text.Json;
using System.Text.Json.Nodes;
using AlignThenUnlearn.Unlearning;

namespace AlignThenUnlearn.Jobs.Artifacts;

/// <summary>What a run folder (`atu run`, `atu unlearn`) records about the weights it wrote: the method (from the preset
/// in <c>settings.json</c>: a baseline's preset names its method, Align-then-Unlearn's has stages) and the target.</summary>
public sealed record RunRecords(string Method, string? Target)
{
    const string AlignThenUnlearn = "Align-then-Unlearn";

    /// <summary>The records of the run folder holding <paramref name="weightsPath"/>, or null outside a run folder.</summary>
    public static RunRecords? Of(string weightsPath) =>
        RunFolderOf(weightsPath) is string folder ? Read(Path.Combine(folder, RunHarness.SettingsFile)) : null;

    /// <summary>The name weights of a run folder go by in reports without --name: the run folder's name and the checkpoint
    /// folder's (<c>king/final</c>, <c>king/forget-below-20</c>), since every checkpoint's file is model.safetensors;
    /// null outside a run folder.</summary>
    public static string? CheckpointName(string weightsPath)
    {
        if (RunFolderOf(weightsPath) is not string run) return null;
        var full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(weightsPath));
        var checkpoint = Path.GetRelativePath(run, File.Exists(full) ? Path.GetDirectoryName(full)! : full).Replace('\\', '/');
        return checkpoint == "." ? Path.GetFileName(run) : $"{Path.GetFileName(run)}/{checkpoint}";
    }

    /// <summary>The run folder holding <paramref name="weightsPath"/> (the weights file, its folder such as final/ or a
    /// threshold checkpoint, up to the run folder): the nearest folder with the run's settings and preset.</summary>
    static string? RunFolderOf(string weightsPath)
    {
        var full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(weightsPath));
        var folder = File.Exists(full) ? Path.GetDirectoryName(full) : full;
        for (int up = 0; up < 3 && folder is not null; up++, folder = Path.GetDirectoryName(folder))
            if (File.Exists(Path.Combine(folder, RunHarness.SettingsFile)) && File.Exists(Path.Combine(folder, RunHarness.PresetFile)))
                return folder;
        return null;
    }

    static RunRecords? Read(string settingsPath)
    {
        JsonObject? settings;
        try { settings = JsonNode.Parse(File.ReadAllText(settingsPath)) as JsonObject; }
        catch (JsonException e) { throw new InvalidDataException($"'{settingsPath}' (the records of the run that wrote --weights) is not valid JSON: {e.Message}", e); }
        if (settings?["preset"] is not JsonObject preset) return null;
        string? Text(JsonNode? node) => node is JsonValue v && v.TryGetValue<string>(out var text) && text.Length > 0 ? text : null;
        var method = Text(preset["method"]) is string baseline
            ? baseline + (preset["lora"] is JsonValue lora && lora.TryGetValue<bool>(out var withLora) && withLora ? " with LoRA" : "")
            : preset.ContainsKey("stages") ? AlignThenUnlearn : null;
        return method is null ? null : new RunRecords(method, Text(settings["target"]));
    }
}
