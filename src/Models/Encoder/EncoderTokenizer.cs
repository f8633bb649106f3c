using System.Globalization;
using System.Text;

namespace AlignThenUnlearn.Models;

/// <summary>The encoder's WordPiece tokenizer over <c>vocab.txt</c>, as Hugging Face's fast BERT tokenizer (which
/// sentence-transformers runs) does it: BertNormalizer (drop control characters, whitespace to spaces, CJK ideographs
/// apart, strip accents, lower-case), BertPreTokenizer (split at whitespace, isolate punctuation), then WordPiece
/// (greedy longest match with <c>##</c> continuations; a word that cannot be split, or is longer than 100
/// characters, becomes the unknown token). Every piece keeps the [start, end) span of the ORIGINAL text it came from
/// (UTF-16 positions), so the spans line up with the LLM tokenizer's.
/// Microsoft.ML.Tokenizers' BertTokenizer (2.0.1) is not used: its offsets index the normalized text (CJK padding and
/// removed characters shift them), it deletes line breaks and tabs instead of splitting there (so the words on either
/// side merge) and it deletes characters outside the Basic Multilingual Plane (emoji) instead of giving [UNK].</summary>
public sealed class EncoderTokenizer
{
    const int MaxCharsPerWord = 100;
    const string ContinuationPrefix = "##";
    // Pieces that may start a word, and continuations keyed without their ## (looked up by span, without copies).
    readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _wordStarts, _continuations;
    readonly EncoderSettings _settings;
    readonly int _unkId;

    public int ClsId { get; }
    public int SepId { get; }
    public int PadId { get; }

    EncoderTokenizer(Dictionary<string, int> vocab, EncoderSettings settings, string source)
    {
        _settings = settings;
        _wordStarts = vocab.GetAlternateLookup<ReadOnlySpan<char>>();
        _continuations = vocab.Where(p => p.Key.StartsWith(ContinuationPrefix, StringComparison.Ordinal))
            .ToDictionary(p => p.Key[ContinuationPrefix.Length..], p => p.Value, StringComparer.Ordinal).GetAlternateLookup<ReadOnlySpan<char>>();
        int Special(string token) => vocab.TryGetValue(token, out var id) ? id
            : throw new ModelFormatException($"'{source}' has no special token '{token}' (set the *_token entries of {EncoderFolder.SettingsFile})");
        (ClsId, SepId, PadId, _unkId) = (Special(settings.ClsToken), Special(settings.SepToken), Special(settings.PadToken), Special(settings.UnkToken));
    }

    public static EncoderTokenizer Load(string directory, EncoderSettings settings)
    {
        var path = Path.Combine(directory, EncoderFolder.VocabFile);
        if (!File.Exists(path)) throw new FileNotFoundException($"encoder vocabulary '{path}' does not exist", path);
        // The id of a piece is its line number; a repeated line keeps the later number (as Hugging Face's loader does).
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        int line = 0;
        foreach (var piece in File.ReadLines(path)) vocab[piece.TrimEnd()] = line++;
        return new EncoderTokenizer(vocab, settings, path);
    }

    /// <summary>Word pieces of <paramref name="text"/> without special tokens: ids and the [start, end) span of
    /// each in <paramref name="text"/> itself. Spans are in text order; an unknown word's single piece spans the word.</summary>
    public (int[] Ids, (int Start, int End)[] Spans) Pieces(string text)
    {
        var ids = new List<int>();
        var spans = new List<(int, int)>();
        foreach (var word in Words(Normalize(text)))
            WordPiece(word, ids, spans);
        return (ids.ToArray(), spans.ToArray());
    }

    /// <summary>[CLS] pieces [SEP], cut to <paramref name="maxLength"/> as sentence-transformers truncates.</summary>
    public int[] EncodeWithSpecialTokens(string text, int maxLength)
    {
        var ids = Pieces(text).Ids;
        if (ids.Length > maxLength - 2) ids = ids[..(maxLength - 2)];
        return [ClsId, .. ids, SepId];
    }

    /// <summary>A character of the normalized text and the span of the original text it stands for.</summary>
    readonly record struct Char(Rune Value, int Start, int End);

    /// <summary>BertNormalizer. A removed character (control, format, accent) joins the span of the character kept
    /// before it, as Hugging Face's alignments do; a character that normalizes to several (a decomposed Hangul
    /// syllable) gives all of them its own span.</summary>
    List<Char> Normalize(string text)
    {
        var output = new List<Char>(text.Length);
        void Remove(int end) { if (output.Count > 0) output[^1] = output[^1] with { End = end }; }
        for (int i = 0; i < text.Length;)
        {
            // A lone surrogate decodes to U+FFFD, which BERT removes like any replacement character.
            Rune.DecodeFromUtf16(text.AsSpan(i), out var rune, out int length);
            int start = i, end = i + length;
            i = end;
            if (rune.Value is 0 or 0xFFFD || IsControl(rune)) { Remove(end); continue; }
            if (IsWhitespace(rune)) { output.Add(new Char(new Rune(' '), start, end)); continue; }
            if (_settings.TokenizeChineseChars && IsChineseCharacter(rune))
            {
                output.Add(new Char(new Rune(' '), start, end));
                output.Add(new Char(rune, start, end));
                output.Add(new Char(new Rune(' '), start, end));
                continue;
            }
            int before = output.Count;
            foreach (var c in Transform(rune)) output.Add(new Char(c, start, end));
            if (output.Count == before) Remove(end);
        }
        return output;
    }

