using System.Text;
using Microsoft.ML.Tokenizers;

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

/// <summary>A SentencePiece BPE <c>tokenizer.model</c> (Llama-2, Mistral, Phi-3) with byte fallback, run by
/// Microsoft.ML.Tokenizers' <see cref="LlamaTokenizer"/>. This class does the normalization itself (whitespace
/// escaping and the dummy prefix, per <see cref="DummyPrefixPolicy"/>) so that every token's span in the input is
/// known; the library does the BPE merges and the byte fallback on the normalized text.</summary>
public sealed class SentencePieceLlmTokenizer : LlmTokenizer
{
    const char Meta = '▁'; // U+2581, SentencePiece's escaped space
    readonly LlamaTokenizer _model;
    readonly string?[] _pieces;     // by id (null: an id the model does not use)
    readonly int[] _byteOfPiece;    // by id: the byte of a <0xXX> piece, else -1
    readonly IReadOnlyDictionary<string, int> _vocabulary;
    readonly bool _removeExtraWhitespaces;

    public SentencePieceLlmTokenizer(LlamaTokenizer model, TokenizerSpecials specials, DummyPrefixPolicy dummyPrefix)
        : base(specials)
    {
        if (model.TreatWhitespaceAsSuffix)
            throw new NotSupportedException("SentencePiece models with treat_whitespace_as_suffix are not supported (no Llama-family model uses it).");
        _model = model;
        DummyPrefix = model.AddDummyPrefix ? dummyPrefix : DummyPrefixPolicy.Never;
        _removeExtraWhitespaces = model.Normalizer is SentencePieceNormalizer { RemoveExtraWhiteSpaces: true };
        _vocabulary = model.Vocabulary;
        _pieces = new string?[_vocabulary.Values.Max() + 1];
        _byteOfPiece = new int[_pieces.Length];
        foreach (var (piece, id) in _vocabulary)
        {
            _pieces[id] = piece;
            _byteOfPiece[id] = model.ByteFallback && IsBytePiece(piece) ? Convert.ToInt32(piece[3..5], 16) : -1;
        }
    }

    public DummyPrefixPolicy DummyPrefix { get; }
    public LlamaTokenizer Model => _model;
    protected override int ModelVocabularySize => _pieces.Length;

    protected override bool TryGetModelId(string piece, out int id) => _vocabulary.TryGetValue(piece, out id);

    protected override void EncodePlainText(string text, int start, int end, List<int> ids, List<TokenSpan> offsets)
    {
        bool prefix = DummyPrefix == DummyPrefixPolicy.EverySegment || (DummyPrefix == DummyPrefixPolicy.TextStartOnly && start == 0);
        var (normalized, from, to) = Normalize(text, start, end, prefix);
        if (normalized.Length == 0) return;
        var tokens = _model.EncodeToTokens(normalized, out _, addBeginningOfSentence: false, addEndOfSentence: false,
            considerPreTokenization: false, considerNormalization: false);
        var previous = new TokenSpan(start, start);
        bool previousIsByte = false;
        foreach (var token in tokens)
        {
            var (s, length) = token.Offset.GetOffsetAndLength(normalized.Length);
            var span = length > 0 ? new TokenSpan(from[s], to[s + length - 1])
                : s < normalized.Length ? new TokenSpan(from[s], from[s]) : new TokenSpan(end, end);
            bool isByte = _byteOfPiece[token.Id] >= 0;
            // The library gives the later bytes of a multi-byte character an empty span; they stand for the same
            // character as its first byte (Hugging Face gives all of them the character's span too).
            if (isByte && length == 0 && previousIsByte) span = previous;
            ids.Add(token.Id);
            offsets.Add(span);
            previous = span;
            previousIsByte = isByte;
        }
    }

    /// <summary>SentencePiece's identity normalizer on <c>text[start..end)</c>: optional trimming and collapsing of
    /// spaces, the dummy prefix, spaces escaped as "▁". For each normalized character, the span of the input it
    /// came from (the dummy prefix comes from nothing: an empty span).</summary>
    (string Normalized, int[] From, int[] To) Normalize(string text, int start, int end, bool dummyPrefix)
    {
        if (_removeExtraWhitespaces)
        {
            while (start < end && text[start] == ' ') start++;
            while (end > start && text[end - 1] == ' ') end--;
        }
        if (start == end) return ("", [], []);
        char space = _model.EscapeWhiteSpaces ? Meta : ' ';
        var chars = new StringBuilder(end - start + 1);
        var from = new List<int>(end - start + 1);
        var to = new List<int>(end - start + 1);
        if (dummyPrefix) { chars.Append(space); from.Add(start); to.Add(start); }
        for (int i = start; i < end; i++)
        {
            char c = text[i];
            if (c == ' ' && _removeExtraWhitespaces && i > start && text[i - 1] == ' ') { to[^1] = i + 1; continue; }
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
            var piece = (uint)id < (uint)_pieces.Length ? _pieces[id] : null;
            if (piece is null)
                throw new ArgumentOutOfRangeException(nameof(ids), $"Token id {id} is neither in the vocabulary (0..{_pieces.Length - 1}) nor an added token.");
            if (_byteOfPiece[id] >= 0) { bytes.Add((byte)_byteOfPiece[id]); continue; }
            FlushBytes();
            text.Append(_model.EscapeWhiteSpaces ? piece.Replace(Meta, ' ') : piece);
        }
        FlushBytes();
        // The dummy prefix comes back as a leading space, which Hugging Face strips at the start of the output only.
        if (atOutputStart && DummyPrefix != DummyPrefixPolicy.Never && text.Length > 0 && text[0] == ' ') text.Remove(0, 1);
        return text.ToString();
    }

    static bool IsBytePiece(string piece) =>
        piece.Length == 6 && piece.StartsWith("<0x", StringComparison.Ordinal) && piece[5] == '>'
        && Uri.IsHexDigit(piece[3]) && Uri.IsHexDigit(piece[4]);
}
