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
    readonly ShuffledBatches _batches;
    public int BatchSize => _batches.BatchSize;
    public int PadId { get; }
    /// <summary>Sequences handed out so far (across epochs).</summary>
    public long Position => _batches.Position;
    public long Epoch => _batches.Epoch;

    /// <summary><paramref name="maxLength"/> is the longest sequence the model takes; longer ones are refused here,
    /// before any training.</summary>
    public TokenBatcher(IReadOnlyList<int[]> sequences, int batchSize, long seed, int maxLength, int padId = 0)
    {
        for (int i = 0; i < sequences.Count; i++)
            if (sequences[i].Length > maxLength)
                throw new ArgumentException($"sequence {i} has {sequences[i].Length} tokens, more than the maximum length {maxLength}; split it or raise the maximum");
        _batches = new ShuffledBatches(sequences, batchSize, seed);
        _sequences = sequences;
        PadId = padId;
    }

    public IReadOnlyDictionary<string, HostTensor> Next()
    {
        var rows = _batches.NextRows().Select(i => _sequences[i]).ToList();
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

    public JsonObject SaveState() => _batches.SaveState();

    /// <summary>Continues at the saved position; refuses a state saved for other sequences, another seed or batch size.</summary>
    public void RestoreState(JsonObject state) => _batches.RestoreState(state);
}
