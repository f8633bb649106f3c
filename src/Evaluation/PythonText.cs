namespace AlignThenUnlearn.Evaluation;

/// <summary>Python's <c>str.split()</c> and <c>str.strip()</c>, which RWKU's scoring and answer clean-up use.
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
}
