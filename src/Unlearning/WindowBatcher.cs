using System.Text.Json.Nodes;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Runtime;

namespace AlignThenUnlearn.Unlearning;

/// <summary>Batches of a corpus for Align-then-Unlearn, drawn in a reproducible shuffled order
/// (<see cref="ShuffledBatches"/>). A batch holds <c>input_ids</c> [batch, seq], <c>token_mask</c> (the positions the
/// unlearning loss averages and the head's cross-attention may read), <c>window_full</c> (1 where a real token's future
/// window is full: the positions the alignment loss averages) and <c>window_embeddings</c> [batch, seq, dim]; each
/// graph binds the inputs it has. Two ways to make rows (<see cref="SequenceModes"/>):
/// <list type="bullet">
/// <item><c>chunks</c>: every text cut into pieces of at most <c>sequenceLength</c> tokens (later pieces start mid-text,
/// without BOS), right-padded with <c>padId</c> to the longest piece of the batch; <c>token_mask</c> is 1 on real tokens
/// only, so padding is in no loss and no head output (causal attention already hides it from the LLM's real tokens);</item>
/// <item><c>first</c>, the authors': the first <c>sequenceLength</c> tokens of each text (BOS included as the tokenizer
/// adds it), right-padded with <c>padId</c> (the EOS) to exactly <c>sequenceLength</c>; <c>token_mask</c> is 1
/// everywhere, so the unlearning loss averages over every position, padding included, and nothing is masked.</item>
/// </list></summary>
public sealed class WindowBatcher : IBatchSource
{
    readonly List<(int Text, int Start, int Length)> _pieces = [];
    readonly CorpusWindows _corpus;
    readonly ShuffledBatches _batches;
    readonly int _padId, _sequenceLength;
    readonly bool _first;

    public int Pieces => _pieces.Count;

    public WindowBatcher(CorpusWindows corpus, int batchSize, int sequenceLength, long seed, int padId = 0, string sequences = SequenceModes.Chunks)
    {
        if (sequenceLength < 1) throw new ArgumentOutOfRangeException(nameof(sequenceLength), sequenceLength, "must be positive");
        if (sequences is not (SequenceModes.First or SequenceModes.Chunks)) throw new ArgumentException($"sequences '{sequences}' is not '{SequenceModes.First}' or '{SequenceModes.Chunks}'", nameof(sequences));
        _first = sequences == SequenceModes.First;
        for (int t = 0; t < corpus.TokenIds.Count; t++)
            for (int start = 0; start < corpus.TokenIds[t].Length && (start == 0 || !_first); start += sequenceLength)
                _pieces.Add((t, start, Math.Min(sequenceLength, corpus.TokenIds[t].Length - start)));
        if (_pieces.Count == 0) throw new ArgumentException("the corpus has no tokens to train on");
        _batches = new ShuffledBatches(_pieces.Select(p => corpus.TokenIds[p.Text].AsSpan(p.Start, p.Length).ToArray()).ToList(), batchSize, seed);
        (_corpus, _padId, _sequenceLength) = (corpus, padId, sequenceLength);
    }

    public IReadOnlyDictionary<string, HostTensor> Next()
    {
        var rows = _batches.NextRows().Select(i => _pieces[i]).ToList();
        int batch = rows.Count, seq = _first ? _sequenceLength : rows.Max(r => r.Length), dim = _corpus.Dimension;
        var ids = new long[batch * seq];
        var tokens = new float[batch * seq];
        var full = new float[batch * seq];
        var embeddings = new float[batch * seq * dim];
        Array.Fill(ids, _padId);
        if (_first) Array.Fill(tokens, 1f);
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
