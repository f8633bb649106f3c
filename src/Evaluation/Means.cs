namespace AlignThenUnlearn.Evaluation;

/// <summary>Means over figures some of which may be missing (a task not scored, a column a run lacks).</summary>
public static class Means
{
    /// <summary>The mean of the values present (in order, summed left to right); null when none is.</summary>
    public static double? OfPresent(IEnumerable<double?> values)
    {
        double sum = 0;
        int count = 0;
        foreach (var v in values)
            if (v is double x) (sum, count) = (sum + x, count + 1);
        return count == 0 ? null : sum / count;
    }
}
