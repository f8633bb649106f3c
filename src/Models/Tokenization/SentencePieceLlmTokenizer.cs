using System.Text;

namespace AlignThenUnlearn.Models;

/// <summary>Which plain-text pieces get SentencePiece's dummy-prefix "▁" once the text is split at added tokens.
/// Hugging Face's tokenizers disagree here, so the snapshot's files decide (<see cref="TokenizerFolder"/>).</summary>
public enum DummyPrefixPolicy
{
    /// <summary>Every piece: a <c>tokenizer.json</c> whose normalizer prepends "▁" (Phi-3, Llama-2), or the slow
    /// <c>LlamaTokenizer</c> with <c>legacy</c> true, which runs SentencePiece on each piece.</summary>
    EverySegment,
    /// <summary>Only a piece at the start of the text: Metaspace with <c>prepend_scheme</c> "first", or the slow
    /// <c>LlamaTokenizer</c> with <c>legacy</c> false.</summary>
    TextStartOnly,
    /// <summary>No piece: <c>add_dummy_prefix</c> false in the model, or <c>add_prefix_space</c> false.</summary>
    Never,
}

/// <summary>How a plain-text piece becomes the string that <see cref="SentencePieceBpe"/> merges: SentencePiece's
/// identity normalizer (<c>tokenizer.model</c>) or the normalizer and pre-tokenizer of a SentencePiece-style
/// <c>tokenizer.json</c>.</summary>
public sealed record SentencePieceNormalization
{
    public DummyPrefixPolicy DummyPrefix { get; init; } = DummyPrefixPolicy.EverySegment;
    /// <summary>Hugging Face's Metaspace: no dummy prefix for a piece that already starts with a space (or "▁").
    /// SentencePiece and the Prepend normalizer add it regardless.</summary>
    public bool NoPrefixBeforeSpace { get; init; }
    /// <summary>SentencePiece's <c>remove_extra_whitespaces</c>: leading and trailing spaces dropped, runs collapsed.</summary>
    public bool RemoveExtraWhitespaces { get; init; }
    /// <summary>Spaces become "▁" (SentencePiece's <c>escape_whitespaces</c>, a Replace normalizer or Metaspace).</summary>
    public bool EscapeWhitespaces { get; init; } = true;
    /// <summary>Hugging Face's Metaspace with <c>split</c>: each "▁" starts a word that is merged on its own, so no
    /// token spans a "▁" after its first character.</summary>
    public bool SplitBeforeSpaces { get; init; }
}

/// <summary>A SentencePiece BPE tokenizer with byte fallback (Llama-2, Mistral, Phi-3), from a <c>tokenizer.model</c>
/// or a SentencePiece-style <c>tokenizer.json</c>. This class normalizes each plain-text piece (whitespace
/// escaping, the dummy prefix, per <see cref="SentencePieceNormalization"/>) keeping, for every normalized
/// character, the span of the input it came from; <see cref="SentencePieceBpe"/> does the merges and the byte
/// fallback.</summary>
public sealed class SentencePieceLlmTokenizer : LlmTokenizer
{
    const char Meta = '▁'; // U+2581, SentencePiece's escaped space
    readonly SentencePieceBpe _model;
    readonly SentencePieceNormalization _normalization;

    public SentencePieceLlmTokenizer(SentencePieceBpe model, SentencePieceNormalization normalization, TokenizerSpecials specials)
        : base(specials)
    {
        _model = model;
        _normalization = normalization;
    }

    public DummyPrefixPolicy DummyPrefix => _normalization.DummyPrefix;
    public SentencePieceNormalization Normalization => _normalization;
    public SentencePieceBpe Model => _model;
    protected override int ModelVocabularySize => _model.Count;

    protected override bool TryGetModelId(string piece, out int id) => _model.Vocabulary.TryGetValue(piece, out id);

    protected override void EncodePlainText(string text, int start, int end, List<int> ids, List<TokenSpan> offsets)
    {
        bool prefix = DummyPrefix == DummyPrefixPolicy.EverySegment || (DummyPrefix == DummyPrefixPolicy.TextStartOnly && start == 0);
        var (normalized, from, to) = Normalize(text, start, end, prefix);
        if (normalized.Length == 0) return;
        var spans = new List<TokenSpan>();
        if (_normalization.SplitBeforeSpaces)
        {
            int word = 0;
            for (int i = 1; i <= normalized.Length; i++)
                if (i == normalized.Length || normalized[i] == Meta)
                {
                    _model.Encode(normalized, word, i, ids, spans);
                    word = i;
                }
        }
        else _model.Encode(normalized, 0, normalized.Length, ids, spans);
        foreach (var span in spans) offsets.Add(new TokenSpan(from[span.Start], to[span.End - 1]));
    }

    /// <summary>SentencePiece's identity normalizer on <c>text[start..end)</c>: optional trimming and collapsing of
    /// spaces, the dummy prefix, spaces escaped as "▁". For each normalized character, the span of the input it
    /// came from (the dummy prefix comes from nothing: an empty span).</summary>
    (string Normalized, int[] From, int[] To) Normalize(string text, int start, int end, bool dummyPrefix)
    {
        bool removeExtraWhitespaces = _normalization.RemoveExtraWhitespaces;
        if (removeExtraWhitespaces)
        {
            while (start < end && text[start] == ' ') start++;
            while (end > start && text[end - 1] == ' ') end--;
        }
        if (start == end) return ("", [], []);
        if (_normalization.NoPrefixBeforeSpace && text[start] is ' ' or Meta) dummyPrefix = false;
        char space = _normalization.EscapeWhitespaces ? Meta : ' ';
        var chars = new StringBuilder(end - start + 1);
        var from = new List<int>(end - start + 1);
        var to = new List<int>(end - start + 1);
        if (dummyPrefix) { chars.Append(space); from.Add(start); to.Add(start); }
        for (int i = start; i < end; i++)
        {
            char c = text[i];
            if (c == ' ' && removeExtraWhitespaces && i > start && text[i - 1] == ' ') { to[^1] = i + 1; continue; }
            chars.Append(c == ' ' ? space : c);
            from.Add(i);
            to.Add(i + 1);
        }
        return (chars.ToString(), from.ToArray(), to.ToArray());
    }

    protected override string DecodeRun(IReadOnlyList<int> ids, bool atOutputStart)
    {
        var text = new StringBuilder();
        var bytes = new List<byte>();
        void FlushBytes()
        {
            if (bytes.Count == 0) return;
            text.Append(Encoding.UTF8.GetString(bytes.ToArray())); // invalid sequences become U+FFFD, as in SentencePiece
            bytes.Clear();
        }
        foreach (var id in ids)
        {
            var piece = _model.PieceOf(id)
                ?? throw new ArgumentOutOfRangeException(nameof(ids), $"Token id {id} is neither in the vocabulary (0..{_model.Count - 1}) nor an added token.");
            if (_model.ByteOf(id) is int b and >= 0) { bytes.Add((byte)b); continue; }
            FlushBytes();
            text.Append(_normalization.EscapeWhitespaces ? piece.Replace(Meta, ' ') : piece);
        }
        FlushBytes();
        // The dummy prefix comes back as a leading space, which Hugging Face strips at the start of the output only.
        if (atOutputStart && DummyPrefix != DummyPrefixPolicy.Never && text.Length > 0 && text[0] == ' ') text.Remove(0, 1);
        return text.ToString();
    }
}
