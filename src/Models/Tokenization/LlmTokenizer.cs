namespace AlignThenUnlearn.Models;

/// <summary>What a tokenizer adds around the model's own vocabulary: added tokens, BOS/EOS and the chat format.
/// <see cref="LlmTokenizer.Load"/> reads these from a Hugging Face snapshot.</summary>
public sealed record TokenizerSpecials
{
    public IReadOnlyList<AddedToken> AddedTokens { get; init; } = [];
    public int? BosId { get; init; }
    public int? EosId { get; init; }
    /// <summary>Whether encoding with special tokens puts the BOS first (Hugging Face's <c>add_bos_token</c>).</summary>
    public bool AddsBos { get; init; }
    public bool AddsEos { get; init; }
    /// <summary>Whether the snapshot's chat template renders the BOS token (<c>{{ bos_token }}</c>): Hugging Face's
    /// <c>apply_chat_template</c> then starts every chat prompt with it, even where <c>add_bos_token</c> is false (Phi-3).</summary>
    public bool ChatTemplateBos { get; init; }
    /// <summary>Further ids that end generation (<c>generation_config.json</c> "eos_token_id").</summary>
    public IReadOnlyList<int> ExtraStopIds { get; init; } = [];
    public ChatFormat ChatFormat { get; init; }
    /// <summary>Whether decoding removes the spaces before punctuation and contractions (Hugging Face's
    /// <c>clean_up_tokenization_spaces</c> in <c>tokenizer_config.json</c>; Llama-3's says true).</summary>
    public bool CleanUpTokenizationSpaces { get; init; }
}

/// <summary>How many BOS tokens start a chat prompt (<see cref="LlmTokenizer.EncodePrompt"/>).</summary>
public enum PromptBos
{
    /// <summary>As the snapshot's template renders it (<c>apply_chat_template</c> with <c>tokenize=True</c>): one BOS where
    /// the template or <c>add_bos_token</c> puts one.</summary>
    Template,
    /// <summary>As RWKU's evaluation encodes it: the template's BOS, then the tokenizer's own (two for Llama-3).</summary>
    Rwku,
}

/// <summary>The tokenizer of a Llama-family decoder: the model's own tokenization (SentencePiece BPE, run by
/// <see cref="SentencePieceBpe"/>, or byte-level BPE, run by Microsoft.ML.Tokenizers) plus Hugging Face's added tokens, BOS/EOS and the chat prompt.
/// Encoding splits the text at added tokens first (<see cref="AddedTokenMatcher"/>) and hands each plain piece to
/// the model, as Hugging Face does.</summary>
public abstract class LlmTokenizer
{
    readonly AddedTokenMatcher _matcher;
    readonly Dictionary<int, AddedToken> _addedById;
    readonly Dictionary<string, AddedToken> _addedByContent;

    protected LlmTokenizer(TokenizerSpecials specials)
    {
        Specials = specials;
        _addedById = specials.AddedTokens.ToDictionary(t => t.Id);
        _addedByContent = specials.AddedTokens.ToDictionary(t => t.Content, StringComparer.Ordinal);
        _matcher = new AddedTokenMatcher(specials.AddedTokens);
        var stops = new List<int>();
        if (specials.EosId is int eos) stops.Add(eos);
        stops.AddRange(specials.ExtraStopIds);
        if (ChatTemplate.EndOfTurnToken(specials.ChatFormat) is string endOfTurn && TryGetId(endOfTurn, out var endId)) stops.Add(endId);
        StopIds = stops.Distinct().ToArray();
    }

