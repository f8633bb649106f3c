namespace AlignThenUnlearn.Runtime;

/// <summary>The order in which a run visits <see cref="Count"/> items: epoch after epoch, each a Fisher-Yates
/// shuffle seeded by the run's seed and the epoch number. Item <c>k</c> of the stream depends only on the seed and
/// <c>k</c>, so a cursor (items consumed so far) is all a checkpoint needs to continue the same order.</summary>
public sealed class DataOrder
{
    public int Count { get; }
    public long Seed { get; }
    long _epoch = -1;
    int[] _permutation = [];

    public DataOrder(int count, long seed)
    {
        if (count <= 0) throw new ArgumentOutOfRangeException(nameof(count), count, "there must be at least one item to order");
        (Count, Seed) = (count, seed);
    }

    /// <summary>The item at position <paramref name="position"/> of the stream (epoch = position / Count).</summary>
    public int this[long position] => Permutation(position / Count)[position % Count];

    /// <summary>The order of epoch <paramref name="epoch"/>: a permutation of 0 .. Count-1.</summary>
    public int[] Permutation(long epoch)
    {
        if (epoch < 0) throw new ArgumentOutOfRangeException(nameof(epoch), epoch, "epochs start at 0");
        if (epoch == _epoch) return _permutation;
        var random = new SplitMix64(SplitMix64.Mix((ulong)Seed) ^ SplitMix64.Mix((ulong)epoch + 1));
        var order = Enumerable.Range(0, Count).ToArray();
        for (int i = Count - 1; i > 0; i--)
        {
            int j = random.Next(i + 1);
            (order[i], order[j]) = (order[j], order[i]);
        }
        (_epoch, _permutation) = (epoch, order);
        return order;
    }
}
