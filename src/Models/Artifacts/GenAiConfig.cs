using System.Text.Json;
using System.Text.Json.Nodes;

namespace AlignThenUnlearn.Models;

/// <summary>Token ids that end, start and pad generation, as a shipped model states them: the configuration's, with
/// <c>generation_config.json</c>'s end ids added (chat models list their end-of-turn tokens there).</summary>
public sealed record GenerationIds(int? Bos, IReadOnlyList<int> Eos, int? Pad)
{
    /// <summary>The ids of <paramref name="config"/>, completed from <paramref name="generationConfigPath"/> when that file exists.</summary>
    public static GenerationIds Of(DecoderConfig config, string generationConfigPath)
    {
        int? bos = config.BosTokenId, pad = config.PadTokenId;
        var eos = new List<int>(config.EosTokenIds);
        if (File.Exists(generationConfigPath))
        {
            JsonNode? root;
            try { root = JsonNode.Parse(File.ReadAllText(generationConfigPath)); }
            catch (JsonException e) { throw new ModelFormatException($"'{generationConfigPath}' is not valid JSON: {e.Message}", e); }
            if (root is not JsonObject generation) throw new ModelFormatException($"'{generationConfigPath}' is not a JSON object");
            bos ??= Ids(generation, "bos_token_id", generationConfigPath).Cast<int?>().FirstOrDefault();
            pad ??= Ids(generation, "pad_token_id", generationConfigPath).Cast<int?>().FirstOrDefault();
            foreach (var id in Ids(generation, "eos_token_id", generationConfigPath))
                if (!eos.Contains(id)) eos.Add(id);
        }
        return new GenerationIds(bos, eos, pad);
    }

    static List<int> Ids(JsonObject generation, string key, string path)
    {
        try
        {
            return generation[key] switch
            {
                null => [],
                JsonArray list => list.Select(item => item!.GetValue<int>()).ToList(),
                var single => [single.GetValue<int>()],
            };
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException or NullReferenceException)
        {
            throw new ModelFormatException($"'{path}': '{key}' is {generation[key]?.ToJsonString()}, not a token id or a list of them", e);
        }
    }
}

/// <summary>The <c>genai_config.json</c> that ONNX Runtime GenAI reads beside a decoder model: the model type, token ids,
/// sizes, the graph's input and output names (those <see cref="InferenceLowering"/> writes) and greedy search defaults.
/// <c>past_present_share_buffer</c> is off because the graph's Attention returns past and new keys concatenated
/// (GenAI's shared buffer needs GroupQueryAttention).</summary>
public static class GenAiConfig
{
    public const string FileName = "genai_config.json";

    public static string ToJson(DecoderConfig config, GenerationIds ids, int contextLength, string modelFile)
    {
        int eos = ids.Eos.Count > 0 ? ids.Eos[0] : 0;
        var model = new JsonObject
        {
            ["type"] = config.ModelType,
            ["bos_token_id"] = ids.Bos ?? eos,
            // GenAI takes a single id or a list.
            ["eos_token_id"] = ids.Eos.Count == 1 ? ids.Eos[0] : new JsonArray(ids.Eos.Select(id => (JsonNode)id).ToArray()),
            ["pad_token_id"] = ids.Pad ?? eos,
            ["vocab_size"] = config.VocabSize,
            ["context_length"] = contextLength,
            ["decoder"] = new JsonObject
            {
                ["session_options"] = new JsonObject { ["log_id"] = "onnxruntime-genai", ["provider_options"] = new JsonArray() },
                ["filename"] = modelFile,
                ["head_size"] = config.HeadDimension,
                ["hidden_size"] = config.HiddenSize,
                ["num_attention_heads"] = config.NumAttentionHeads,
                ["num_hidden_layers"] = config.NumHiddenLayers,
                ["num_key_value_heads"] = config.NumKeyValueHeads,
                ["inputs"] = new JsonObject
                {
                    ["input_ids"] = DecoderGraph.InputIds,
                    ["attention_mask"] = InferenceLowering.AttentionMask,
                    ["position_ids"] = InferenceLowering.PositionIds,
                    ["past_key_names"] = InferenceLowering.PastKey(0).Replace(".0.", ".%d."),
                    ["past_value_names"] = InferenceLowering.PastValue(0).Replace(".0.", ".%d."),
                },
                ["outputs"] = new JsonObject
                {
                    ["logits"] = DecoderGraph.LogitsName,
                    ["present_key_names"] = InferenceLowering.PresentKey(0).Replace(".0.", ".%d."),
                    ["present_value_names"] = InferenceLowering.PresentValue(0).Replace(".0.", ".%d."),
                },
            },
        };
        var search = new JsonObject
        {
            ["do_sample"] = false,
            ["early_stopping"] = true,
            ["length_penalty"] = 1.0,
            ["max_length"] = contextLength,
            ["min_length"] = 0,
            ["no_repeat_ngram_size"] = 0,
            ["num_beams"] = 1,
            ["num_return_sequences"] = 1,
            ["past_present_share_buffer"] = false,
            ["repetition_penalty"] = 1.0,
            ["temperature"] = 1.0,
            ["top_k"] = 50,
            ["top_p"] = 1.0,
        };
        return new JsonObject { ["model"] = model, ["search"] = search }.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n";
    }
}
