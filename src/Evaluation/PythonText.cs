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
}
