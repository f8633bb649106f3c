namespace AlignThenUnlearn.Evaluation;

/// <summary>Python's <c>str.split()</c>, <c>str.strip()</c> and string lengths, which RWKU's scoring and answer clean-up use.
/// Python's whitespace is .NET's <see cref="char.IsWhiteSpace(char)"/> plus the four ASCII separators
/// U+001C..U+001F (file, group, record and unit separator), which .NET does not count.</summary>
public static class PythonText
{
    public static bool IsSpace(char c) => char.IsWhiteSpace(c) || c is >= '\u001C' and <= '\u001F';

    /// <summary><c>text.split()</c>: the runs of non-whitespace characters, so no piece is empty.</summary>
    public static string[] SplitOnWhitespace(string text)
    {
        var pieces = new List<string>();
        int start = -1;
        for (int i = 0; i <= text.Length; i++)
        {
            bool space = i == text.Length || IsSpace(text[i]);
            if (space && start >= 0)
            {
                pieces.Add(text[start..i]);
                start = -1;
            }
            else if (!space && start < 0) start = i;
        }
        return [.. pieces];
    }

    /// <summary><c>text.strip()</c>: removes leading and trailing whitespace.</summary>
    public static string Strip(string text)
    {
        int start = 0, end = text.Length;
        while (start < end && IsSpace(text[start])) start++;
        while (end > start && IsSpace(text[end - 1])) end--;
        return text[start..end];
    }

    /// <summary><c>len(text)</c>: Python counts code points, not UTF-16 units.</summary>
    public static int CodePointCount(string text)
    {
        int count = 0;
        foreach (var _ in text.EnumerateRunes()) count++;
        return count;
    }

    /// <summary><c>text[count:]</c> in code points (empty when the text is shorter).</summary>
    public static string DropCodePoints(string text, int count)
    {
        int index = 0;
        foreach (var rune in text.EnumerateRunes())
        {
            if (count == 0) break;
            index += rune.Utf16SequenceLength;
            count--;
        }
        return count > 0 ? "" : text[index..];
    }

    /// <summary><c>text.lower()</c>: Unicode's full lower-case mapping, which .NET's <c>ToLowerInvariant</c> (the simple
    /// mapping) is not: <c>İ</c> (U+0130) becomes <c>i</c> + U+0307, and a capital sigma at the end of a word becomes the
    /// final sigma <c>ς</c> (CPython's <c>handle_capital_sigma</c>: a cased letter before it, none after it, skipping
    /// case-ignorable characters both ways).</summary>
    public static string Lower(string text)
    {
        var runes = text.EnumerateRunes().ToArray();
        var lower = new System.Text.StringBuilder(text.Length);
        for (int i = 0; i < runes.Length; i++)
        {
            if (runes[i].Value == 0x0130) lower.Append("i\u0307");
            else if (runes[i].Value == 0x03A3) lower.Append(IsFinalSigma(runes, i) ? 'ς' : 'σ');
            else lower.Append(System.Text.Rune.ToLowerInvariant(runes[i]).ToString());
        }
        return lower.ToString();
    }

    static bool IsFinalSigma(System.Text.Rune[] runes, int at)
    {
        int before = at - 1;
        while (before >= 0 && IsCaseIgnorable(runes[before])) before--;
        if (before < 0 || !IsCased(runes[before])) return false;
        int after = at + 1;
        while (after < runes.Length && IsCaseIgnorable(runes[after])) after++;
        return after == runes.Length || !IsCased(runes[after]);
    }

    /// <summary>Unicode's Cased: Lu, Ll, Lt, or a character with a case mapping (the Other_Lowercase/Other_Uppercase
    /// letters such as Ⅷ and ⓐ).</summary>
    static bool IsCased(System.Text.Rune rune) =>
        System.Text.Rune.GetUnicodeCategory(rune) is System.Globalization.UnicodeCategory.UppercaseLetter
            or System.Globalization.UnicodeCategory.LowercaseLetter or System.Globalization.UnicodeCategory.TitlecaseLetter
        || System.Text.Rune.ToLowerInvariant(rune) != rune || System.Text.Rune.ToUpperInvariant(rune) != rune;

    /// <summary>Unicode's Case_Ignorable: Mn, Me, Cf, Lm, Sk, and the word-break MidLetter, MidNumLet and Single_Quote
    /// characters.</summary>
    static bool IsCaseIgnorable(System.Text.Rune rune) =>
        System.Text.Rune.GetUnicodeCategory(rune) is System.Globalization.UnicodeCategory.NonSpacingMark
            or System.Globalization.UnicodeCategory.EnclosingMark or System.Globalization.UnicodeCategory.Format
            or System.Globalization.UnicodeCategory.ModifierLetter or System.Globalization.UnicodeCategory.ModifierSymbol
        || rune.Value is '\'' or '.' or ':' or 0x00B7 or 0x0387 or 0x055F or 0x05F4 or 0x2018 or 0x2019 or 0x2024
            or 0x2027 or 0xFE13 or 0xFE52 or 0xFE55 or 0xFF07 or 0xFF0E or 0xFF1A;
}
