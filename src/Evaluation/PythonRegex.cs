using System.Globalization;
using System.Text;

namespace AlignThenUnlearn.Evaluation;

/// <summary>Python's <c>re</c> character classes for <c>str</c> patterns, spelled out for .NET's regex engine, which
/// defines them otherwise: Python's <c>\w</c> is <c>_</c> and every character for which <c>str.isalnum()</c> holds
/// (letters, and every character with a numeric value: <c>²</c>, <c>½</c>, <c>Ⅷ</c>), not combining marks, and letters
/// outside the BMP count (.NET matches UTF-16 units, so those appear here as surrogate pairs); <c>\s</c> adds
/// U+001C..U+001F; <c>\d</c> is every decimal digit (category Nd), outside the BMP too; <c>\b</c> is the boundary of
/// Python's <c>\w</c>. Each is a .NET pattern to splice into a ported rule.</summary>
public static class PythonRegex
{
    /// <summary>One character of Python's <c>\w</c>.</summary>
    public static readonly string Word = ClassOf(IsWord);
    /// <summary>One character of Python's <c>\d</c>.</summary>
    public static readonly string Digit = ClassOf(rune => Rune.GetUnicodeCategory(rune) == UnicodeCategory.DecimalDigitNumber);
    /// <summary>One character of Python's <c>\s</c> (<see cref="PythonText.IsSpace"/>).</summary>
    public const string Space = @"[\s\x1C-\x1F]";
    /// <summary>Python's <c>\S</c>.</summary>
    public const string NotSpace = @"[^\s\x1C-\x1F]";
    /// <summary>Python's <c>\b</c>: between a <see cref="Word"/> character and a non-word character or an end.</summary>
    public static readonly string Boundary = $"(?:(?<={Word})(?!{Word})|(?<!{Word})(?={Word}))";

    /// <summary><c>c == '_' or c.isalnum()</c>: a letter (L*), or a character with a numeric value (Nd, No, Nl).</summary>
    static bool IsWord(Rune rune) => rune.Value == '_' || Rune.IsLetter(rune) || Rune.GetNumericValue(rune) != -1;

    /// <summary>A .NET pattern for one code point with <paramref name="holds"/>: a class of BMP ranges, or a surrogate
    /// pair (high surrogates with the same low-surrogate class share one alternative).</summary>
    static string ClassOf(Func<Rune, bool> holds)
    {
        var bmp = Ranges(0, 0xFFFF, c => !char.IsSurrogate((char)c) && holds(new Rune(c)));
        var byLows = new List<(int FirstHigh, int LastHigh, string Lows)>();
        for (int high = 0xD800; high <= 0xDBFF; high++)
        {
            int baseCode = 0x10000 + ((high - 0xD800) << 10);
            var lows = Ranges(0xDC00, 0xDFFF, low => holds(new Rune(baseCode + (low - 0xDC00))));
            if (lows.Length == 0) continue;
            if (byLows.Count > 0 && byLows[^1].LastHigh == high - 1 && byLows[^1].Lows == lows) byLows[^1] = byLows[^1] with { LastHigh = high };
            else byLows.Add((high, high, lows));
        }
        var pattern = new StringBuilder("(?:[").Append(bmp).Append(']');
        foreach (var (first, last, lows) in byLows)
            pattern.Append("|[").Append(Range(first, last)).Append("][").Append(lows).Append(']');
        return pattern.Append(')').ToString();
    }

    /// <summary>The members of [first, last] as class ranges (<c>\uXXXX-\uYYYY</c>...).</summary>
    static string Ranges(int first, int last, Func<int, bool> member)
    {
        var ranges = new StringBuilder();
        for (int c = first; c <= last; c++)
        {
            if (!member(c)) continue;
            int end = c;
            while (end < last && member(end + 1)) end++;
            ranges.Append(Range(c, end));
            c = end;
        }
        return ranges.ToString();
    }

    static string Range(int first, int last) => first == last ? Escape(first) : $"{Escape(first)}-{Escape(last)}";

    static string Escape(int c) => $"\\u{c:X4}";
}
