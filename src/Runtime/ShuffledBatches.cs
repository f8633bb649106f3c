using System.Text.Json.Nodes;

namespace AlignThenUnlearn.Runtime;

/// <summary>The rows of batches drawn from a list of sequences in <see cref="DataOrder"/>, and the cursor a checkpoint
/// keeps: the batch sources (<see cref="TokenBatcher"/>, Align-then-Unlearn's window batches) build their tensors from
/// the rows this hands out.</summary>
public sealed class ShuffledBatches
{
    readonly DataOrder _order;
    readonly string _fingerprint;
    readonly int _count;

    public int BatchSize { get; }
    /// <summary>Sequences handed out so far (across epochs).</summary>
    public long Position { get; private set; }
    public long Epoch => Position / _count;

    public ShuffledBatches(IReadOnlyList<int[]> sequences, int batchSize, long seed)
    {
        if (batchSize <= 0) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "must be positive");
        for (int i = 0; i < sequences.Count; i++)
            if (sequences[i].Length == 0) throw new ArgumentException($"sequence {i} is empty");
        (_order, _fingerprint, _count, BatchSize) = (new DataOrder(sequences.Count, seed), Fingerprint(sequences), sequences.Count, batchSize);
    }

    /// <summary>The indices of the next batch's sequences.</summary>
    public int[] NextRows()
    {
        var rows = Enumerable.Range(0, BatchSize).Select(i => _order[Position + i]).ToArray();
        Position += BatchSize;
        return rows;
    }

    public JsonObject SaveState() => new()
    {
        ["seed"] = _order.Seed, ["sequences"] = _count, ["fingerprint"] = _fingerprint, ["batch_size"] = BatchSize, ["position"] = Position,
    };

    /// <summary>Continues at the saved position; refuses a state saved for other sequences, another seed or batch size.</summary>
    public void RestoreState(JsonObject state)
    {
        var expected = SaveState();
        foreach (var key in new[] { "seed", "sequences", "fingerprint", "batch_size" })
            if (state[key]?.ToJsonString() != expected[key]!.ToJsonString())
                throw new InvalidOperationException($"the checkpoint's data order has {key} {state[key]?.ToJsonString() ?? "(none)"}, this run's {expected[key]!.ToJsonString()}: it was saved for other data or settings");
        Position = state["position"]?.GetValue<long>() ?? throw new InvalidOperationException("the checkpoint's data order has no position");
    }

    /// <summary>FNV-1a over lengths and tokens: tells whether a checkpoint was made with the same sequences.</summary>
    static string Fingerprint(IReadOnlyList<int[]> sequences)
    {
        ulong h = 14695981039346656037;
        void Add(int v) { foreach (var b in BitConverter.GetBytes(v)) h = (h ^ b) * 1099511628211; }
        foreach (var s in sequences) { Add(s.Length); foreach (var t in s) Add(t); }
        return h.ToString("x16");
    }
}
