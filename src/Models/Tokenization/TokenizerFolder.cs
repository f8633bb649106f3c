using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace AlignThenUnlearn.Models;

/// <summary>Reads the tokenizer of a Hugging Face snapshot folder:
/// <list type="bullet">
/// <item><c>tokenizer.model</c> (SentencePiece BPE: Phi-3, Llama-2, Mistral) when present, merged by SentencePiece's
/// rule, with the added tokens and the dummy-prefix behaviour of <c>tokenizer.json</c> / <c>tokenizer_config.json</c>;</item>
/// <item>otherwise <c>tokenizer.json</c>: a SentencePiece-style BPE (<c>byte_fallback</c>: Mistral, Llama-2
/// derivatives shipped without <c>tokenizer.model</c>) merged by Hugging Face's rule, or a byte-level BPE (Llama-3,
/// Qwen2);</item>
/// <item><c>tokenizer_config.json</c>: <c>add_bos_token</c>, <c>add_eos_token</c>, <c>bos_token</c>,
/// <c>eos_token</c>, <c>legacy</c>, <c>add_prefix_space</c>, <c>clean_up_tokenization_spaces</c>, "added_tokens_decoder";</item>
/// <item><c>generation_config.json</c>: "eos_token_id" (more ids that end generation).</item>
/// </list>
/// BOS: <c>add_bos_token</c> decides when the config has it (Phi-3-mini-4k-instruct's says false: its prompts start
/// at <c>&lt;|user|&gt;</c>); without it a SentencePiece tokenizer adds the BOS (the default of Hugging Face's
/// <c>LlamaTokenizer</c>, right for Llama-2 and Mistral) and a byte-level one adds the token its post-processor
/// template puts first (Llama-3's <c>&lt;|begin_of_text|&gt;</c>; Qwen2 has none). Anything this project cannot
/// reproduce exactly is refused with an error naming the file and the feature.</summary>
public static class TokenizerFolder
{
    public const string SentencePieceFile = "tokenizer.model";
    public const string TokenizerJsonFile = "tokenizer.json";
    public const string ConfigFile = "tokenizer_config.json";
    public const string GenerationConfigFile = "generation_config.json";

    public static LlmTokenizer Load(string directory)
    {
        if (!Directory.Exists(directory)) throw new DirectoryNotFoundException($"Tokenizer folder '{directory}' does not exist.");
        var config = ReadJson(directory, ConfigFile);
        var tokenizerJson = ReadJson(directory, TokenizerJsonFile);
        var generationConfig = ReadJson(directory, GenerationConfigFile);
        var added = ReadAddedTokens(directory, tokenizerJson, config);
        var extraStops = IdsOf(generationConfig?["eos_token_id"]);

        var modelPath = Path.Combine(directory, SentencePieceFile);
        if (File.Exists(modelPath)) return LoadSentencePiece(modelPath, config, tokenizerJson, added, extraStops);
        if (tokenizerJson is not null) return LoadTokenizerJson(Path.Combine(directory, TokenizerJsonFile), tokenizerJson, config, added, extraStops);
        throw new FileNotFoundException($"'{directory}' has neither {SentencePieceFile} nor {TokenizerJsonFile}.");
    }

