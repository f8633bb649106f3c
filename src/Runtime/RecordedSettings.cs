using System.Text.Json;
using System.Text.Json.Nodes;
using AlignThenUnlearn.Models;

namespace AlignThenUnlearn.Runtime;

/// <summary>The settings that decide a run's result (steps, seeds, model shape, fingerprints of its data and base
/// model), written to a file of the run's folder when it starts and compared when it resumes: a run continued with
/// other settings would produce weights that match neither, so a resume with any difference is refused, listing
/// every one.</summary>
public static class RecordedSettings
{
    /// <summary>Writes <paramref name="settings"/> to <paramref name="path"/> (atomically).</summary>
    public static void Record(string path, JsonObject settings) =>
        AtomicFile.WriteAllBytes(path, JsonSerializer.SerializeToUtf8Bytes(settings, new JsonSerializerOptions { WriteIndented = true }));

    /// <summary>Throws when the settings recorded in <paramref name="path"/> differ from <paramref name="current"/>;
    /// <paramref name="run"/> names the run in the message.</summary>
    public static void RequireSame(string path, JsonObject current, string run)
    {
        var differences = Differences(path, current);
        if (differences.Count > 0)
            throw new InvalidOperationException($"{run} was started with other settings than this resume ({path}): {string.Join("; ", differences)}. " +
                "Resuming would give a result that matches neither run: resume with the recorded settings, or start afresh");
    }

    /// <summary>The differences between the settings recorded in <paramref name="path"/> and <paramref name="current"/>.</summary>
    public static IReadOnlyList<string> Differences(string path, JsonObject current)
    {
        JsonObject recorded;
        try { recorded = JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new InvalidDataException($"'{path}' does not hold a JSON object"); }
        catch (JsonException e) { throw new InvalidDataException($"'{path}' is not valid JSON: {e.Message}", e); }
        return Differences(recorded, current);
    }

    /// <summary>Each leaf value that differs, as "key: recorded A, now B", keys as dotted paths with array indices
    /// (<c>preset.stages[0].tau</c>) in ordinal order; absent reads as "(none)".</summary>
    public static IReadOnlyList<string> Differences(JsonObject recorded, JsonObject current)
    {
        var before = Leaves(recorded);
        var now = Leaves(current);
        return [.. before.Keys.Union(now.Keys).Order(StringComparer.Ordinal)
            .Where(key => before.GetValueOrDefault(key) != now.GetValueOrDefault(key))
            .Select(key => $"{key}: recorded {before.GetValueOrDefault(key) ?? "(none)"}, now {now.GetValueOrDefault(key) ?? "(none)"}")];
    }

    static Dictionary<string, string?> Leaves(JsonNode? node)
    {
        var leaves = new Dictionary<string, string?>(StringComparer.Ordinal);
        void Walk(JsonNode? n, string path)
        {
            switch (n)
            {
                case JsonObject o: foreach (var (k, v) in o) Walk(v, path.Length == 0 ? k : $"{path}.{k}"); break;
                case JsonArray a: for (int i = 0; i < a.Count; i++) Walk(a[i], $"{path}[{i}]"); break;
                default: leaves[path] = n?.ToJsonString(); break;
            }
        }
        Walk(node, "");
        return leaves;
    }

    /// <summary>SHA-256 over the names and contents of <paramref name="files"/>, in the order given: a fingerprint of
    /// a run's data.</summary>
    public static string Fingerprint(IEnumerable<string> files)
    {
        using var hash = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        foreach (var file in files)
        {
            hash.AppendData(System.Text.Encoding.UTF8.GetBytes(Path.GetFileName(file) + "\n"));
            using var stream = File.OpenRead(file);
            var buffer = new byte[1 << 16];
            for (int n; (n = stream.Read(buffer)) > 0;) hash.AppendData(buffer, 0, n);
        }
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }
}
