using System.Text;
using System.Text.RegularExpressions;

namespace AlignThenUnlearn.Evaluation;

/// <summary>Exact match and token F1 after SQuAD's answer normalisation, as RWKU's <c>eval_triviaqa.py</c> and
/// <c>eval_bbh.py</c> compute them (their <c>Metric</c>, <c>EM</c> and <c>F1</c> classes): lower-case (Python's
/// <c>str.lower</c>, <see cref="PythonText.Lower"/>), drop ASCII
/// punctuation (Python's <c>string.punctuation</c>), replace the words a/an/the by a space (between Python's <c>\b</c>
/// boundaries, <see cref="PythonRegex"/>), collapse whitespace. A
/// prediction's score is the maximum over its references.</summary>
public static class SquadScores
{
    /// <summary>Python's <c>string.punctuation</c>.</summary>
    const string Punctuation = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

    static readonly Regex Articles = new($"{PythonRegex.Boundary}(a|an|the){PythonRegex.Boundary}");

    public static string Normalize(string text)
    {
        var kept = new StringBuilder(text.Length);
        foreach (var c in PythonText.Lower(text))
            if (!Punctuation.Contains(c)) kept.Append(c);
        return string.Join(' ', PythonText.SplitOnWhitespace(Articles.Replace(kept.ToString(), " ")));
    }

    /// <summary>The normalised words; none for the empty string.</summary>
    public static string[] Tokens(string text) => text.Length == 0 ? [] : PythonText.SplitOnWhitespace(Normalize(text));

    public static double ExactMatch(string prediction, string reference) =>
        Tokens(prediction).SequenceEqual(Tokens(reference)) ? 1 : 0;

    /// <summary>Token F1 over the multiset of normalised words; when either side has no words, 1 if both have none.</summary>
    public static double F1(string prediction, string reference)
    {
        var predicted = Tokens(prediction);
        var expected = Tokens(reference);
        if (predicted.Length == 0 || expected.Length == 0) return predicted.Length == expected.Length ? 1 : 0;
        var counts = expected.GroupBy(t => t, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.Count(), StringComparer.Ordinal);
        int common = 0;
        foreach (var token in predicted)
            if (counts.TryGetValue(token, out var left) && left > 0)
            {
                counts[token] = left - 1;
                common++;
            }
        if (common == 0) return 0;
        double precision = (double)common / predicted.Length, recall = (double)common / expected.Length;
        return 2 * precision * recall / (precision + recall);
    }

    public static double BestExactMatch(string prediction, IReadOnlyList<string> references) => Best(prediction, references, ExactMatch);

    public static double BestF1(string prediction, IReadOnlyList<string> references) => Best(prediction, references, F1);

    static double Best(string prediction, IReadOnlyList<string> references, Func<string, string, double> score)
    {
        // Python's max() of an empty list raises; a row without references is refused when the data is read.
        if (references.Count == 0) throw new ArgumentException("no reference answers", nameof(references));
        return references.Max(r => score(prediction, r));
    }

    /// <summary>The references RWKU's metrics iterate over for an answer field: a list as given; a plain string, as
    /// Python iterates a string, is its characters (code points), so ("(A)") is matched against "(", "A" and ")".</summary>
    public static IReadOnlyList<string> ReferencesOfString(string answer) => [.. answer.EnumerateRunes().Select(r => r.ToString())];
}