    static SentencePieceLlmTokenizer LoadSentencePiece(string path, JsonObject? config, JsonObject? tokenizerJson,
        List<AddedToken> added, IReadOnlyList<int> extraStops)
    {
        var proto = SentencePieceModel.Load(path);
        SentencePieceBpe model;
        try
        {
            model = SentencePieceBpe.FromSentencePiece(proto);
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"'{path}': {e.Message}", e);
        }
        string? PieceOf(int id) => id >= 0 && id < proto.Pieces.Count ? proto.Pieces[id].Piece : null;
        // <unk>, <s> and </s> are added tokens in Hugging Face too: matched in text, decoded to their content.
        foreach (var id in new[] { proto.UnknownId, proto.BeginningOfSentenceId, proto.EndOfSentenceId })
            if (PieceOf(id) is string content && !added.Any(t => t.Id == id)) added.Add(new AddedToken(id, content));
        var lookup = Lookup(added, model.Vocabulary);
        var bos = TokenContent(config?["bos_token"]) ?? PieceOf(proto.BeginningOfSentenceId);
        var eos = TokenContent(config?["eos_token"]) ?? PieceOf(proto.EndOfSentenceId);
        var specials = new TokenizerSpecials
        {
            AddedTokens = added,
            BosId = bos is null ? null : lookup(bos, "bos_token"),
            EosId = eos is null ? null : lookup(eos, "eos_token"),
            AddsBos = (Bool(config?["add_bos_token"]) ?? true) && bos is not null,
            AddsEos = (Bool(config?["add_eos_token"]) ?? false) && eos is not null,
            ExtraStopIds = extraStops,
            ChatFormat = ChatTemplate.Detect(added.Select(t => t.Content), isSentencePiece: true),
            ChatTemplateBos = ChatTemplateRendersBos(config) && bos is not null,
            CleanUpTokenizationSpaces = CleanUpOf(config),
        };
        var normalization = NormalizationOf(tokenizerJson, config) with
        {
            RemoveExtraWhitespaces = proto.RemoveExtraWhitespaces,
            EscapeWhitespaces = proto.EscapeWhitespaces,
        };
        if (!proto.AddDummyPrefix) normalization = normalization with { DummyPrefix = DummyPrefixPolicy.Never };
        return new SentencePieceLlmTokenizer(model, normalization, specials);
    }

    /// <summary>Where Hugging Face puts the dummy prefix: the fast tokenizer (<c>tokenizer.json</c>, what
    /// <c>AutoTokenizer</c> loads) when present, else the slow <c>LlamaTokenizer</c>'s <c>legacy</c> rule. A
    /// Metaspace pre-tokenizer adds no prefix to a piece that starts with a space, and with <c>split</c> (true
    /// when absent) merges each "▁"-started word on its own.</summary>
    static SentencePieceNormalization NormalizationOf(JsonObject? tokenizerJson, JsonObject? config)
    {
        if (tokenizerJson is not null)
        {
            if (Components(tokenizerJson["normalizer"], "normalizers").Any(n => Str(n["type"]) == "Prepend" && Str(n["prepend"]) == "▁"))
                return new SentencePieceNormalization { DummyPrefix = DummyPrefixPolicy.EverySegment };
            var metaspace = Components(tokenizerJson["pre_tokenizer"], "pretokenizers").FirstOrDefault(p => Str(p["type"]) == "Metaspace");
            if (metaspace is null) return new SentencePieceNormalization { DummyPrefix = DummyPrefixPolicy.Never };
            var policy = Str(metaspace["prepend_scheme"]) switch
            {
                "always" => DummyPrefixPolicy.EverySegment,
                "first" => DummyPrefixPolicy.TextStartOnly,
                "never" => DummyPrefixPolicy.Never,
                null => Bool(metaspace["add_prefix_space"]) == false ? DummyPrefixPolicy.Never : DummyPrefixPolicy.EverySegment,
                var other => throw new NotSupportedException($"{TokenizerJsonFile}: Metaspace prepend_scheme '{other}' is not supported."),
            };
            return new SentencePieceNormalization { DummyPrefix = policy, NoPrefixBeforeSpace = true, SplitBeforeSpaces = Bool(metaspace["split"]) ?? true };
        }
        if (Bool(config?["add_prefix_space"]) == false) return new SentencePieceNormalization { DummyPrefix = DummyPrefixPolicy.Never };
        return new SentencePieceNormalization { DummyPrefix = Bool(config?["legacy"]) ?? true ? DummyPrefixPolicy.EverySegment : DummyPrefixPolicy.TextStartOnly };
    }

    /// <summary>Hugging Face's <c>clean_up_tokenization_spaces</c>; transformers' default is false.</summary>
    static bool CleanUpOf(JsonObject? config) => Bool(config?["clean_up_tokenization_spaces"]) ?? false;

    /// <summary>A SentencePiece-style <c>tokenizer.json</c> without <c>tokenizer.model</c> (Mistral, Llama-2
    /// derivatives): a BPE with byte fallback under the normalizers Prepend("▁") and Replace(" ", "▁") and/or a
    /// Metaspace pre-tokenizer. It runs on <see cref="SentencePieceBpe.FromMerges"/>, Hugging Face's rule, which on
    /// a converted <c>tokenizer.model</c> gives the model's ids (see <see cref="SentencePieceBpe"/> for the ties
    /// where SentencePiece and Hugging Face part).</summary>
    static SentencePieceLlmTokenizer LoadSentencePieceJson(string path, JsonObject tokenizerJson, JsonObject model, JsonObject? config,
        List<AddedToken> added, IReadOnlyList<int> extraStops)
    {
        if (Bool(model["ignore_merges"]) == true) throw new NotSupportedException($"{path}: ignore_merges with byte_fallback is not supported.");
        bool escape = false;
        foreach (var normalizer in Components(tokenizerJson["normalizer"], "normalizers"))
        {
            var type = Str(normalizer["type"]);
            if (type == "Prepend" && Str(normalizer["prepend"]) == "▁") continue;
            if (type == "Replace" && Str(normalizer["pattern"]?["String"]) == " " && Str(normalizer["content"]) == "▁") { escape = true; continue; }
            throw new NotSupportedException($"{path}: normalizer {normalizer.ToJsonString()} is not supported in a SentencePiece-style BPE (Prepend \"▁\" and Replace \" \" -> \"▁\" only).");
        }
        foreach (var preTokenizer in Components(tokenizerJson["pre_tokenizer"], "pretokenizers"))
        {
            if (Str(preTokenizer["type"]) == "Metaspace" && Str(preTokenizer["replacement"]) == "▁") { escape = true; continue; }
            throw new NotSupportedException(
                $"{path}: pre-tokenizer {preTokenizer.ToJsonString()} is not supported in a SentencePiece-style BPE (Metaspace \"▁\" only; " +
                "a byte-level BPE has a ByteLevel pre-tokenizer and no byte_fallback).");
        }
        var (vocabulary, merges) = VocabularyAndMerges(path, model);
        SentencePieceBpe bpe;
        try
        {
            bpe = SentencePieceBpe.FromMerges(vocabulary, merges, byteFallback: true, Str(model["unk_token"]), Bool(model["fuse_unk"]) ?? false);
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"{path}: {e.Message}", e);
        }
        var specials = JsonSpecials(path, tokenizerJson, config, added, extraStops, bpe.Vocabulary, isSentencePiece: true);
        var normalization = NormalizationOf(tokenizerJson, config) with { EscapeWhitespaces = escape };
        return new SentencePieceLlmTokenizer(bpe, normalization, specials);
    }

    static LlmTokenizer LoadTokenizerJson(string path, JsonObject tokenizerJson, JsonObject? config,
        List<AddedToken> added, IReadOnlyList<int> extraStops)
    {
        var model = tokenizerJson["model"] as JsonObject ?? throw new InvalidDataException($"{path} has no \"model\".");
        var type = Str(model["type"]);
        if (type != "BPE") throw new NotSupportedException($"{path}: model type '{type}' is not supported (BPE only).");
        foreach (var option in new[] { "continuing_subword_prefix", "end_of_word_suffix" })
            if (model[option] is JsonValue v && v.GetValueKind() != System.Text.Json.JsonValueKind.Null && Str(v) != "")
                throw new NotSupportedException($"{path}: BPE option '{option}' is not supported (null or \"\" only).");
        if (model["dropout"] is JsonValue dropout && dropout.GetValueKind() != System.Text.Json.JsonValueKind.Null)
            throw new NotSupportedException($"{path}: BPE option 'dropout' is not supported.");
        return Bool(model["byte_fallback"]) == true
            ? LoadSentencePieceJson(path, tokenizerJson, model, config, added, extraStops)
            : LoadByteLevel(path, tokenizerJson, model, config, added, extraStops);
    }

    static ByteLevelBpeLlmTokenizer LoadByteLevel(string path, JsonObject tokenizerJson, JsonObject model, JsonObject? config,
        List<AddedToken> added, IReadOnlyList<int> extraStops)
    {
        var preTokenizers = Components(tokenizerJson["pre_tokenizer"], "pretokenizers").ToList();
        var byteLevel = preTokenizers.FirstOrDefault(p => Str(p["type"]) == "ByteLevel")
            ?? throw new NotSupportedException($"{path}: a BPE without byte_fallback must be byte-level (a ByteLevel pre-tokenizer); this one has none.");
        if (Bool(byteLevel["add_prefix_space"]) == true)
            throw new NotSupportedException($"{path}: ByteLevel add_prefix_space true is not supported.");

        var splits = new List<Regex>();
        foreach (var p in preTokenizers)
        {
            switch (Str(p["type"]))
            {
                case "Split":
                    var pattern = Str(p["pattern"]?["Regex"]) ?? throw new NotSupportedException($"{path}: only regex Split pre-tokenizers are supported.");
                    if (Str(p["behavior"]) != "Isolated" || Bool(p["invert"]) == true)
                        throw new NotSupportedException($"{path}: Split behaviour '{Str(p["behavior"])}' (invert {Bool(p["invert"])}) is not supported; only Isolated.");
                    splits.Add(new Regex(pattern, RegexOptions.CultureInvariant));
                    break;
                case "ByteLevel":
                    if (Bool(p["use_regex"]) ?? true) splits.Add(new Regex(Gpt2Pattern, RegexOptions.CultureInvariant));
                    break;
                default:
                    throw new NotSupportedException($"{path}: pre-tokenizer '{Str(p["type"])}' is not supported.");
            }
        }
        var normalizers = Components(tokenizerJson["normalizer"], "normalizers").Select(n => Str(n["type"])).ToList();
        if (normalizers.Any(n => n != "NFC")) throw new NotSupportedException($"{path}: normalizer {string.Join(", ", normalizers)} is not supported (NFC only).");

        var (vocabulary, merges) = VocabularyAndMerges(path, model);
        var bpe = BpeTokenizer.Create(new BpeOptions(vocabulary) { Merges = merges.Select(m => $"{m.Left} {m.Right}"), ByteLevel = true });
        var specials = JsonSpecials(path, tokenizerJson, config, added, extraStops, bpe.Vocabulary, isSentencePiece: false);
        return new ByteLevelBpeLlmTokenizer(bpe, splits, ignoreMerges: Bool(model["ignore_merges"]) ?? false,
            nfc: normalizers.Contains("NFC"), specials);
    }

    /// <summary>The vocabulary and merges of a <c>tokenizer.json</c> BPE model; a merge is a pair or, in older
    /// files, one string "left right".</summary>
    static (List<KeyValuePair<string, int>> Vocabulary, List<(string Left, string Right)> Merges) VocabularyAndMerges(string path, JsonObject model)
    {
        var vocabulary = (model["vocab"] as JsonObject ?? throw new InvalidDataException($"{path}: model has no vocab."))
            .Select(kv => new KeyValuePair<string, int>(kv.Key, (int)kv.Value!)).ToList();
        var merges = (model["merges"] as JsonArray ?? []).Select(m => m switch
        {
            JsonArray pair when pair.Count == 2 && Str(pair[0]) is string left && Str(pair[1]) is string right
                && !left.Contains(' ') && !right.Contains(' ') => (left, right),
            JsonValue line when Str(line)?.Split(' ') is [var left, var right] => (left, right),
            _ => throw new InvalidDataException($"{path}: cannot read merge {m?.ToJsonString()}."),
        }).ToList();
        return (vocabulary, merges);
    }

    /// <summary>BOS, EOS and the rest for a <c>tokenizer.json</c> model: <c>add_bos_token</c>/<c>add_eos_token</c>
    /// when the config has them, else what the post-processor template puts around the text.</summary>
    static TokenizerSpecials JsonSpecials(string path, JsonObject tokenizerJson, JsonObject? config, List<AddedToken> added,
        IReadOnlyList<int> extraStops, IReadOnlyDictionary<string, int> vocabulary, bool isSentencePiece)
    {
        var lookup = Lookup(added, vocabulary);
        var (templateBos, templateEos) = TemplateSpecials(tokenizerJson["post_processor"]);
        bool addsBos = Bool(config?["add_bos_token"]) ?? templateBos is not null;
        bool addsEos = Bool(config?["add_eos_token"]) ?? templateEos is not null;
        var bosContent = TokenContent(config?["bos_token"]) ?? templateBos;
        var eosContent = TokenContent(config?["eos_token"]) ?? templateEos;
        if (addsBos && bosContent is null) throw new InvalidDataException($"{path}: add_bos_token is set but no bos_token is named.");
        return new TokenizerSpecials
        {
            AddedTokens = added,
            BosId = bosContent is null ? null : lookup(bosContent, "bos_token"),
            EosId = eosContent is null ? null : lookup(eosContent, "eos_token"),
            AddsBos = addsBos,
            AddsEos = addsEos && eosContent is not null,
            ExtraStopIds = extraStops,
            ChatFormat = ChatTemplate.Detect(added.Select(t => t.Content), isSentencePiece),
            ChatTemplateBos = ChatTemplateRendersBos(config) && bosContent is not null,
            CleanUpTokenizationSpaces = CleanUpOf(config),
        };
    }

    /// <summary>GPT-2's pre-tokenizer pattern, which a ByteLevel pre-tokenizer with <c>use_regex</c> applies.</summary>
    const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    /// <summary>The special tokens a TemplateProcessing post-processor puts before and after a single sequence.</summary>
    static (string? Before, string? After) TemplateSpecials(JsonNode? postProcessor)
    {
        foreach (var processor in Components(postProcessor, "processors"))
        {
            if (Str(processor["type"]) != "TemplateProcessing" || processor["single"] is not JsonArray single) continue;
            string? before = null, after = null;
            bool seenSequence = false;
            foreach (var item in single)
            {
                if (item?["Sequence"] is not null) { seenSequence = true; continue; }
                var special = Str(item?["SpecialToken"]?["id"]);
                if (special is null) continue;
                if (seenSequence) after ??= special; else before ??= special;
            }
            return (before, after);
        }
        return (null, null);
    }

    /// <summary>The added tokens of <c>tokenizer.json</c> ("added_tokens") and <c>tokenizer_config.json</c>
    /// ("added_tokens_decoder"), which must agree where both name an id.</summary>
    static List<AddedToken> ReadAddedTokens(string directory, JsonObject? tokenizerJson, JsonObject? config)
    {
        var byId = new Dictionary<int, AddedToken>();
        void Add(JsonNode entry, int id, string file)
        {
            var content = Str(entry["content"]) ?? throw new InvalidDataException($"{Path.Combine(directory, file)}: added token {id} has no content.");
            if (Bool(entry["single_word"]) == true)
                throw new NotSupportedException($"{Path.Combine(directory, file)}: added token '{content}' has single_word, which is not supported.");
            if (Bool(entry["normalized"]) == true && content.Any(char.IsWhiteSpace))
                throw new NotSupportedException($"{Path.Combine(directory, file)}: normalized added token '{content}' holds whitespace, which is not supported.");
            var token = new AddedToken(id, content, Bool(entry["special"]) ?? false, Bool(entry["lstrip"]) ?? false, Bool(entry["rstrip"]) ?? false);
            if (byId.TryGetValue(id, out var known) && known.Content != content)
                throw new InvalidDataException($"{directory}: added token {id} is '{known.Content}' in one file and '{content}' in {file}.");
            byId.TryAdd(id, token); // tokenizer.json is read first and wins on flags
        }
        if (tokenizerJson?["added_tokens"] is JsonArray list)
            foreach (var entry in list.OfType<JsonNode>())
                Add(entry, (int?)entry["id"] ?? throw new InvalidDataException($"{TokenizerJsonFile}: an added token has no id."), TokenizerJsonFile);
        if (config?["added_tokens_decoder"] is JsonObject decoder)
            foreach (var (key, entry) in decoder)
                if (entry is not null) Add(entry, int.Parse(key, System.Globalization.CultureInfo.InvariantCulture), ConfigFile);
        var duplicate = byId.Values.GroupBy(t => t.Content).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null) throw new InvalidDataException($"{directory}: added token '{duplicate.Key}' has several ids.");
        return [.. byId.Values.OrderBy(t => t.Id)];
    }

    static Func<string, string, int> Lookup(List<AddedToken> added, IReadOnlyDictionary<string, int> vocabulary) => (content, role) =>
        added.FirstOrDefault(t => t.Content == content)?.Id
        ?? (vocabulary.TryGetValue(content, out var id) ? id : throw new InvalidDataException($"The {role} '{content}' is neither an added token nor in the vocabulary."));

    /// <summary>A component and, for a "Sequence", its parts (normalizers, pre-tokenizers, post-processors).</summary>
    static IEnumerable<JsonNode> Components(JsonNode? node, string sequenceKey)
    {
        if (node is null) yield break;
        if (Str(node["type"]) == "Sequence" && node[sequenceKey] is JsonArray parts)
        {
            foreach (var part in parts)
                foreach (var inner in Components(part, sequenceKey)) yield return inner;
        }
        else yield return node;
    }

    /// <summary>A token named in a config: a string, or an AddedToken object with "content"; null when absent.</summary>
    static string? TokenContent(JsonNode? node) => node switch
    {
        JsonValue v when v.GetValueKind() == System.Text.Json.JsonValueKind.String => v.GetValue<string>(),
        JsonObject o => Str(o["content"]),
        _ => null,
    };

    static IReadOnlyList<int> IdsOf(JsonNode? node) => node switch
    {
        JsonArray a => [.. a.Select(x => (int)x!)],
        JsonValue v when v.GetValueKind() == System.Text.Json.JsonValueKind.Number => [(int)v],
        _ => [],
    };

    static string? Str(JsonNode? node) =>
        node is JsonValue v && v.GetValueKind() == System.Text.Json.JsonValueKind.String ? v.GetValue<string>() : null;

    /// <summary>Whether the Jinja <c>chat_template</c> of <c>tokenizer_config.json</c> (a string, or a list of named
    /// templates of which "default" is used) renders <c>bos_token</c>: Llama-3's and Llama-2's templates put it first, as
    /// Phi-3-mini-4k-instruct's first release did (<c>{{ bos_token }}</c>); ChatML's has none. Hugging Face's
    /// <c>apply_chat_template</c> then starts the prompt with the BOS whatever <c>add_bos_token</c> says.</summary>
    static bool ChatTemplateRendersBos(JsonObject? config)
    {
        var template = config?["chat_template"] switch
        {
            JsonValue v when v.GetValueKind() == System.Text.Json.JsonValueKind.String => v.GetValue<string>(),
            JsonArray list => list.OfType<JsonObject>().FirstOrDefault(t => Str(t["name"]) == "default") is { } named ? Str(named["template"]) : null,
            _ => null,
        };
        return template is not null && Regex.IsMatch(template, @"\bbos_token\b");
    }

    static bool? Bool(JsonNode? node) => node is JsonValue v && v.GetValueKind() is System.Text.Json.JsonValueKind.True or System.Text.Json.JsonValueKind.False
        ? v.GetValue<bool>() : null;

    static JsonObject? ReadJson(string directory, string file)
    {
        var path = Path.Combine(directory, file);
        if (!File.Exists(path)) return null;
        try
        {
            return JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new InvalidDataException($"{path} is not a JSON object.");
        }
        catch (System.Text.Json.JsonException e)
        {
            throw new InvalidDataException($"{path} is not valid JSON: {e.Message}", e);
        }
    }
}
