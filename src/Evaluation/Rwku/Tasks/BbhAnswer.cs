using System.Text.RegularExpressions;

namespace AlignThenUnlearn.Evaluation;

/// <summary>The answer RWKU's <c>eval_bbh.py</c> reads from a chain-of-thought output: the text between the first
/// "the answer is " (or "The answer is ") and the next period on the same line, stripped; the whole output
/// stripped when there is no such phrase; <c>NOANSWER</c> when that leaves nothing.</summary>
public static partial class BbhAnswer
{
    /// <summary>RWKU's pattern, <c>[t|T]</c> included: the class also admits a literal '|', so "|he answer is" matches.
    /// '.' does not cross a newline (Python's default, and .NET's).</summary>
    [GeneratedRegex(@"[t|T]he answer is (.*?)\.")]
    private static partial Regex AnswerPattern();

    public static string Extract(string output)
    {
        var match = AnswerPattern().Match(output);
        var answer = PythonText.Strip(match.Success ? match.Groups[1].Value : output);
        return answer.Length == 0 ? RwkuPrompts.NoAnswer : answer;
    }
}
