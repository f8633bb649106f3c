namespace AlignThenUnlearn.Runtime;

/// <summary>A text's tokens as the model scores them: for every token after the first, its log-probability given
/// the tokens before it, and the mean and variance of the log-probability under the model's distribution at that
/// position (mu = sum p log p, sigma = sum p (log p)^2 - mu^2 over the vocabulary), which Min-K%++ needs.</summary>
public sealed record TokenLogProbs(int[] Ids, double[] LogProbs, double[] Mu, double[] Sigma)
{
    /// <summary>The summed log-probability of the tokens from index <paramref name="first"/> on (a continuation after
    /// a prompt of that many tokens).</summary>
    public double SumFrom(int first)
    {
        if (first < 1 || first > Ids.Length) throw new ArgumentOutOfRangeException(nameof(first), first, $"the text has {Ids.Length} tokens");
        double sum = 0;
        for (int i = first; i < Ids.Length; i++) sum += LogProbs[i - 1];
        return sum;
    }

    /// <summary>The log-probability of <paramref name="token"/> under softmax(<paramref name="logits"/>), and mu and
    /// sigma of the log-probabilities over the vocabulary, in double precision (the logits shifted by their maximum).</summary>
    public static (double LogProb, double Mu, double Sigma) Statistics(ReadOnlySpan<float> logits, int token)
    {
        // Every difference in double: a float logit - max rounds to float (up to 3.8e-5 off at logits of a few hundred).
        double max = double.NegativeInfinity;
        foreach (var logit in logits) max = Math.Max(max, logit);
        double total = 0;
        foreach (var logit in logits) total += Math.Exp((double)logit - max);
        double logTotal = Math.Log(total), mu = 0, second = 0;
        foreach (var logit in logits)
        {
            double logP = (double)logit - max - logTotal, p = Math.Exp(logP);
            mu += p * logP;
            second += p * logP * logP;
        }
        return ((double)logits[token] - max - logTotal, mu, second - mu * mu);
    }
}
