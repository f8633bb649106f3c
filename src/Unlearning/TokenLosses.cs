using AlignThenUnlearn.Onnx;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Unlearning;

/// <summary>Token-level losses of a causal language model (cross-entropy training; the GA and NPO baselines read
/// the same log-probabilities), from primitive ops the autodiff differentiates. Float16 logits are widened first.</summary>
public static class TokenLosses
{
    /// <summary>log p(ids[:, t+1] | ids[:, ..t]) at positions t = 0 .. seq-2: [batch, seq-1] from logits [batch, seq, vocab]
    /// and ids [batch, seq]. The gather reads the full log-softmax with a label per position (the last position's label
    /// is a placeholder, its own token), and the small result is sliced, so the [batch, seq, vocab] tensor is never copied.</summary>
    public static string NextTokenLogProbabilities(GraphBuilder b, string logits, string inputIds)
    {
        var logProbs = b.Op("LogSoftmax", [Losses.As(b, logits, Losses.ComputeType(b, logits))], Attr.Int("axis", -1));
        var labels = b.Concat(1, SliceSeq(b, inputIds, 1, long.MaxValue), SliceSeq(b, inputIds, -1, long.MaxValue));
        // The labels have the ids' shape (shape inference cannot add up the two slices): declared, the log-probabilities keep
        // a symbolic length and their gradients static broadcasting.
        if (ShapeInference.Run(b.Graph)[inputIds] is { } ids) b.Graph.ValueInfo.Add(GraphBuilder.ValueInfo(labels, ids.ElementType, ids.Shape));
        var gathered = b.Op("GatherElements", [logProbs, b.Unsqueeze(labels, 2)], Attr.Int("axis", 2));
        return SliceSeq(b, b.Squeeze(gathered, 2), 0, -1);
    }

    /// <summary>Mean next-token cross-entropy over the positions t whose <paramref name="lossMask"/> [batch, seq] is 1
    /// (the label of position t is token t+1; the last position has none and never counts); 0 when no position counts.
    /// Micro-batches divide by the whole batch's label count (<see cref="Runtime.BatchCount.Labels"/>).</summary>
    public static string NextTokenCrossEntropy(GraphBuilder b, string logits, string inputIds, string lossMask)
    {
        var logProbs = NextTokenLogProbabilities(b, logits, inputIds);
        var type = Losses.TypeOf(b, logProbs);
        return b.Neg(Losses.WeightedMean(b, logProbs, SliceSeq(b, Losses.As(b, lossMask, type), 0, -1),
            Runtime.MicroBatching.TotalInput(b, Runtime.BatchCount.Labels, lossMask)));
    }

    /// <summary>x[:, start:end] along the sequence axis (1).</summary>
    static string SliceSeq(GraphBuilder b, string x, long start, long end) => b.Op("Slice", x, b.Ints(start), b.Ints(end), b.Ints(1));
}
