using System.Text.Json.Nodes;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Runtime;

namespace AlignThenUnlearn.Unlearning;

/// <summary>Batches of a corpus for Align-then-Unlearn: every text cut into pieces of at most <c>sequenceLength</c>
/// LLM tokens, drawn in a reproducible shuffled order (<see cref="ShuffledBatches"/>) and right-padded to the longest
/// piece of the batch (the reference pads to 256; causal attention makes the padding invisible to real tokens, and
/// the masks drop it from every loss). A batch holds <c>input_ids</c> [batch, seq], <c>token_mask</c> (1 on real
/// tokens), <c>window_full</c> (1 where the token's future window is full) and <c>window_embeddings</c>
/// [batch, seq, dim]; each graph binds the inputs it has.</summary>
public sealed class WindowBatcher : IBatchSource
{
    readonly List<(int Text, int Start, int Length)> _pieces = [];
    readonly CorpusWindows _corpus;
    readonly ShuffledBatches _batches;
    readonly int _padId;

    public int Pieces => _pieces.Count;

    public WindowBatcher(CorpusWindows corpus, int batchSize, int sequenceLength, long seed, int padId = 0)
    {
        if (sequenceLength < 1) throw new ArgumentOutOfRangeException(nameof(sequenceLength), sequenceLength, "must be positive");
        for (int t = 0; t < corpus.TokenIds.Count; t++)
            for (int start = 0; start < corpus.TokenIds[t].Length; start += sequenceLength)
                _pieces.Add((t, start, Math.Min(sequenceLength, corpus.TokenIds[t].Length - start)));
        if (_pieces.Count == 0) throw new ArgumentException("the corpus has no tokens to train on");
        _batches = new ShuffledBatches(_pieces.Select(p => corpus.TokenIds[p.Text].AsSpan(p.Start, p.Length).ToArray()).ToList(), batchSize, seed);
        (_corpus, _padId) = (corpus, padId);
    }

    /// <summary>The pieces of the batch <see cref="Next"/> returned last (indices 0 .. <see cref="Pieces"/> - 1).</summary>
    public IReadOnlyList<int> LastPieces { get; private set; } = [];

    /// <summary>The longest row a batch can have: what <see cref="Batch"/> pads to so that a row's values at every
    /// position any batch can ask for are computed once (<see cref="HiddenStateCache"/>).</summary>
    public int RowLength => _pieces.Max(p => p.Length);

    public IReadOnlyDictionary<string, HostTensor> Next() => Batch(LastPieces = _batches.NextRows());

    /// <summary>The batch of the given pieces, padded to <paramref name="padTo"/> (default: the longest of them).</summary>
    public IReadOnlyDictionary<string, HostTensor> Batch(IReadOnlyList<int> pieces, int? padTo = null)
    {
        var rows = pieces.Select(i => _pieces[i]).ToList();
        int batch = rows.Count, seq = padTo ?? rows.Max(r => r.Length), dim = _corpus.Dimension;
        var ids = new long[batch * seq];
        var tokens = new float[batch * seq];
        var full = new float[batch * seq];
        var embeddings = new float[batch * seq * dim];
        Array.Fill(ids, _padId);
        for (int b = 0; b < batch; b++)
        {
            var (text, start, length) = rows[b];
            for (int t = 0; t < length; t++)
            {
                ids[b * seq + t] = _corpus.TokenIds[text][start + t];
                tokens[b * seq + t] = 1;
                full[b * seq + t] = _corpus.Full[text][start + t] ? 1 : 0;
            }
            _corpus.Embeddings[text].AsSpan(start * dim, length * dim).CopyTo(embeddings.AsSpan(b * seq * dim));
        }
        return new Dictionary<string, HostTensor>
        {
            [DecoderGraph.InputIds] = HostTensor.Of(ids, batch, seq),
            [UnlearningGraphs.TokenMask] = HostTensor.Of(tokens, batch, seq),
            [UnlearningGraphs.WindowFull] = HostTensor.Of(full, batch, seq),
            [UnlearningGraphs.WindowEmbeddings] = HostTensor.Of(embeddings, batch, seq, dim),
        };
    }

    public JsonObject SaveState() => _batches.SaveState();
    public void RestoreState(JsonObject state) => _batches.RestoreState(state);
}
