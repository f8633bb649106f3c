namespace AlignThenUnlearn.Models;

/// <summary>A half-open range <c>[Start, End)</c> of UTF-16 positions in a text.</summary>
public readonly record struct TokenSpan(int Start, int End)
{
    public int Length => End - Start;
    public override string ToString() => $"[{Start},{End})";
}

/// <summary>The result of encoding a text: one id per token and, for each, the characters of <see cref="Text"/>
/// it stands for. Offsets index <see cref="Text"/>, which is the input itself unless the tokenizer normalizes
/// (Qwen2's NFC), in which case it is the normalized input. Tokens that stand for no characters (an added BOS)
/// have an empty span; whitespace that an added token swallows (its <c>rstrip</c>/<c>lstrip</c>) belongs to that
/// token's span; every byte of a byte-fallback character spans the whole character.</summary>
public sealed record TokenizedText(string Text, IReadOnlyList<int> Ids, IReadOnlyList<TokenSpan> Offsets)
{
    public int Count => Ids.Count;
}
