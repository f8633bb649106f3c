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
        var io = DecoderIoNames.Lowering;
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
                    ["input_ids"] = io.InputIds,
                    ["attention_mask"] = io.AttentionMask,
                    ["position_ids"] = io.PositionIds,
                    ["past_key_names"] = io.PastKeys,
                    ["past_value_names"] = io.PastValues,
                },
                ["outputs"] = new JsonObject
                {
                    ["logits"] = io.Logits,
                    ["present_key_names"] = io.PresentKeys,
                    ["present_value_names"] = io.PresentValues,
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

    /// <summary>What running a shipped folder needs from its <c>genai_config.json</c>: the decoder's file, context length,
    /// sizes and input/output names (GenAI's defaults, which are the lowering's names, where a name is not given).</summary>
    public static GenAiDecoder Read(string folder)
    {
        var path = Path.Combine(folder, FileName);
        if (!File.Exists(path)) throw new FileNotFoundException($"'{folder}' is no shipped folder: {FileName} is missing (write one with `atu ship --format onnx`)", path);
        JsonNode? root;
        try { root = JsonNode.Parse(File.ReadAllText(path)); }
        catch (JsonException e) { throw new ModelFormatException($"'{path}' is not valid JSON: {e.Message}", e); }
        JsonObject Object(JsonNode? node, string key) => node?[key] as JsonObject ?? throw new ModelFormatException($"'{path}' has no object '{key}'");
        T Value<T>(JsonObject parent, string key)
        {
            if (parent[key] is not JsonValue value) throw new ModelFormatException($"'{path}' has no value '{key}'");
            try { return value.GetValue<T>(); }
            catch (Exception e) when (e is InvalidOperationException or FormatException)
            {
                throw new ModelFormatException($"'{path}': '{key}' is {value.ToJsonString()}, not a {typeof(T).Name}", e);
            }
        }
        var model = Object(root, "model");
        var decoder = Object(model, "decoder");
        var inputs = decoder["inputs"] as JsonObject ?? [];
        var outputs = decoder["outputs"] as JsonObject ?? [];
        string Name(JsonObject names, string key, string fallback) => names.ContainsKey(key) ? Value<string>(names, key) : fallback;
        var lowering = DecoderIoNames.Lowering;
        var io = new DecoderIoNames(
            Name(inputs, "input_ids", lowering.InputIds), Name(inputs, "attention_mask", lowering.AttentionMask), Name(inputs, "position_ids", lowering.PositionIds),
            Name(inputs, "past_key_names", lowering.PastKeys), Name(inputs, "past_value_names", lowering.PastValues),
            Name(outputs, "logits", lowering.Logits), Name(outputs, "present_key_names", lowering.PresentKeys), Name(outputs, "present_value_names", lowering.PresentValues));
        return new GenAiDecoder(path, Path.Combine(folder, Value<string>(decoder, "filename")), Value<int>(model, "context_length"), Value<int>(decoder, "num_hidden_layers"),
            Value<int>(decoder, "num_key_value_heads"), Value<int>(decoder, "head_size"), io);
    }
}

/// <summary>A shipped decoder as <c>genai_config.json</c> (<paramref name="ConfigPath"/>) describes it.</summary>
public sealed record GenAiDecoder(string ConfigPath, string ModelPath, int ContextLength, int Layers, int KeyValueHeads, int HeadSize, DecoderIoNames Io);

/// <summary>The input and output names of a decoder graph with a KV cache, spelled as <c>genai_config.json</c> spells them:
/// the cache's names are patterns with <c>%d</c> for the layer.</summary>
public sealed record DecoderIoNames(string InputIds, string AttentionMask, string PositionIds, string PastKeys, string PastValues,
    string Logits, string PresentKeys, string PresentValues)
{
    /// <summary>The names the inference lowering writes (<see cref="InferenceLowering"/>), which are also GenAI's defaults.</summary>
    public static readonly DecoderIoNames Lowering = new(DecoderGraph.InputIds, InferenceLowering.AttentionMask, InferenceLowering.PositionIds,
        Pattern(InferenceLowering.PastKey(0)), Pattern(InferenceLowering.PastValue(0)), DecoderGraph.LogitsName,
        Pattern(InferenceLowering.PresentKey(0)), Pattern(InferenceLowering.PresentValue(0)));

    static string Pattern(string layerZero) => layerZero.Replace(".0.", ".%d.");

    /// <summary>The cache inputs of <paramref name="layers"/> layers: layer 0's key and value, then layer 1's, ...</summary>
    public IReadOnlyList<string> PastNames(int layers) => CacheNames(PastKeys, PastValues, layers);

    /// <summary>The cache outputs, in the order of <see cref="PastNames"/>.</summary>
    public IReadOnlyList<string> PresentNames(int layers) => CacheNames(PresentKeys, PresentValues, layers);

    static IReadOnlyList<string> CacheNames(string keys, string values, int layers) =>
        [.. Enumerable.Range(0, layers).SelectMany(i => new[] { OfLayer(keys, i), OfLayer(values, i) })];

    /// <summary>A cache pattern's name for <paramref name="layer"/>.</summary>
    static string OfLayer(string pattern, int layer) => pattern.Replace("%d", layer.ToString(System.Globalization.CultureInfo.InvariantCulture));
}
