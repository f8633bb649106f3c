using System.Globalization;

namespace AlignThenUnlearn.Evaluation;

/// <summary>Target numbers as a user writes them: one number (<c>7</c>), a list (<c>1,5,9</c>), a range
/// (<c>1-100</c>) or a list of both (<c>1-10,15</c>). Numbers keep the order given; repeats are dropped.</summary>
public static class RwkuTargetSelection
{
    public static IReadOnlyList<int> Parse(string spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var numbers = new List<int>();
        var seen = new HashSet<int>();
        foreach (var rawPart in spec.Split(','))
        {
            var part = rawPart.Trim();
            if (part.Length == 0) throw Invalid(spec, "an empty item");
            var dash = part.IndexOf('-');
            int first, last;
            if (dash < 0) first = last = Number(spec, part);
            else
            {
                first = Number(spec, part[..dash].Trim());
                last = Number(spec, part[(dash + 1)..].Trim());
                if (last < first) throw Invalid(spec, $"the range {part} runs backwards");
            }
            for (int n = first; n <= last; n++)
                if (seen.Add(n)) numbers.Add(n);
        }
        return numbers;
    }

    static int Number(string spec, string text) =>
        int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0
            ? n
            : throw Invalid(spec, $"'{text}' is not a target number (1, 2, ...)");

    static FormatException Invalid(string spec, string problem) =>
        new($"Target selection '{spec}': {problem}. Write a number (7), a list (1,5,9) or a range (1-100).");
}