    public TokenizerSpecials Specials { get; }
    public IReadOnlyList<AddedToken> AddedTokens => Specials.AddedTokens;
    public int? BosId => Specials.BosId;
    public int? EosId => Specials.EosId;
    public bool AddsBos => Specials.AddsBos;
    public bool AddsEos => Specials.AddsEos;
    public ChatFormat ChatFormat => Specials.ChatFormat;
    /// <summary>Ids that end generation: the EOS, <c>generation_config.json</c>'s EOS ids and the chat format's
    /// end-of-turn token (<c>&lt;|end|&gt;</c>, <c>&lt;|eot_id|&gt;</c>, <c>&lt;|im_end|&gt;</c>).</summary>
    public IReadOnlyList<int> StopIds { get; }

    /// <summary>One more than the largest id of the model vocabulary and the added tokens. A checkpoint's embedding
    /// may have more rows (Phi-3-mini: 32064 rows for 32011 ids).</summary>
    public int VocabularySize => Math.Max(ModelVocabularySize, AddedTokens.Count == 0 ? 0 : AddedTokens.Max(t => t.Id) + 1);

    protected abstract int ModelVocabularySize { get; }

    /// <summary>Encodes <paramref name="text"/>. With <paramref name="addSpecialTokens"/> the BOS/EOS are added as the
    /// checkpoint's <c>add_bos_token</c>/<c>add_eos_token</c> say (no second BOS when the text starts with it).
    /// With <paramref name="parseAddedTokens"/> false, text such as <c>&lt;|end|&gt;</c> is tokenized as plain text
    /// (for corpora that must not inject control tokens); Hugging Face's default is true.</summary>
    public TokenizedText Encode(string text, bool addSpecialTokens = true, bool parseAddedTokens = true)
    {
        ArgumentNullException.ThrowIfNull(text);
        text = NormalizeInput(text);
        var ids = new List<int>();
        var offsets = new List<TokenSpan>();
        var segments = parseAddedTokens ? _matcher.Split(text).ToList() : [new TextSegment(0, text.Length, null)];
        bool textStartsWithBos = segments.Count > 0 && segments[0].Token is { } first && first.Id == BosId;
        if (addSpecialTokens && AddsBos && BosId is int bos && !textStartsWithBos)
        {
            ids.Add(bos);
            offsets.Add(new TokenSpan(0, 0));
        }
        foreach (var segment in segments)
        {
            if (segment.Token is { } token)
            {
                ids.Add(token.Id);
                offsets.Add(new TokenSpan(segment.Start, segment.End));
            }
            else EncodePlainText(text, segment.Start, segment.End, ids, offsets);
        }
        if (addSpecialTokens && AddsEos && EosId is int eos)
        {
            ids.Add(eos);
            offsets.Add(new TokenSpan(text.Length, text.Length));
        }
        return new TokenizedText(text, ids, offsets);
    }

    public int[] EncodeToIds(string text, bool addSpecialTokens = true, bool parseAddedTokens = true) =>
        [.. Encode(text, addSpecialTokens, parseAddedTokens).Ids];

    /// <summary>A prompt as Hugging Face encodes it. A chat prompt (a text that opens a turn of the chat format,
    /// <see cref="ChatTemplate.OpensTurn"/>, as <see cref="ChatTemplate.Format(ChatFormat, string)"/> renders it) starts with
    /// the BOS when the snapshot's template renders one (<see cref="TokenizerSpecials.ChatTemplateBos"/>), as
    /// <c>apply_chat_template</c> gives it; with <see cref="PromptBos.Rwku"/> the tokenizer adds its own BOS before that
    /// one where <c>add_bos_token</c> says so, as RWKU's evaluation (the template applied as text, then tokenized with
    /// special tokens) does: Llama-3's prompts start <c>&lt;|begin_of_text|&gt;&lt;|begin_of_text|&gt;</c>. Any other
    /// text is encoded with the BOS as <c>add_bos_token</c> says.</summary>
    public int[] EncodePrompt(string text, PromptBos layout = PromptBos.Template)
    {
        var ids = EncodeToIds(text);
        if (!Specials.ChatTemplateBos || BosId is not int bos || !ChatTemplate.OpensTurn(ChatFormat, text)) return ids;
        bool tokenizerBos = ids.Length > 0 && ids[0] == bos;
        return !tokenizerBos || layout == PromptBos.Rwku ? [bos, .. ids] : ids;
    }

