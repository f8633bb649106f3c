namespace AlignThenUnlearn.Runtime;

/// <summary>Sebastiano Vigna's SplitMix64 generator. Its whole state is one 64-bit number, so a checkpoint saves
/// and restores it exactly (System.Random's state cannot be saved).</summary>
public sealed class SplitMix64(ulong state)
{
    public ulong State { get; set; } = state;

    public ulong Next()
    {
        State += 0x9E3779B97F4A7C15;
        return Mix(State);
    }

    /// <summary>A uniform integer in [0, <paramref name="bound"/>), by rejection so that no value is favoured.</summary>
    public int Next(int bound)
    {
        if (bound <= 0) throw new ArgumentOutOfRangeException(nameof(bound), bound, "must be positive");
        ulong limit = ulong.MaxValue - ulong.MaxValue % (ulong)bound;   // the largest multiple of bound
        ulong value;
        do value = Next(); while (value >= limit);
        return (int)(value % (ulong)bound);
    }

    /// <summary>A uniform double in [0, 1) from the top 53 bits.</summary>
    public double NextDouble() => (Next() >> 11) * (1.0 / (1UL << 53));

    /// <summary>SplitMix64's output function: a bijective scramble of 64 bits.</summary>
    public static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EB;
        return z ^ (z >> 31);
    }
}