    /// <summary>Accent stripping (canonical decomposition without nonspacing marks), then lower-casing.</summary>
    IEnumerable<Rune> Transform(Rune rune)
    {
        IEnumerable<Rune> runes = [rune];
        if (_settings.StripsAccents && rune.Value >= 0x80)
            runes = rune.ToString().Normalize(NormalizationForm.FormD).EnumerateRunes()
                .Where(r => Rune.GetUnicodeCategory(r) != UnicodeCategory.NonSpacingMark).ToList();
        if (!_settings.LowerCase) return runes;
        // Rust's char::to_lowercase maps U+0130 to two characters; .NET's simple mapping gives one.
        return runes.SelectMany(r => r.Value == 0x130 ? [new Rune('i'), new Rune(0x307)] : new[] { Rune.ToLowerInvariant(r) });
    }

    /// <summary>BertPreTokenizer: whitespace ends a word; each punctuation character is a word of its own.</summary>
    static IEnumerable<Char[]> Words(List<Char> chars)
    {
        var word = new List<Char>();
        foreach (var c in chars)
        {
            bool punctuation = IsPunctuation(c.Value);
            if (Rune.IsWhiteSpace(c.Value) || punctuation)
            {
                if (word.Count > 0) { yield return word.ToArray(); word.Clear(); }
                if (punctuation) yield return [c];
            }
            else word.Add(c);
        }
        if (word.Count > 0) yield return word.ToArray();
    }

    /// <summary>Greedy longest-match-first pieces of one word; the whole word is the unknown token if any part fails.</summary>
    void WordPiece(Char[] word, List<int> ids, List<(int, int)> spans)
    {
        var wordSpan = (word[0].Start, word[^1].End);
        if (word.Length > MaxCharsPerWord) { ids.Add(_unkId); spans.Add(wordSpan); return; }
        var text = string.Concat(word.Select(c => c.Value.ToString()));
        var offsets = new int[word.Length + 1];   // UTF-16 position of each character in text
        for (int k = 0; k < word.Length; k++) offsets[k + 1] = offsets[k] + word[k].Value.Utf16SequenceLength;
        var found = new List<(int Id, int Start, int End)>();
        for (int start = 0; start < word.Length;)
        {
            var lookup = start == 0 ? _wordStarts : _continuations;
            int end = word.Length, id = -1;
            while (end > start && !lookup.TryGetValue(text.AsSpan(offsets[start], offsets[end] - offsets[start]), out id)) end--;
            if (end == start) { ids.Add(_unkId); spans.Add(wordSpan); return; }
            found.Add((id, word[start].Start, word[end - 1].End));
            start = end;
        }
        foreach (var (id, start, end) in found) { ids.Add(id); spans.Add((start, end)); }
    }

    /// <summary>Hugging Face's BertNormalizer: tab, line feed and carriage return are whitespace, not controls.</summary>
    static bool IsWhitespace(Rune r) => r.Value is '\t' or '\n' or '\r' || Rune.IsWhiteSpace(r);

    /// <summary>Unicode "other" (Cc, Cf, Cs, Co, Cn) except tab, line feed and carriage return.</summary>
    static bool IsControl(Rune r) => r.Value is not ('\t' or '\n' or '\r') && Rune.GetUnicodeCategory(r) is
        UnicodeCategory.Control or UnicodeCategory.Format or UnicodeCategory.Surrogate or UnicodeCategory.PrivateUse or UnicodeCategory.OtherNotAssigned;

    /// <summary>ASCII punctuation (which includes symbols such as $ + &lt; = &gt; ^ ` | ~) or any Unicode P* category.</summary>
    static bool IsPunctuation(Rune r) =>
        r.Value is >= 33 and <= 47 or >= 58 and <= 64 or >= 91 and <= 96 or >= 123 and <= 126
        || Rune.GetUnicodeCategory(r) is UnicodeCategory.ConnectorPunctuation or UnicodeCategory.DashPunctuation or UnicodeCategory.OpenPunctuation
            or UnicodeCategory.ClosePunctuation or UnicodeCategory.InitialQuotePunctuation or UnicodeCategory.FinalQuotePunctuation or UnicodeCategory.OtherPunctuation;

    /// <summary>The CJK Unified Ideographs blocks of Hugging Face's BertNormalizer (not Hiragana, Katakana or Hangul).</summary>
    static bool IsChineseCharacter(Rune r) => r.Value is >= 0x4E00 and <= 0x9FFF or >= 0x3400 and <= 0x4DBF or >= 0x20000 and <= 0x2A6DF
        or >= 0x2A700 and <= 0x2B73F or >= 0x2B740 and <= 0x2B81F or >= 0x2B920 and <= 0x2CEAF or >= 0xF900 and <= 0xFAFF or >= 0x2F800 and <= 0x2FA1F;
}
