namespace AlignThenUnlearn.Evaluation;

/// <summary>ROUGE-L recall as the Python package <c>rouge</c> 1.0.1 computes it (<c>Rouge().get_scores(prediction,
/// reference)[0]["rouge-l"]["r"]</c>, the number RWKU reports). The steps, which this class follows one for one:
/// <list type="number">
/// <item>Each text is split on <c>.</c>; pieces of length 0 are dropped; each remaining piece has its whitespace
/// runs collapsed to single spaces (so a piece of only spaces becomes the empty sentence) and is split on single
/// spaces into words. Words are compared case-sensitively; punctuation other than <c>.</c> stays attached.</item>
/// <item>For every reference sentence and every prediction sentence, one longest common subsequence is recovered
/// by walking the LCS table back from the end: equal words are taken diagonally; otherwise the walk moves to the
/// shorter reference prefix only if that cell is strictly greater, else to the shorter prediction prefix.
/// The tie rule matters: it decides which words a sentence pair contributes.</item>
/// <item>The recovered words of all pairs are pooled as a set; recall = its size / the number of distinct words
/// of the reference.</item>
/// </list>
/// A prediction without sentences (empty, or only dots) scores 0; <c>rouge</c> raises instead, and RWKU never
/// passes one because empty answers become <c>NOANSWER</c>. A reference without sentences has nothing to recall
/// and is refused, as <c>rouge</c> refuses it.</summary>
public static class RougeL
{
    public static double Recall(string prediction, string reference)
    {
        ArgumentNullException.ThrowIfNull(prediction);
        ArgumentNullException.ThrowIfNull(reference);
        var referenceSentences = Sentences(reference);
        if (referenceSentences.Count == 0)
            throw new ArgumentException($"The reference \"{reference}\" has no words (after splitting on '.'), so recall is undefined.", nameof(reference));
        var predictionSentences = Sentences(prediction);
        if (predictionSentences.Count == 0) return 0.0;

        var referenceWords = new HashSet<string>(referenceSentences.SelectMany(s => s), StringComparer.Ordinal);
        var recovered = new HashSet<string>(StringComparer.Ordinal);
        foreach (var referenceSentence in referenceSentences)
            foreach (var predictionSentence in predictionSentences)
                recovered.UnionWith(RecoverLcs(referenceSentence, predictionSentence));
        return (double)recovered.Count / referenceWords.Count;
    }

    /// <summary>The sentences of <paramref name="text"/> as word lists, as <c>rouge</c> splits them.</summary>
    public static IReadOnlyList<string[]> Sentences(string text)
    {
        var sentences = new List<string[]>();
        foreach (var piece in text.Split('.'))
        {
            if (piece.Length == 0) continue;
            var words = PythonText.SplitOnWhitespace(piece);
            // A piece of only whitespace collapses to "" and splitting "" on a space gives the one word "".
            sentences.Add(words.Length == 0 ? [""] : words);
        }
        return sentences;
    }

    /// <summary>The words of one longest common subsequence of <paramref name="reference"/> and
    /// <paramref name="prediction"/>, chosen by the tie rule in the class summary.</summary>
    static List<string> RecoverLcs(string[] reference, string[] prediction)
    {
        int n = reference.Length, m = prediction.Length;
        // length[i, j] = LCS length of reference[..i] and prediction[..j].
        var length = new int[n + 1, m + 1];
        for (int i = 1; i <= n; i++)
            for (int j = 1; j <= m; j++)
                length[i, j] = string.Equals(reference[i - 1], prediction[j - 1], StringComparison.Ordinal)
                    ? length[i - 1, j - 1] + 1
                    : Math.Max(length[i - 1, j], length[i, j - 1]);

        var words = new List<string>();
        for (int i = n, j = m; i > 0 && j > 0;)
        {
            if (string.Equals(reference[i - 1], prediction[j - 1], StringComparison.Ordinal))
            {
                words.Add(reference[i - 1]);
                i--;
                j--;
            }
            else if (length[i - 1, j] > length[i, j - 1]) i--;
            else j--;
        }
        return words;
    }
}
