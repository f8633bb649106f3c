using System.Text.Json;

namespace AlignThenUnlearn.Models;

/// <summary>Reads a Hugging Face <c>config.json</c> into a <see cref="DecoderConfig"/> and writes one back.
/// Only what the shared decoder computes is accepted: a setting that would change the model in a way it
/// does not implement (RoPE scaling, partial rotary, other activations, extra biases) is an error that
/// names the file and the value, never ignored.</summary>
public static class HfConfig
{
    public const string FileName = "config.json";

    /// <summary>What differs between the families' config classes (Hugging Face's defaults included).</summary>
    private sealed record Family(ModelFamily Id, string ModelType, string Architecture, double DefaultRmsNormEps,
        int DefaultMaxPositionEmbeddings, bool QkvBias);

    private static readonly Family[] Families =
    [
        new(ModelFamily.Phi3, "phi3", "Phi3ForCausalLM", 1e-5, 4096, QkvBias: false),
        new(ModelFamily.Llama, "llama", "LlamaForCausalLM", 1e-6, 2048, QkvBias: false),
        new(ModelFamily.Mistral, "mistral", "MistralForCausalLM", 1e-6, 131072, QkvBias: false),
        new(ModelFamily.Qwen2, "qwen2", "Qwen2ForCausalLM", 1e-6, 32768, QkvBias: true),
    ];

    public static IReadOnlyList<string> SupportedModelTypes => Families.Select(f => f.ModelType).ToList();

    /// <summary>Reads <paramref name="path"/>: a <c>config.json</c> or a folder holding one.</summary>
    public static DecoderConfig Load(string path)
    {
        var file = Directory.Exists(path) && Path.GetFileName(Path.TrimEndingDirectorySeparator(path)) != FileName ? Path.Combine(path, FileName) : path;
        if (Directory.Exists(file)) throw new ModelFormatException($"model configuration '{file}' is a directory, not a JSON file");
        if (!File.Exists(file)) throw new FileNotFoundException($"model configuration '{file}' does not exist", file);
        return Parse(File.ReadAllText(file), file);
    }

