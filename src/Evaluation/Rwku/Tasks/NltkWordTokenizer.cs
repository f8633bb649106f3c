using System.Text.RegularExpressions;

namespace AlignThenUnlearn.Evaluation;

/// <summary>Words as NLTK 3.8.1's <c>word_tokenize</c> splits them (the version RWKU's requirements pin; what its fluency
/// score counts n-grams of): the text is split into sentences, then each sentence by the rules of 3.8.1's
/// <c>NLTKWordTokenizer</c> (the improved Penn Treebank tokenizer): quotes, punctuation, brackets, double dashes and
/// clitics become tokens of their own; a period is split off only at the end of a sentence ("3.88" and "U.S." stay
/// whole). Later NLTK versions changed three rules (the opening single quote, whitespace collapsed before the clitic
/// rules, en/em dashes split off); 3.8.1's are kept. <c>\w</c>, <c>\s</c>, <c>\d</c> and <c>\b</c> are Python's
/// (<see cref="PythonRegex"/>).
///
/// The sentence split stands in for NLTK's trained Punkt model: a sentence ends after '.', '?' or '!' (and any closing
/// quotes or brackets) followed by whitespace, except after a few common abbreviations (<see cref="Abbreviations"/>),
/// single-letter initials and ellipses; closing quotes and brackets that follow the break (<c>left. " He</c>) go with
/// the sentence before, as Punkt's boundary realignment moves them. Punkt decides the rarer cases from statistics
/// (e.g. an abbreviation that ends a sentence), which this does not reproduce.</summary>
public static partial class NltkWordTokenizer
{
    /// <summary>Abbreviations (lower case, without the final period) after which Punkt's English model does not end a sentence.</summary>
    public static readonly IReadOnlySet<string> Abbreviations = new HashSet<string>(StringComparer.Ordinal)
    {
        "mr", "mrs", "ms", "dr", "prof", "st", "jr", "sr", "vs", "etc", "e.g", "i.e", "u.s", "u.k", "inc", "ltd", "co", "corp",
        "no", "vol", "fig", "gen", "col", "lt", "sgt", "capt", "gov", "sen", "rep", "rev", "jan", "feb", "mar", "apr", "jun",
        "jul", "aug", "sep", "sept", "oct", "nov", "dec", "a.m", "p.m",
    };

    public static IReadOnlyList<string> Tokenize(string text) => [.. Sentences(text).SelectMany(TokenizeSentence)];

    static readonly Regex Word = new($"{PythonRegex.NotSpace}+");

    /// <summary>Punkt's <c>re_boundary_realignment</c>, anchored where the next sentence starts.</summary>
    static readonly Regex BoundaryRealignment = new($@"\G[""')\]}}]+?(?:{PythonRegex.Space}+|(?=--)|$)", RegexOptions.Multiline);

    /// <summary>The sentences of <paramref name="text"/> (see the class summary for the rule).</summary>
    public static IReadOnlyList<string> Sentences(string text)
    {
        var sentences = new List<string>();
        int start = 0;
        foreach (Match word in Word.Matches(text))
        {
            if (word.Index < start || !EndsSentence(word.Value)) continue;
            int end = word.Index + word.Length;
            if (end >= text.Length) break;
            int next = end;
            while (next < text.Length && PythonText.IsSpace(text[next])) next++;
            if (BoundaryRealignment.Match(text, next) is { Success: true } moved)
                (end, next) = (next + moved.Value.TrimEnd().Length, next + moved.Length);
            sentences.Add(PythonText.Strip(text[start..end]));
            start = next;
        }
        var last = PythonText.Strip(text[start..]);
        if (last.Length > 0) sentences.Add(last);
        return sentences;
    }

    static bool EndsSentence(string word)
    {
        var core = word.TrimEnd('"', '\'', ')', ']', '}', '»', '”', '’');
        if (core.Length == 0) return false;
        char last = core[^1];
        if (last is '?' or '!') return true;
        if (last != '.' || core.EndsWith("..", StringComparison.Ordinal)) return false;
        var stem = core[..^1].TrimStart('"', '\'', '(', '[', '{', '«', '“', '‘').ToLowerInvariant();
        if (stem.Length == 0) return false;
        if (stem.Length == 1 && char.IsLetter(stem[0])) return false; // an initial, as in "J. K. Rowling"
        return !Abbreviations.Contains(stem);
    }

