using AlignThenUnlearn.Runtime;

namespace AlignThenUnlearn.Evaluation;

/// <summary>The membership-inference scores of one text, as RWKU's <c>eval_mia.py</c> computes them: <c>Loss</c>
/// (the model's mean token NLL, so the log-likelihood ll is its negative), <c>Zlib</c> = ll / zlib-compressed length,
/// and Min-K% and Min-K%++ at k = 0.1 ... 1.0.</summary>
public sealed record MiaScores(double Loss, double Zlib, IReadOnlyList<double> MinK, IReadOnlyList<double> MinKPlusPlus)
{
    /// <summary>The fractions k of Min-K% and Min-K%++, in RWKU's order.</summary>
    public static readonly IReadOnlyList<double> Ratios = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0];

    /// <summary>The scores of a text of which <paramref name="tokens"/> are the model's token scores; null when the
    /// text has a single token (no prediction, RWKU's loss is NaN and it skips the text).</summary>
    public static MiaScores? Of(string text, TokenLogProbs tokens)
    {
        var logProbs = tokens.LogProbs;
        if (logProbs.Length == 0) return null;
        double ll = logProbs.Average();
        double zlib = ll / ZlibLength.Of(text);
        var plusPlus = logProbs.Select((lp, i) => (lp - tokens.Mu[i]) / Math.Sqrt(tokens.Sigma[i])).ToArray();
        return new MiaScores(-ll, zlib, [.. Ratios.Select(k => LowestMean(logProbs, k))], [.. Ratios.Select(k => LowestMean(plusPlus, k))]);
    }

    /// <summary>The mean of the lowest <c>int(len * k)</c> values in numpy's sort order, NaN last (a token whose
    /// distribution has zero variance makes a NaN Min-K%++ value, which .NET's <c>Order()</c> would put first); numpy's mean
    /// of an empty slice is NaN, as RWKU gets for a short text and a small k.</summary>
    public static double LowestMean(IReadOnlyList<double> values, double k)
    {
        int count = (int)(values.Count * k);
        if (count == 0) return double.NaN;
        return values.OrderBy(v => double.IsNaN(v)).ThenBy(v => v).Take(count).Average();
    }
}