    /// <param name="source">Where the JSON came from, for messages.</param>
    public static DecoderConfig Parse(string json, string source)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json);
        }
        catch (JsonException e)
        {
            throw new ModelFormatException($"'{source}' is not valid JSON: {e.Message}", e);
        }
        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw new ModelFormatException($"'{source}' is a JSON {root.ValueKind}, not a model configuration object");
            return Read(new Reader(root, source));
        }
    }

    private static DecoderConfig Read(Reader config)
    {
        var modelType = config.String("model_type") ?? throw config.Error("has no 'model_type'");
        var family = Families.FirstOrDefault(f => f.ModelType == modelType)
            ?? throw config.Error($"model_type '{modelType}' is not supported (supported: {string.Join(", ", SupportedModelTypes)})");

        int hidden = config.RequiredPositive("hidden_size");
        int heads = config.RequiredPositive("num_attention_heads");
        int kvHeads = config.Positive("num_key_value_heads") ?? heads;
        int? headDim = config.Positive("head_dim");
        if (heads % kvHeads != 0)
            throw config.Error($"num_attention_heads {heads} is not a multiple of num_key_value_heads {kvHeads}");
        if (headDim is null && hidden % heads != 0)
            throw config.Error($"hidden_size {hidden} is not a multiple of num_attention_heads {heads} and no head_dim is given");
        int headDimension = headDim ?? hidden / heads;
        if (headDimension % 2 != 0)
            throw config.Error($"the head dimension is {headDimension} ({(headDim is null ? $"hidden_size {hidden} / num_attention_heads {heads}" : "head_dim")}); rotary embeddings need an even one");
        int vocab = config.RequiredPositive("vocab_size");
        double rmsNormEps = config.Double("rms_norm_eps") ?? family.DefaultRmsNormEps;
        if (!(rmsNormEps > 0)) throw config.Error($"'rms_norm_eps' is {rmsNormEps}; it must be positive (RMSNorm divides by sqrt(mean(x^2) + eps))");
        var torchDtype = config.String("torch_dtype") is { } t ? config.DType("torch_dtype", t) : config.String("dtype") is { } d ? config.DType("dtype", d) : null;

        RejectUnsupported(config, family);
        return new DecoderConfig
        {
            Family = family.Id,
            HiddenSize = hidden,
            NumHiddenLayers = config.RequiredPositive("num_hidden_layers"),
            NumAttentionHeads = heads,
            NumKeyValueHeads = kvHeads,
            IntermediateSize = config.RequiredPositive("intermediate_size"),
            VocabSize = vocab,
            HeadDim = headDim,
            RmsNormEps = rmsNormEps,
            RopeTheta = RopeTheta(config),
            MaxPositionEmbeddings = config.Positive("max_position_embeddings") ?? family.DefaultMaxPositionEmbeddings,
            TieWordEmbeddings = config.Bool("tie_word_embeddings") ?? false,
            AttentionBias = family.QkvBias,
            SlidingWindow = SlidingWindow(config, family),
            BosTokenId = config.TokenId("bos_token_id", vocab),
            EosTokenIds = config.TokenIds("eos_token_id", vocab),
            PadTokenId = config.TokenId("pad_token_id", vocab),
            TorchDtype = torchDtype,
        };
    }

    private static void RejectUnsupported(Reader config, Family family)
    {
        if (config.String("hidden_act") is string act && act != "silu")
            throw config.Error($"hidden_act '{act}' is not supported (the decoder's MLP uses silu)");
        if (config.Has("rope_scaling") && !IsPlainRope(config.Element("rope_scaling")))
            throw config.Error($"rope_scaling {config.Raw("rope_scaling")} is not supported (only null: plain RoPE); this checkpoint needs a RoPE variant the decoder does not implement");
        if (config.Double("partial_rotary_factor") is double partial && partial != 1)
            throw config.Error($"partial_rotary_factor {partial} is not supported (RoPE over the whole head only)");
        if (family.Id == ModelFamily.Llama && config.Bool("attention_bias") == true)
            throw config.Error("attention_bias true (biases on q/k/v/o projections) is not supported for llama");
        if (config.Bool("mlp_bias") == true)
            throw config.Error("mlp_bias true is not supported (the MLP projections have no biases)");
    }

    /// <summary>transformers 5 states RoPE as <c>rope_parameters</c> (<c>rope_type</c> "default" is plain RoPE);
    /// older files say <c>rope_theta</c>.</summary>
    private static double RopeTheta(Reader config)
    {
        if (config.Has("rope_parameters"))
        {
            var parameters = config.Element("rope_parameters");
            if (!IsPlainRope(parameters))
                throw config.Error($"rope_parameters {config.Raw("rope_parameters")} is not supported (only rope_type 'default': plain RoPE)");
            if (parameters.ValueKind == JsonValueKind.Object && parameters.TryGetProperty("rope_theta", out var theta) && theta.ValueKind == JsonValueKind.Number)
                return theta.GetDouble() > 0 ? theta.GetDouble() : throw config.Error($"'rope_parameters.rope_theta' is {theta.GetRawText()}; it must be positive (inv_freq = theta^(-2j/d))");
        }
        var ropeTheta = config.Double("rope_theta") ?? 10000;
        return ropeTheta > 0 ? ropeTheta : throw config.Error($"'rope_theta' is {ropeTheta}; it must be positive (inv_freq = theta^(-2j/d))");
    }

    /// <summary>Null, or an object whose type is "default" (Hugging Face's name for unscaled RoPE) and that sets nothing but theta.</summary>
    private static bool IsPlainRope(JsonElement value)
    {
        if (value.ValueKind == JsonValueKind.Null) return true;
        if (value.ValueKind != JsonValueKind.Object) return false;
        foreach (var item in value.EnumerateObject())
        {
            bool plain = item.Name switch
            {
                "rope_type" or "type" => item.Value.ValueKind == JsonValueKind.String && item.Value.GetString() == "default",
                "rope_theta" => true,
                _ => false,
            };
            if (!plain) return false;
        }
        return true;
    }

    /// <summary>phi3 and mistral state <c>sliding_window</c> (null: none); qwen2 applies its <c>sliding_window</c> only
    /// with <c>use_sliding_window</c>; llama has no sliding window.</summary>
    private static int? SlidingWindow(Reader config, Family family) => family.Id switch
    {
        ModelFamily.Phi3 or ModelFamily.Mistral => config.Positive("sliding_window"),
        ModelFamily.Qwen2 => config.Bool("use_sliding_window") == true
            ? config.Positive("sliding_window") ?? throw config.Error("use_sliding_window is true but sliding_window is not set")
            : null,
        _ => null,
    };

    /// <summary>The <c>config.json</c> text of <paramref name="config"/>, in Hugging Face's field names.</summary>
    public static string ToJson(DecoderConfig config)
    {
        var family = Families.Single(f => f.Id == config.Family);
        if (config.AttentionBias != family.QkvBias)
            throw new ArgumentException($"{family.ModelType} checkpoints {(family.QkvBias ? "always have" : "have no")} q/k/v biases; AttentionBias {config.AttentionBias} cannot be written");
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            json.WriteStartObject();
            json.WriteStartArray("architectures");
            json.WriteStringValue(family.Architecture);
            json.WriteEndArray();
            json.WriteString("model_type", family.ModelType);
            json.WriteNumber("hidden_size", config.HiddenSize);
            json.WriteNumber("intermediate_size", config.IntermediateSize);
            json.WriteNumber("num_hidden_layers", config.NumHiddenLayers);
            json.WriteNumber("num_attention_heads", config.NumAttentionHeads);
            json.WriteNumber("num_key_value_heads", config.NumKeyValueHeads);
            if (config.HeadDim is int headDim) json.WriteNumber("head_dim", headDim);
            json.WriteNumber("vocab_size", config.VocabSize);
            json.WriteNumber("max_position_embeddings", config.MaxPositionEmbeddings);
            json.WriteNumber("rms_norm_eps", config.RmsNormEps);
            json.WriteNumber("rope_theta", config.RopeTheta);
            json.WriteNull("rope_scaling");
            json.WriteString("hidden_act", "silu");
            json.WriteBoolean("tie_word_embeddings", config.TieWordEmbeddings);
            if (config.Family == ModelFamily.Qwen2) json.WriteBoolean("use_sliding_window", config.SlidingWindow is not null);
            if (config.Family != ModelFamily.Llama)
            {
                if (config.SlidingWindow is int window) json.WriteNumber("sliding_window", window);
                else json.WriteNull("sliding_window");
            }
            else if (config.SlidingWindow is not null)
                throw new ArgumentException("llama checkpoints have no sliding window");
            WriteTokenId(json, "bos_token_id", config.BosTokenId);
            if (config.EosTokenIds.Length == 1) json.WriteNumber("eos_token_id", config.EosTokenIds[0]);
            else if (config.EosTokenIds.Length > 1)
            {
                json.WriteStartArray("eos_token_id");
                foreach (var id in config.EosTokenIds) json.WriteNumberValue(id);
                json.WriteEndArray();
            }
            WriteTokenId(json, "pad_token_id", config.PadTokenId);
            if (config.TorchDtype is string dtype) json.WriteString("torch_dtype", dtype);
            json.WriteEndObject();
        }
        return System.Text.Encoding.UTF8.GetString(buffer.ToArray()) + "\n";
    }

    /// <summary>Writes <c>config.json</c> text to <paramref name="path"/> atomically.</summary>
    public static void Save(DecoderConfig config, string path) =>
        AtomicFile.WriteAllBytes(path, System.Text.Encoding.UTF8.GetBytes(ToJson(config)));

    private static void WriteTokenId(Utf8JsonWriter json, string key, int? id)
    {
        if (id is int value) json.WriteNumber(key, value);
    }

    /// <summary>Typed access to the keys of one config object; a key that is absent or null reads as null,
    /// one of the wrong type is an error naming the file, the key and the value.</summary>
    private sealed class Reader(JsonElement root, string source)
    {
        public ModelFormatException Error(string what) => new($"model configuration '{source}': {what}");

        public bool Has(string key) => root.TryGetProperty(key, out _);
        public JsonElement Element(string key) => root.GetProperty(key);
        public string Raw(string key) => root.GetProperty(key).GetRawText();

        private JsonElement? Value(string key) =>
            root.TryGetProperty(key, out var value) && value.ValueKind != JsonValueKind.Null ? value : null;

        public string? String(string key) => Value(key) is { } v
            ? v.ValueKind == JsonValueKind.String ? v.GetString() : throw Error($"'{key}' is {v.GetRawText()}, not a string")
            : null;

        public bool? Bool(string key) => Value(key) is { } v
            ? v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean() : throw Error($"'{key}' is {v.GetRawText()}, not true or false")
            : null;

        public double? Double(string key) => Value(key) is { } v
            ? v.ValueKind == JsonValueKind.Number ? v.GetDouble() : throw Error($"'{key}' is {v.GetRawText()}, not a number")
            : null;

        public int? Integer(string key) => Value(key) is { } v ? Integer(key, v) : null;

        private int Integer(string key, JsonElement v) =>
            v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int i) ? i : throw Error($"'{key}' is {v.GetRawText()}, not an integer");

        public int? Positive(string key) => Integer(key) is int i
            ? i > 0 ? i : throw Error($"'{key}' is {i}; it must be positive")
            : null;

        public int RequiredPositive(string key) => Positive(key) ?? throw Error($"has no '{key}'");

        public int? TokenId(string key, int vocabSize) => Integer(key) is int i
            ? i >= 0 && i < vocabSize ? i : throw Error($"'{key}' is {i}; token ids lie in 0..{vocabSize - 1} (vocab_size {vocabSize})")
            : null;

        /// <summary>An id or a list of ids (Llama-3 lists several end-of-turn tokens).</summary>
        public int[] TokenIds(string key, int vocabSize)
        {
            if (Value(key) is not { } v) return [];
            if (v.ValueKind != JsonValueKind.Array) return [TokenId(key, vocabSize)!.Value];
            var ids = v.EnumerateArray().Select(item => Integer(key, item)).ToArray();
            return ids.Any(i => i < 0 || i >= vocabSize) ? throw Error($"'{key}' {v.GetRawText()} holds a token id outside 0..{vocabSize - 1} (vocab_size {vocabSize})") : ids;
        }

        /// <summary>The torch dtypes a checkpoint's weights can be stored in (Hugging Face's names and their aliases).</summary>
        static readonly string[] KnownDTypes = ["float32", "float", "float16", "half", "bfloat16"];

        public string DType(string key, string value) => KnownDTypes.Contains(value) ? value
            : throw Error($"'{key}' is \"{value}\"; expected one of {string.Join(", ", KnownDTypes)}");
    }
}
