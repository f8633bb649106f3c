using AlignThenUnlearn.Autodiff;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Onnx;
using AlignThenUnlearn.Runtime;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Unlearning;

/// <summary>The loss of a token-level method (<see cref="MethodLosses"/>); GA and GA* differ only in their data.</summary>
public enum TokenLoss
{
    /// <summary>Next-token cross-entropy on the labels (pre-training; RT, whose labels are the refusal answers).</summary>
    CrossEntropy,
    GradientAscent,
    /// <summary>GA on the forget rows plus cross-entropy on the retain rows (<see cref="TokenLossGraph.RetainMask"/>).</summary>
    GradientDifference,
    /// <summary>Needs <see cref="TokenLossGraph.ReferenceLogProbs"/>.</summary>
    Npo,
    /// <summary>Chosen rows first, rejected rows after them; needs <see cref="TokenLossGraph.ReferenceLogProbs"/>.</summary>
    Dpo,
}

/// <summary>The joint graph of a token-level method: the decoder's training lowering with logits, the method's loss on
/// inputs <c>input_ids</c> and <c>loss_mask</c> (as <see cref="TokenBatcher"/> and <see cref="LabelledBatch"/> make them),
/// plus <see cref="RetainMask"/> for GradDiff and <see cref="ReferenceLogProbs"/> [batch] for NPO and DPO, and the
/// gradients of the trainable parameters.</summary>
public sealed record TokenLossGraph(DecoderGraph Decoder, GradientGraph Training, string Loss)
{
    public const string LossName = "loss", RetainMask = "retain_mask", ReferenceLogProbs = "reference_log_probs";

    /// <param name="decoderOptions">The lowering's options (LoRA adapters, element type); logits are always on.</param>
    /// <param name="beta">NPO's or DPO's beta (null: RWKU's, <see cref="MethodLosses.NpoBeta"/> and <see cref="MethodLosses.DpoBeta"/>).</param>
    public static TokenLossGraph Build(DecoderConfig config, TokenLoss loss, IEnumerable<string> trainable, DecoderGraphOptions? decoderOptions = null,
        double? beta = null)
    {
        var decoder = DecoderBuilder.Build(config, (decoderOptions ?? new DecoderGraphOptions()) with { Logits = true });
        var forward = decoder.Model.Clone();
        var b = new GraphBuilder(forward.Graph);
        string Row(string name, DataType type) => b.Input(name, type, DecoderGraph.Batch);
        string Mask(string name) => b.Input(name, DataType.Float, DecoderGraph.Batch, DecoderGraph.Sequence);
        string logits = decoder.Logits!, ids = DecoderGraph.InputIds, mask = Mask(TokenBatcher.LossMask);
        var value = loss switch
        {
            TokenLoss.CrossEntropy => MethodLosses.RejectionTuning(b, logits, ids, mask),
            TokenLoss.GradientAscent => MethodLosses.GradientAscent(b, logits, ids, mask),
            TokenLoss.GradientDifference => MethodLosses.GradientDifference(b, logits, ids, mask, Mask(RetainMask)),
            TokenLoss.Npo => MethodLosses.Npo(b, logits, ids, mask, Row(ReferenceLogProbs, DataType.Float), beta ?? MethodLosses.NpoBeta),
            TokenLoss.Dpo => MethodLosses.Dpo(b, logits, ids, mask, Row(ReferenceLogProbs, DataType.Float), beta ?? MethodLosses.DpoBeta),
            _ => throw new ArgumentOutOfRangeException(nameof(loss), loss, "no such token loss"),
        };
        var output = b.Node("Identity", [value], 1, name: "Loss", outputNames: [LossName])[0];
        b.Output(output, Losses.TypeOf(b, output));
        return new TokenLossGraph(decoder, Gradients.Build(forward, output, trainable), output);
    }
}
