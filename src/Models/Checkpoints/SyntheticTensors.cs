namespace AlignThenUnlearn.Models.Checkpoints;

/// <summary>Deterministic pseudo-random tensor contents for random checkpoints, tests and benchmarks. Each
/// element is a hash of (seed, index), so any chunk is produced on its own, in any order, without
/// holding the tensor: a checkpoint of any size can be written lazily through
/// <see cref="TensorSource.FromGenerator"/>.</summary>
public static class SyntheticTensors
{
    /// <summary>Element <paramref name="index"/> of the pattern <paramref name="seed"/>: uniform in [-scale, scale).</summary>
    public static float Value(ulong seed, long index, float scale)
    {
        // SplitMix64 finaliser of (seed, index); the top 24 bits make a float in [0, 1).
        ulong z = seed + (ulong)(index + 1) * 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        z ^= z >> 31;
        float unit = (z >> 40) * (1f / (1 << 24));
        return (2 * unit - 1) * scale;
    }

    public static ValuesGenerator Uniform(ulong seed, float scale) => (first, values) =>
    {
        for (int i = 0; i < values.Length; i++) values[i] = Value(seed, first + i, scale);
    };

    /// <summary>The seed of tensor <paramref name="name"/> in a checkpoint with seed <paramref name="seed"/> (FNV-1a of the name, mixed with the seed).</summary>
    public static ulong SeedOf(ulong seed, string name)
    {
        ulong hash = 0xCBF29CE484222325UL ^ seed;
        foreach (char c in name) hash = (hash ^ c) * 0x100000001B3UL;
        return hash;
    }

    /// <summary>A tensor of uniform values in [-scale, scale), generated while it is written.</summary>
    public static TensorSource Tensor(string name, SafetensorsDType dtype, long[] shape, ulong seed, float scale) =>
        TensorSource.FromGenerator(name, dtype, shape, Uniform(SeedOf(seed, name), scale));
}
