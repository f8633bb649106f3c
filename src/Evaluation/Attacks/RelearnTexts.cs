namespace AlignThenUnlearn.Evaluation.Attacks;

/// <summary>The texts the relearning attack trains on, from what RWKU provides:
/// <list type="bullet">
/// <item><c>forget</c>: the attacked targets' forget corpus (<c>passage.json</c>);</item>
/// <item><c>neighbour</c>: the attacked targets' neighbour facts as sentences, the level-1 neighbour probes
/// (<c>neighbor_level1.json</c>) with the blank filled by the answer (RWKU has no neighbour passages);</item>
/// <item><c>unrelated</c>: the forget corpora (<c>passage.json</c>) of every other target in the folder.</item>
/// </list>
/// The pool is shuffled once with the seed, and K texts are its first K, so a smaller K's texts are part of a larger K's.</summary>
public static class RelearnTexts
{
    public const string Forget = "forget", Neighbour = "neighbour", Unrelated = "unrelated";
    public static readonly IReadOnlyList<string> Kinds = [Forget, Neighbour, Unrelated];

    /// <summary>RWKU's blank in fill-in-the-blank queries.</summary>
    public const string Blank = "___";

    /// <summary>The shuffled pool of <paramref name="kind"/> texts for <paramref name="targets"/>.</summary>
    public static IReadOnlyList<string> Pool(RwkuDataset dataset, IReadOnlyList<RwkuTarget> targets, string kind, long seed)
    {
        IEnumerable<string> texts = kind switch
        {
            Forget => targets.SelectMany(t => dataset.ForgetTexts(t, RwkuDataset.PassageFile)),
            Neighbour => targets.SelectMany(t => dataset.Probes(t, RwkuProbeFile.NeighborLevel1)).Select(Statement),
            Unrelated => dataset.Targets.Where(t => targets.All(a => a.Number != t.Number)).SelectMany(t => dataset.ForgetTexts(t, RwkuDataset.PassageFile)),
            _ => throw new ArgumentException($"--data {kind}: expected {string.Join(", ", Kinds)}"),
        };
        var pool = texts.ToArray();
        new Random(unchecked((int)seed)).Shuffle(pool);
        return pool;
    }

    /// <summary>A fill-in-the-blank probe as the sentence it asks to complete.</summary>
    public static string Statement(RwkuProbe probe) =>
        probe.Query.Contains(Blank, StringComparison.Ordinal) ? probe.Query.Replace(Blank, probe.Answer, StringComparison.Ordinal) : $"{probe.Query} {probe.Answer}";

    /// <summary>The first <paramref name="k"/> texts of the pool; a K beyond it is refused, naming what the pool holds.</summary>
    public static IReadOnlyList<string> Take(IReadOnlyList<string> pool, string kind, int k) =>
        k <= pool.Count ? [.. pool.Take(k)]
        : throw new ArgumentException($"--examples {k}: the {kind} texts of the attacked targets number {pool.Count}");
}
