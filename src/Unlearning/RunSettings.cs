using System.Globalization;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using AlignThenUnlearn.Runtime;

namespace AlignThenUnlearn.Unlearning;

/// <summary>Every setting that changes a run's result, written to <see cref="RunHarness.SettingsFile"/> when the run starts:
/// the preset, the target and the other targets of the alignment corpus, the encoder, the LLM (its configuration and a
/// fingerprint of its weights file: size and modification time, which a changed file cannot keep without effort), and
/// SHA-256 fingerprints of the data (both corpora's tokens and window embeddings, the target's embedding). A resume
/// compares them (<see cref="RecordedSettings"/>) and refuses any difference, listing them.</summary>
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