    /// <summary>The prompt of one user turn in the checkpoint's chat format, encoded with the BOS if the tokenizer
    /// adds one.</summary>
    public TokenizedText EncodeChatPrompt(string userMessage) => Encode(ChatTemplate.Format(ChatFormat, userMessage));

    /// <summary>Decodes ids to text as Hugging Face's fast tokenizers do: added tokens decode to their content
    /// (special ones are dropped with <paramref name="skipSpecialTokens"/>), the ids between them are decoded by the
    /// model, and a SentencePiece dummy-prefix space is removed only at the very start of the output. Whitespace
    /// that an added token swallowed while encoding does not come back. With <paramref name="cleanUpTokenizationSpaces"/>
    /// (by default the checkpoint's <see cref="TokenizerSpecials.CleanUpTokenizationSpaces"/>) the result goes through
    /// <see cref="CleanUpTokenization"/>, as Hugging Face's <c>decode</c> does.</summary>
    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = false, bool? cleanUpTokenizationSpaces = null)
    {
        var text = new System.Text.StringBuilder();
        var run = new List<int>();
        void Flush()
        {
            if (run.Count == 0) return;
            text.Append(DecodeRun(run, atOutputStart: text.Length == 0));
            run.Clear();
        }
        foreach (var id in ids)
        {
            if (_addedById.TryGetValue(id, out var token))
            {
                Flush();
                if (!(skipSpecialTokens && token.Special)) text.Append(token.Content);
            }
            else run.Add(id);
        }
        Flush();
        var decoded = text.ToString();
        return cleanUpTokenizationSpaces ?? Specials.CleanUpTokenizationSpaces ? CleanUpTokenization(decoded) : decoded;
    }

    /// <summary>transformers' <c>clean_up_tokenization</c>: the space before ".", "?", "!", ",", and in " ' ", " n't",
    /// " 'm", " 's", " 've", " 're" goes, replaced in this order (ordinal, each over the whole text).</summary>
    public static string CleanUpTokenization(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        foreach (var (spaced, joined) in CleanUpReplacements) text = text.Replace(spaced, joined, StringComparison.Ordinal);
        return text;
    }

    static readonly (string Spaced, string Joined)[] CleanUpReplacements =
    [
        (" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"),
    ];

    /// <summary>The id of an added token or of a piece of the model vocabulary.</summary>
    public bool TryGetId(string token, out int id)
    {
        if (_addedByContent.TryGetValue(token, out var added)) { id = added.Id; return true; }
        return TryGetModelId(token, out id);
    }

    public int GetId(string token) =>
        TryGetId(token, out var id) ? id : throw new KeyNotFoundException($"'{token}' is neither an added token nor in the model vocabulary.");

    /// <summary>Maps the input before splitting (identity unless the checkpoint normalizes, as Qwen2's NFC does).</summary>
    protected virtual string NormalizeInput(string text) => text;

    /// <summary>Tokenizes <c>text[start..end)</c>, a piece that holds no added token, appending ids and spans of
    /// <c>text</c>.</summary>
    protected abstract void EncodePlainText(string text, int start, int end, List<int> ids, List<TokenSpan> offsets);

    /// <summary>Decodes ids of the model vocabulary that stand between added tokens; <paramref name="atOutputStart"/>:
    /// nothing precedes them in the output.</summary>
    protected abstract string DecodeRun(IReadOnlyList<int> ids, bool atOutputStart);

    protected abstract bool TryGetModelId(string piece, out int id);

    /// <summary>Reads the tokenizer of a Hugging Face snapshot folder (see <see cref="TokenizerFolder"/>).</summary>
    public static LlmTokenizer Load(string directory) => TokenizerFolder.Load(directory);
}
