namespace AlignThenUnlearn.Models;

/// <summary>A token that Hugging Face matches in the raw text before the model tokenizes the rest: an entry of
/// <c>tokenizer.json</c> "added_tokens" or <c>tokenizer_config.json</c> "added_tokens_decoder" (<c>&lt;|user|&gt;</c>,
/// <c>&lt;|end|&gt;</c>, <c>&lt;s&gt;</c>, ...). <see cref="RStrip"/> / <see cref="LStrip"/>: whitespace right / left of the
/// token is swallowed by it (Phi-3's <c>&lt;|user|&gt;</c>, <c>&lt;|assistant|&gt;</c> and <c>&lt;|end|&gt;</c> swallow the
/// newline that follows them in the chat prompt).</summary>
public sealed record AddedToken(int Id, string Content, bool Special = true, bool LStrip = false, bool RStrip = false);

/// <summary>A piece of a text: either plain text <c>[Start, End)</c> for the model, or an added token whose span
/// includes the whitespace it swallowed.</summary>
public readonly record struct TextSegment(int Start, int End, AddedToken? Token);

/// <summary>Splits text at added tokens the way Hugging Face's added vocabulary does: the leftmost match wins, and
/// of the tokens matching there the longest; lstrip/rstrip extend the match over adjacent whitespace
/// (<see cref="char.IsWhiteSpace(char)"/>, Rust's <c>char::is_whitespace</c>).</summary>
public sealed class AddedTokenMatcher
{
    readonly Dictionary<char, AddedToken[]> _byFirstChar;

    public AddedTokenMatcher(IEnumerable<AddedToken> tokens)
    {
        _byFirstChar = tokens
            .Where(t => t.Content.Length > 0)
            .GroupBy(t => t.Content[0])
            .ToDictionary(g => g.Key, g => g.OrderByDescending(t => t.Content.Length).ToArray());
    }

    public IEnumerable<TextSegment> Split(string text)
    {
        int plainStart = 0, i = 0;
        while (i < text.Length)
        {
            var token = LongestMatchAt(text, i, text.Length);
            if (token is null) { i++; continue; }
            int start = i, end = i + token.Content.Length;
            if (token.LStrip) while (start > plainStart && char.IsWhiteSpace(text[start - 1])) start--;
            if (token.RStrip) while (end < text.Length && char.IsWhiteSpace(text[end])) end++;
            if (start > plainStart) yield return new TextSegment(plainStart, start, null);
            yield return new TextSegment(start, end, token);
            plainStart = i = end;
        }
        if (plainStart < text.Length) yield return new TextSegment(plainStart, text.Length, null);
    }

    /// <summary>The longest token that starts at <paramref name="position"/> and ends by <paramref name="end"/>.</summary>
    public AddedToken? LongestMatchAt(string text, int position, int end)
    {
        if (!_byFirstChar.TryGetValue(text[position], out var candidates)) return null;
        foreach (var candidate in candidates)
            if (position + candidate.Content.Length <= end
                && string.CompareOrdinal(text, position, candidate.Content, 0, candidate.Content.Length) == 0)
                return candidate;
        return null;
    }
}