    // The rules in NLTK 3.8.1's NLTKWordTokenizer order; each is a pattern and its replacement ($1 etc. as in Python's \1).
    static readonly (Regex Pattern, string Replacement)[] StartingQuotes =
    [
        (new(@"([«“‘„]|[`]+)"), " $1 "),
        (new("^\""), "``"),
        (new("(``)"), " $1 "),
        (new("([ \\(\\[{<])(\"|'{2})"), "$1 `` "),
        // 3.8.1: a quote before a one-character word ('a -> ' a); later versions split a quote before any word.
        (new($@"(?i)(')(?!re|ve|ll|m|t|s|d|n)({PythonRegex.Word}){PythonRegex.Boundary}"), "$1 $2"),
    ];

    static readonly (Regex Pattern, string Replacement)[] Punctuation =
    [
        (new($"([^\\.])(\\.)([\\]\\)}}>\"'»”’ ]*){PythonRegex.Space}*$"), "$1 $2 $3 "),
        (new($@"([:,])(?!{PythonRegex.Digit})([^\d])"), " $1 $2"),
        (new("([:,])$"), " $1 "),
        (new(@"\.{2,}"), " $0 "),
        (new("[;@#$%&]"), " $0 "),
        (new($"([^\\.])(\\.)([\\]\\)}}>\"']*){PythonRegex.Space}*$"), "$1 $2$3 "), // the final period
        (new("[?!]"), " $0 "),
        (new("([^'])' "), "$1 ' "),
        (new("[*]"), " $0 "),
    ];

    static readonly (Regex Pattern, string Replacement) Brackets = (new(@"[\]\[\(\)\{\}\<\>]"), " $0 ");
    static readonly (Regex Pattern, string Replacement) DoubleDashes = (new("--"), " -- ");

    static readonly (Regex Pattern, string Replacement)[] EndingQuotes =
    [
        (new("([»”’])"), " $1 "),
        (new("''"), " '' "),
        (new("\""), " '' "),
        (new("([^' ])('[sS]|'[mM]|'[dD]|') "), "$1 $2 "),
        (new("([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) "), "$1 $2 "),
    ];

    /// <summary>Robert MacIntyre's contractions, split in two ("cannot" -> "can not", "gonna" -> "gon na").</summary>
    static readonly Regex[] Contractions =
    [
        .. new[] { "(can)(not)", "(d)('ye)", "(gim)(me)", "(gon)(na)", "(got)(ta)", "(lem)(me)", "(more)('n)" }
            .Select(pair => new Regex($"(?i){PythonRegex.Boundary}{pair}{PythonRegex.Boundary}")),
        new($"(?i){PythonRegex.Boundary}(wan)(na)(?={PythonRegex.Space})"),
        new($"(?i) ('t)(is){PythonRegex.Boundary}"), new($"(?i) ('t)(was){PythonRegex.Boundary}"),
    ];

    /// <summary>One sentence's tokens by NLTKWordTokenizer's rules.</summary>
    public static IReadOnlyList<string> TokenizeSentence(string sentence)
    {
        var text = sentence;
        foreach (var (pattern, replacement) in StartingQuotes) text = pattern.Replace(text, replacement);
        foreach (var (pattern, replacement) in Punctuation) text = pattern.Replace(text, replacement);
        text = Brackets.Pattern.Replace(text, Brackets.Replacement);
        text = DoubleDashes.Pattern.Replace(text, DoubleDashes.Replacement);
        text = " " + text + " ";
        foreach (var (pattern, replacement) in EndingQuotes) text = pattern.Replace(text, replacement);
        foreach (var pattern in Contractions) text = pattern.Replace(text, " $1 $2 ");
        return PythonText.SplitOnWhitespace(text);
    }
}
