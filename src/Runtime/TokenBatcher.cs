using System.Text.Json.Nodes;
using AlignThenUnlearn.Models;

namespace AlignThenUnlearn.Runtime;

/// <summary>Batches of token sequences for causal-LM training in a reproducible shuffled order (<see cref="DataOrder"/>):
/// <c>input_ids</c> [batch, seq] (int64, right-padded to the longest sequence of the batch) and <c>loss_mask</c>
/// [batch, seq] (float, 1 at every position t whose next token t+1 belongs to the sequence, 0 elsewhere).</summary>
public sealed class TokenBatcher : IBatchSource
{
    public const string InputIds = DecoderGraph.InputIds, LossMask = "loss_mask";

    readonly IReadOnlyList<int[]> _sequences;
    readonly DataOrder _order;
    readonly string _fingerprint;
    public int BatchSize { get; }
    public int PadId { get; }
    /// <summary>Sequences handed out so far (across epochs).</summary>
    public long Position { get; private set; }
    public long Epoch => Position / _sequences.Count;

    /// <summary><paramref name="maxLength"/> is the longest sequence the model takes; longer ones are refused here,
    /// before any training.</summary>
    public TokenBatcher(IReadOnlyList<int[]> sequences, int batchSize, long seed, int maxLength, int padId = 0)
    {
        if (batchSize <= 0) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "must be positive");
        for (int i = 0; i < sequences.Count; i++)
        {
            if (sequences[i].Length == 0) throw new ArgumentException($"sequence {i} is empty");
            if (sequences[i].Length > maxLength)
                throw new ArgumentException($"sequence {i} has {sequences[i].Length} tokens, more than the maximum length {maxLength}; split it or raise the maximum");
        }
        _sequences = sequences;
        _order = new DataOrder(sequences.Count, seed);
        _fingerprint = Fingerprint(sequences);
        (BatchSize, PadId) = (batchSize, padId);
    }

    public IReadOnlyDictionary<string, HostTensor> Next()
    {
        var rows = Enumerable.Range(0, BatchSize).Select(i => _sequences[_order[Position + i]]).ToList();
        Position += BatchSize;
        int length = rows.Max(r => r.Length);
        var ids = new long[BatchSize * length];
        var mask = new float[BatchSize * length];
        Array.Fill(ids, PadId);
        for (int b = 0; b < BatchSize; b++)
            for (int t = 0; t < rows[b].Length; t++)
            {
                ids[b * length + t] = rows[b][t];
                if (t + 1 < rows[b].Length) mask[b * length + t] = 1;
            }
        return new Dictionary<string, HostTensor>
        {
            [InputIds] = HostTensor.Of(ids, BatchSize, length),
            [LossMask] = HostTensor.Of(mask, BatchSize, length),
        };
    }

    public JsonObject SaveState() => new()
    {
        ["seed"] = _order.Seed, ["sequences"] = _sequences.Count, ["fingerprint"] = _fingerprint, ["batch_size"] = BatchSize, ["position"] = Position,
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
