using System.Text;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace AlignThenUnlearn.Models;

/// <summary>A byte-level BPE <c>tokenizer.json</c> (Llama-3, Qwen2), run by Microsoft.ML.Tokenizers'
/// <see cref="BpeTokenizer"/> with <c>ByteLevel</c> on. This class does the pre-tokenization itself (the
/// snapshot's Split regexes with Hugging Face's "Isolated" behaviour: matches and the text between them are pieces;
/// the library's regex pre-tokenizer drops the text between matches) and <c>ignore_merges</c> (Llama-3: a piece
/// that is itself in the vocabulary is one token, as in tiktoken); the library merges each piece.</summary>
public sealed class ByteLevelBpeLlmTokenizer : LlmTokenizer
{
    readonly BpeTokenizer _model;
    readonly IReadOnlyList<Regex> _splits;
    readonly IReadOnlyDictionary<string, int> _vocabulary;
    readonly HashSet<int> _ids;

    public ByteLevelBpeLlmTokenizer(BpeTokenizer model, IReadOnlyList<Regex> splits, bool ignoreMerges, bool nfc, TokenizerSpecials specials)
        : base(specials)
    {
        if (!model.ByteLevel) throw new ArgumentException("The BPE model must be byte-level.", nameof(model));
        _model = model;
        _splits = splits;
        IgnoreMerges = ignoreMerges;
        Nfc = nfc;
        _vocabulary = model.Vocabulary;
        _ids = [.. _vocabulary.Values];
        ModelVocabularySize = _ids.Max() + 1;
    }

    public bool IgnoreMerges { get; }
    /// <summary>Whether the checkpoint NFC-normalizes its input (Qwen2).</summary>
    public bool Nfc { get; }
    public BpeTokenizer Model => _model;
    protected override int ModelVocabularySize { get; }

    protected override bool TryGetModelId(string piece, out int id) => _vocabulary.TryGetValue(piece, out id);

    protected override string NormalizeInput(string text) =>
        Nfc && !text.IsNormalized(NormalizationForm.FormC) ? text.Normalize(NormalizationForm.FormC) : text;

    protected override void EncodePlainText(string text, int start, int end, List<int> ids, List<TokenSpan> offsets)
    {
        foreach (var (pieceStart, pieceEnd) in PreTokenize(text, start, end))
        {
            var piece = text[pieceStart..pieceEnd];
            if (IgnoreMerges && _vocabulary.TryGetValue(ByteLevelAlphabet.Encode(piece), out var whole))
            {
                ids.Add(whole);
                offsets.Add(new TokenSpan(pieceStart, pieceEnd));
                continue;
            }
            foreach (var token in _model.EncodeToTokens(piece, out _, considerPreTokenization: false, considerNormalization: false))
            {
                var (s, length) = token.Offset.GetOffsetAndLength(piece.Length);
                int tokenEnd = pieceStart + s + length;
                // The library ends a token inside a surrogate pair when it holds bytes of an astral character.
                if (tokenEnd < text.Length && char.IsLowSurrogate(text[tokenEnd]) && char.IsHighSurrogate(text[tokenEnd - 1])) tokenEnd++;
                ids.Add(token.Id);
                offsets.Add(new TokenSpan(pieceStart + s, tokenEnd));
            }
        }
    }

    /// <summary>Applies the Split regexes in turn; each splits every current piece into its matches and the text
    /// between them.</summary>
    IEnumerable<(int Start, int End)> PreTokenize(string text, int start, int end)
    {
        IEnumerable<(int Start, int End)> pieces = [(start, end)];
        foreach (var regex in _splits) pieces = pieces.SelectMany(p => Isolate(regex, text, p.Start, p.End)).ToList();
        return pieces;
    }

    static IEnumerable<(int Start, int End)> Isolate(Regex regex, string text, int start, int end)
    {
        int position = start;
        var segment = text[start..end];
        for (var match = regex.Match(segment); match.Success; match = match.NextMatch())
        {
            if (match.Length == 0) continue;
            int matchStart = start + match.Index;
            if (matchStart > position) yield return (position, matchStart);
            yield return (matchStart, matchStart + match.Length);
            position = matchStart + match.Length;
        }
        if (position < end) yield return (position, end);
    }

    protected override string DecodeRun(IReadOnlyList<int> ids, bool atOutputStart)
    {
        foreach (var id in ids)
            if (!_ids.Contains(id))
                throw new ArgumentOutOfRangeException(nameof(ids), $"Token id {id} is neither in the vocabulary nor an added token.");
        return _model.Decode(ids, considerSpecialTokens: false);
    }
}

/// <summary>GPT-2's byte-level alphabet, which byte-level BPE vocabularies are written in: printable bytes stand
/// for themselves, the others (control characters, space, ...) for the characters from U+0100 on, in byte
/// order (space is "Ġ", newline "Ċ").</summary>
public static class ByteLevelAlphabet
{
    static readonly char[] CharOfByte = BuildTable();

    static char[] BuildTable()
    {
        var table = new char[256];
        int next = 256;
        for (int b = 0; b < 256; b++)
        {
            bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            table[b] = printable ? (char)b : (char)next++;
        }
        return table;
    }

    public static char Of(byte value) => CharOfByte[value];

    /// <summary>The UTF-8 bytes of <paramref name="text"/> written in the alphabet.</summary>
    public static string Encode(string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        var chars = new char[bytes.Length];
        for (int i = 0; i < bytes.Length; i++) chars[i] = CharOfByte[bytes[i]];
        return new string(chars);
    }
}
