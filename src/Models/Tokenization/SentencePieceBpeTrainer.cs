namespace AlignThenUnlearn.Models;

/// <summary>Learns a SentencePiece BPE vocabulary from texts, for models that this project trains from scratch.
///
/// The texts are normalized as <see cref="SentencePieceLlmTokenizer"/> will normalize them (a dummy "▁" in front,
/// spaces as "▁") and cut into words: an optional "▁" followed by a run of letters, of digits, or of other
/// visible characters (SentencePiece's script split, so no piece mixes a word with its punctuation). Control
/// characters such as the newline are left to byte fallback, as in Llama-2 / Phi-3. Every character that occurs
/// becomes a piece; then, as in BPE training, the most frequent adjacent pair of symbols (ties: the ordinally
/// smallest pair) is merged into a new piece, again and again, until every word is one piece or the vocabulary is
/// full. The n-th merge gets score -n, so the encoder (which merges the highest-scoring piece first) replays the
/// merges in the order they were learnt. The result is deterministic: no step depends on hash order.</summary>
public static class SentencePieceBpeTrainer
{
    const char Meta = '▁';

    /// <summary>The pieces of a Llama-layout model (<see cref="SentencePieceModel.LlamaLayout"/> puts them after the
    /// special and byte pieces): merges first, best first, then the single characters.</summary>
    /// <param name="maxPieces">The most pieces to learn (characters and merges together).</param>
    public static IReadOnlyList<(string Piece, float Score)> Train(IEnumerable<string> texts, int maxPieces)
    {
        ArgumentNullException.ThrowIfNull(texts);
        var wordCounts = new SortedDictionary<string, long>(StringComparer.Ordinal);
        foreach (var text in texts)
            foreach (var word in Words(text))
                wordCounts[word] = wordCounts.GetValueOrDefault(word) + 1;

        var characters = new SortedSet<string>(StringComparer.Ordinal);
        var words = new List<(List<string> Symbols, long Count)>();
        foreach (var (word, count) in wordCounts)
        {
            var symbols = TextElements(word);
            characters.UnionWith(symbols);
            words.Add((symbols, count));
        }
        if (characters.Count > maxPieces)
            throw new ArgumentException($"The texts hold {characters.Count} distinct characters, more than the {maxPieces} pieces allowed.", nameof(maxPieces));

        var merges = new List<string>();
        var known = new HashSet<string>(characters, StringComparer.Ordinal);
        while (characters.Count + merges.Count < maxPieces)
        {
            var best = MostFrequentPair(words);
            if (best is not var (left, right)) break;
            var merged = left + right;
            // Two different pairs can spell the same piece; it is a piece once, at its first (best) score.
            if (known.Add(merged)) merges.Add(merged);
            foreach (var (symbols, _) in words) MergeAll(symbols, left, right, merged);
        }

        var pieces = new List<(string, float)>(merges.Count + characters.Count);
        for (int i = 0; i < merges.Count; i++) pieces.Add((merges[i], -i));
        int rank = merges.Count;
        foreach (var character in characters) pieces.Add((character, -rank++));
        return pieces;
    }

    /// <summary>The words of a text as the trainer counts them (normalized, with their "▁").</summary>
    public static IEnumerable<string> Words(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (text.Length == 0) yield break;
        var normalized = Meta + text.Replace(' ', Meta);
        int i = 0;
        while (i < normalized.Length)
        {
            int start = i;
            if (normalized[i] == Meta) i++;
            if (i < normalized.Length && ClassOf(normalized[i]) is var kind and not CharClass.Meta and not CharClass.Control)
                while (i < normalized.Length && ClassOf(normalized[i]) == kind) i++;
            if (i > start) yield return normalized[start..i];
            else i++; // a control character: byte fallback, never part of a piece
        }
    }

    enum CharClass { Meta, Control, Letter, Digit, Other }

    static CharClass ClassOf(char c) =>
        c == Meta ? CharClass.Meta
        : char.IsControl(c) || char.IsWhiteSpace(c) ? CharClass.Control
        : char.IsLetter(c) || char.IsSurrogate(c) || char.GetUnicodeCategory(c) is System.Globalization.UnicodeCategory.NonSpacingMark ? CharClass.Letter
        : char.IsDigit(c) ? CharClass.Digit
        : CharClass.Other;

    /// <summary>A word as single characters (a surrogate pair stays one symbol).</summary>
    static List<string> TextElements(string word)
    {
        var symbols = new List<string>(word.Length);
        for (int i = 0; i < word.Length; i++)
            symbols.Add(char.IsHighSurrogate(word[i]) && i + 1 < word.Length ? word.Substring(i++, 2) : word[i].ToString());
        return symbols;
    }

    static (string Left, string Right)? MostFrequentPair(List<(List<string> Symbols, long Count)> words)
    {
        var counts = new Dictionary<(string, string), long>();
        foreach (var (symbols, count) in words)
            for (int i = 0; i + 1 < symbols.Count; i++)
            {
                var pair = (symbols[i], symbols[i + 1]);
                counts[pair] = counts.GetValueOrDefault(pair) + count;
            }
        (string, string)? best = null;
        long bestCount = 0;
        foreach (var (pair, count) in counts)
            if (count > bestCount || (count == bestCount && best is { } b && Compare(pair, b) < 0))
                (best, bestCount) = (pair, count);
        return best;
    }

    static int Compare((string Left, string Right) a, (string Left, string Right) b)
    {
        int left = string.CompareOrdinal(a.Left, b.Left);
        return left != 0 ? left : string.CompareOrdinal(a.Right, b.Right);
    }

    static void MergeAll(List<string> symbols, string left, string right, string merged)
    {
        for (int i = 0; i + 1 < symbols.Count; i++)
            if (symbols[i] == left && symbols[i + 1] == right)
            {
                symbols[i] = merged;
                symbols.RemoveAt(i + 1);
            }
    }
}
