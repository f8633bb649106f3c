using System.Text.Json.Nodes;
using AlignThenUnlearn.Runtime;

namespace AlignThenUnlearn.Unlearning;

/// <summary>A token sequence whose tokens from <see cref="FirstLabel"/> on are labels: 1 for a text trained on every
/// token (GA, NPO), the first answer token for a prompt and answer (RT, DPO), as LLaMA-Factory sets the prompt's labels
/// to -100. Tokens from <see cref="LabelEnd"/> on are not labels either: RWKU's pre-training rows append the EOS, which
/// is also the padding token, so the collator masks it (<see cref="TextWithEos"/>).</summary>
public sealed record LabelledSequence(int[] Tokens, int FirstLabel = 1, int LabelEnd = int.MaxValue)
{
    /// <summary>A forget-corpus text as RWKU's GA/NPO rows (LLaMA-Factory's pre-training preprocessing): the text's
    /// tokens with the EOS appended, cut at <paramref name="cutoff"/> tokens (a cut text loses its EOS), and the EOS not a
    /// label, because the pad token is the EOS and the language-modelling collator masks every pad id.</summary>
    public static LabelledSequence TextWithEos(IReadOnlyList<int> text, int eosId, int cutoff)
    {
        var tokens = text.Append(eosId).Take(cutoff).ToArray();
        int eos = Array.IndexOf(tokens, eosId);
        return new LabelledSequence(tokens, 1, eos < 0 ? int.MaxValue : eos);
    }

    /// <summary>A prompt followed by its answer, the answer's tokens the labels.</summary>
    public static LabelledSequence PromptAndAnswer(int[] prompt, int[] answer) => new([.. prompt, .. answer], Math.Max(1, prompt.Length));

    /// <summary>The rows as <c>input_ids</c> [rows, longest] (right-padded with <paramref name="padId"/>) and a loss mask
    /// [rows, longest] in <see cref="TokenLosses"/>'s convention: 1 at position t when token t+1 is a label.</summary>
    public static (HostTensor Ids, HostTensor Mask) Batch(IReadOnlyList<LabelledSequence> rows, int padId = 0)
    {
        int length = rows.Max(r => r.Tokens.Length);
        var ids = new long[rows.Count * length];
        var mask = new float[rows.Count * length];
        Array.Fill(ids, padId);
        for (int b = 0; b < rows.Count; b++)
        {
            var row = rows[b];
            for (int t = 0; t < row.Tokens.Length; t++)
            {
                ids[b * length + t] = row.Tokens[t];
                if (t + 1 >= row.FirstLabel && t + 1 < Math.Min(row.Tokens.Length, row.LabelEnd)) mask[b * length + t] = 1;
            }
        }
        return (HostTensor.Of(ids, rows.Count, length), HostTensor.Of(mask, rows.Count, length));
    }
}

/// <summary>Batches of the token-level methods in a reproducible shuffled order (<see cref="ShuffledBatches"/>). An
/// example is one sequence, or two that train together: DPO's chosen and rejected answers, GradDiff's forget text and
/// the retain text drawn with it. A batch of B examples of two sequences holds the B first sequences, then the B
/// second ones (trl's concatenated forward). The second sequences' labels go into <c>loss_mask</c> too (DPO) or into a
/// mask of their own (GradDiff's <see cref="TokenLossGraph.RetainMask"/>). With reference log-probabilities (NPO, DPO;
/// <see cref="ReferenceLogProbabilities"/>) each row carries its sequence's value as <see cref="TokenLossGraph.ReferenceLogProbs"/>.</summary>
public sealed class LabelledBatches : IBatchSource
{
    readonly IReadOnlyList<LabelledSequence[]> _examples;
    readonly IReadOnlyList<double[]>? _reference;
    readonly string? _secondMask;
    readonly ShuffledBatches _batches;
    readonly int _padId;

    /// <param name="reference">Per example, one value per sequence.</param>
    /// <param name="secondMask">The input that holds the second sequences' labels; null: <c>loss_mask</c>.</param>
    public LabelledBatches(IReadOnlyList<LabelledSequence[]> examples, int batchSize, long seed, int maxLength, int padId = 0,
        IReadOnlyList<double[]>? reference = null, string? secondMask = null)
    {
        if (examples.Count == 0) throw new ArgumentException("no examples to train on");
        int arity = examples[0].Length;
        if (arity is < 1 or > 2) throw new ArgumentException($"an example holds one or two sequences, not {arity}");
        for (int i = 0; i < examples.Count; i++)
        {
            if (examples[i].Length != arity) throw new ArgumentException($"example {i} holds {examples[i].Length} sequences, example 0 {arity}");
            foreach (var s in examples[i])
            {
                if (s.Tokens.Length > maxLength)
                    throw new ArgumentException($"example {i} has a sequence of {s.Tokens.Length} tokens, more than the maximum length {maxLength}; cut it or raise the maximum");
                if (s.FirstLabel < 1 || s.FirstLabel >= Math.Min(s.Tokens.Length, s.LabelEnd))
                    throw new ArgumentException($"example {i}: labels from token {s.FirstLabel} of a sequence of {s.Tokens.Length} tokens leave nothing to predict");
            }
            if (reference is not null && (i >= reference.Count || reference[i].Length != arity))
                throw new ArgumentException($"example {i} has no reference log-probability per sequence");
        }
        if (reference is not null && reference.Count != examples.Count)
            throw new ArgumentException($"{reference.Count} reference entries for {examples.Count} examples");
        (_examples, _reference, _secondMask, _padId) = (examples, reference, secondMask, padId);
        _batches = new ShuffledBatches([.. examples.Select(e => e.SelectMany(s => s.Tokens.Prepend(-Math.Min(s.LabelEnd, s.Tokens.Length)).Prepend(-s.FirstLabel)).ToArray())], batchSize, seed);
    }

    public IReadOnlyDictionary<string, HostTensor> Next()
    {
        var rows = _batches.NextRows();
        int arity = _examples[0].Length;
        var sequences = Enumerable.Range(0, arity).SelectMany(slot => rows.Select(r => _examples[r][slot])).ToList();
        var (ids, mask) = LabelledSequence.Batch(sequences, _padId);
        var batch = new Dictionary<string, HostTensor> { [TokenBatcher.InputIds] = ids, [TokenBatcher.LossMask] = mask };
        if (arity == 2 && _secondMask is not null)
        {
            // The first rows' labels stay in loss_mask, the second rows' move to their own mask.
            var first = (float[])mask.Floats.Clone();
            var second = (float[])mask.Floats.Clone();
            int half = first.Length / 2;
            Array.Clear(first, half, half);
            Array.Clear(second, 0, half);
            batch[TokenBatcher.LossMask] = HostTensor.Of(first, mask.Shape);
            batch[_secondMask] = HostTensor.Of(second, mask.Shape);
        }
        if (_reference is not null)
            batch[TokenLossGraph.ReferenceLogProbs] = HostTensor.Of(
                Enumerable.Range(0, arity).SelectMany(slot => rows.Select(r => (float)_reference[r][slot])).ToArray(), sequences.Count);
        return batch;
    }

    public JsonObject SaveState() => _batches.SaveState();

    public void RestoreState(JsonObject state) => _batches.RestoreState(state);
}
