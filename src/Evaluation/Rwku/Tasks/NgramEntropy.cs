namespace AlignThenUnlearn.Evaluation;

/// <summary>RWKU's fluency score (<c>eval_fluency.py</c>, after ROME's <c>n_gram_entropy</c>): for each output, the
/// entropy in bits of the frequency distribution of its word bigrams and of its trigrams (words as
/// <see cref="NltkWordTokenizer"/> splits them), weighted 2/3 and 4/3 and averaged; the score of a set of outputs is
/// the mean over outputs.</summary>
public static class NgramEntropy
{
    static readonly (int N, double Weight)[] Orders = [(2, 2.0 / 3), (3, 4.0 / 3)];

    public static double OfText(string text) => OfWords(NltkWordTokenizer.Tokenize(text));

    /// <summary>mean over n in (2, 3) of weight(n) x entropy of the n-gram counts; a text with fewer than n words has
    /// no n-grams and entropy 0 for that n (numpy's sum over an empty array).</summary>
    public static double OfWords(IReadOnlyList<string> words) => Orders.Average(order => order.Weight * Entropy(words, order.N));

    /// <summary>The entropy in bits of the distribution of the n-grams of <paramref name="words"/>.</summary>
    public static double Entropy(IReadOnlyList<string> words, int n)
    {
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i + n <= words.Count; i++)
        {
            // Words hold no NUL, so joining with it keys each n-gram uniquely.
            var key = string.Join('\0', words.Skip(i).Take(n));
            counts[key] = counts.GetValueOrDefault(key) + 1;
        }
        double total = counts.Values.Sum(), entropy = 0;
        foreach (var count in counts.Values)
        {
            double p = count / total;
            entropy -= p * Math.Log(p) / Math.Log(2);
        }
        return entropy;
    }

    public static double Mean(IEnumerable<string> outputs) => outputs.Select(OfText).Average();
}
