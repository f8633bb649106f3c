using System.Globalization;

namespace AlignThenUnlearn.Evaluation.Comparison;

/// <summary>SplitMix64 (Steele, Lea and Flood 2014): a small generator written out here, so that the bootstrap's draws,
/// and so the report, are the same on every .NET version.</summary>
public sealed class SplitMix64(ulong seed)
{
    ulong _state = seed;

    public ulong Next()
    {
        unchecked
        {
            _state += 0x9E3779B97F4A7C15UL;
            var z = _state;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }
    }

    /// <summary>An integer in [0, n): the high 64 bits of Next() * n (Lemire's multiply-shift, without rejection; its
    /// bias is below n / 2^64).</summary>
    public int Below(int n) => n > 0 ? (int)(((UInt128)Next() * (ulong)n) >> 64) : throw new ArgumentOutOfRangeException(nameof(n), n, "expected 1 or more");
}

/// <summary>A mean with its bootstrap 95% percentile interval over <see cref="N"/> values.</summary>
public sealed record Estimate(double Mean, double Low, double High, int N)
{
    public bool CoversZero => Low <= 0 && High >= 0;

    /// <summary>"12.3 [10.1, 14.0] n=5".</summary>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Mean:F1} [{Low:F1}, {High:F1}] n={N}");
}

/// <summary>The two-stage percentile bootstrap of a mean over people grouped by world: each replicate draws as many worlds
/// as there are, with replacement, then within each drawn world as many of its people as it has, with replacement, and
/// takes the mean of every drawn value (one world: the plain bootstrap over people). The interval is the replicates'
/// sorted means at indices floor(0.025 B) and ceil(0.975 B) - 1. The generator restarts from the same seed for every
/// estimate, so an estimate depends only on its values and their order.</summary>
public static class Bootstrap
{
    public const int Replicates = 2000;
    public const ulong Seed = 25;

    /// <summary>The estimate of the values' mean (null when there are none); worlds in order of first appearance.</summary>
    public static Estimate? Of(IReadOnlyList<(string World, double Value)> sample, int replicates = Replicates, ulong seed = Seed)
    {
        if (sample.Count == 0) return null;
        if (replicates < 1) throw new ArgumentOutOfRangeException(nameof(replicates), replicates, "expected 1 or more");
        var worlds = sample.GroupBy(s => s.World, StringComparer.Ordinal).Select(g => g.Select(s => s.Value).ToArray()).ToArray();
        var random = new SplitMix64(seed);
        var means = new double[replicates];
        for (int r = 0; r < replicates; r++)
        {
            double sum = 0;
            int count = 0;
            for (int w = 0; w < worlds.Length; w++)
            {
                var world = worlds[random.Below(worlds.Length)];
                for (int p = 0; p < world.Length; p++, count++) sum += world[random.Below(world.Length)];
            }
            means[r] = sum / count;
        }
        Array.Sort(means);
        return new Estimate(sample.Average(s => s.Value), means[(int)Math.Floor(0.025 * replicates)], means[(int)Math.Ceiling(0.975 * replicates) - 1], sample.Count);
    }

    /// <summary>The paired difference a - b over the (world, person) keys present in both (null when none is).</summary>
    public static Estimate? Paired(IReadOnlyList<(string World, string Person, double Value)> a, IReadOnlyList<(string World, string Person, double Value)> b,
        int replicates = Replicates, ulong seed = Seed)
    {
        var other = b.ToDictionary(x => (x.World, x.Person), x => x.Value);
        return Of([.. a.Where(x => other.ContainsKey((x.World, x.Person))).Select(x => (x.World, x.Value - other[(x.World, x.Person)]))], replicates, seed);
    }
}
