using System.Globalization;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace AlignThenUnlearn.Unlearning;

/// <summary>Every setting that changes a run's result, written to <see cref="AtuRun.SettingsFile"/> when the run starts:
/// the preset, the target and the other targets of the alignment corpus, the encoder, the LLM (its configuration and a
/// fingerprint of its weights file: size and modification time, which a changed file cannot keep without effort), and
/// SHA-256 fingerprints of the data (both corpora's tokens and window embeddings, the target's embedding). A resume
/// compares them and refuses any difference, listing them.</summary>
public static class RunSettings
{
    public static JsonObject Of(AtuPreset preset, AtuInputs inputs)
    {
        var weights = new FileInfo(inputs.LlmWeights);
        return new JsonObject
        {
            ["preset"] = JsonNode.Parse(preset.ToJson()),
            ["target"] = inputs.Target,
            ["alignment_targets"] = inputs.AlignmentTargets,
            ["encoder"] = inputs.Encoder,
            ["llm_config"] = JsonSerializer.SerializeToNode(inputs.Config),
            ["llm_weights"] = new JsonObject
            {
                ["bytes"] = weights.Exists ? weights.Length : -1,
                ["modified_utc"] = weights.Exists ? weights.LastWriteTimeUtc.ToString("O", CultureInfo.InvariantCulture) : null,
            },
            ["data"] = new JsonObject
            {
                ["target_embedding"] = Hash(h => h.AppendData(MemoryMarshal.AsBytes(inputs.TargetEmbedding.AsSpan()))),
                ["alignment_corpus"] = Fingerprint(inputs.AlignmentCorpus),
                ["forget_corpus"] = Fingerprint(inputs.ForgetCorpus),
            },
        };
    }

    /// <summary>"key: was X, now Y" for every value that differs between the saved settings and <paramref name="current"/>.</summary>
    public static List<string> Differences(string savedPath, JsonObject current)
    {
        JsonNode? saved;
        try { saved = JsonNode.Parse(File.ReadAllText(savedPath)); }
        catch (JsonException e) { throw new InvalidDataException($"'{savedPath}' is not valid JSON ({e.Message})", e); }
        var before = Flatten(saved);
        var now = Flatten(current);
        return [.. before.Keys.Union(now.Keys).Order(StringComparer.Ordinal)
            .Where(k => before.GetValueOrDefault(k) != now.GetValueOrDefault(k))
            .Select(k => $"{k}: was {before.GetValueOrDefault(k) ?? "absent"}, now {now.GetValueOrDefault(k) ?? "absent"}")];
    }

    /// <summary>Leaf values by dotted path (arrays by index).</summary>
    static Dictionary<string, string?> Flatten(JsonNode? node)
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

    static string Fingerprint(CorpusWindows corpus) => Hash(h =>
    {
        for (int i = 0; i < corpus.TokenIds.Count; i++)
        {
            h.AppendData(BitConverter.GetBytes(corpus.TokenIds[i].Length));
            h.AppendData(MemoryMarshal.AsBytes(corpus.TokenIds[i].AsSpan()));
            h.AppendData(MemoryMarshal.AsBytes(corpus.Embeddings[i].AsSpan()));
            h.AppendData(MemoryMarshal.AsBytes(corpus.Full[i].AsSpan()));
        }
    });

    static string Hash(Action<IncrementalHash> add)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        add(hash);
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }
}
