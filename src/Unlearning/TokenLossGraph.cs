using AlignThenUnlearn.Autodiff;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Onnx;
using AlignThenUnlearn.Runtime;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Unlearning;

/// <summary>The inputs of a token-level loss in its joint graph: the logits, <c>input_ids</c> and <c>loss_mask</c>, and
/// on request (a method's loss asks for what it reads) <see cref="TokenLossGraph.RetainMask"/> and
/// <see cref="TokenLossGraph.ReferenceLogProbs"/>.</summary>
public sealed class TokenLossInputs
{
    readonly Func<string> _retainMask, _referenceLogProbs;
    string? _retain, _reference;

    internal TokenLossInputs(GraphBuilder builder, string logits, string inputIds, string lossMask, Func<string> retainMask, Func<string> referenceLogProbs) =>
        (Builder, Logits, InputIds, LossMask, _retainMask, _referenceLogProbs) = (builder, logits, inputIds, lossMask, retainMask, referenceLogProbs);

    public GraphBuilder Builder { get; }
    /// <summary>[batch, seq, vocab].</summary>
    public string Logits { get; }
    /// <summary>[batch, seq].</summary>
    public string InputIds { get; }
    /// <summary>[batch, seq], in <see cref="TokenLosses"/>'s convention.</summary>
    public string LossMask { get; }
    /// <summary>[batch, seq]: the retain rows' labels (GradDiff).</summary>
    public string RetainMask() => _retain ??= _retainMask();
    /// <summary>[batch]: the frozen model's summed log-probabilities of each row (NPO, DPO).</summary>
    public string ReferenceLogProbs() => _reference ??= _referenceLogProbs();
}

/// <summary>The joint graph of a token-level method: the decoder's training lowering with logits, the method's loss on
/// inputs <c>input_ids</c> and <c>loss_mask</c> (as <see cref="TokenBatcher"/> and <see cref="LabelledBatch"/> make them),
/// plus <see cref="RetainMask"/> and <see cref="ReferenceLogProbs"/> [batch] when the loss asks for them
/// (<see cref="TokenLossInputs"/>), and the gradients of the trainable parameters.</summary>
public sealed record TokenLossGraph(DecoderGraph Decoder, GradientGraph Training, string Loss)
{
    public const string LossName = "loss", RetainMask = "retain_mask", ReferenceLogProbs = "reference_log_probs";

    /// <param name="decoderOptions">The lowering's options (LoRA adapters, element type); logits are always on.</param>
    /// <param name="loss">Builds the loss from its inputs (a <see cref="TokenLossMethod"/>'s, or cross-entropy for pre-training).</param>
    public static TokenLossGraph Build(DecoderConfig config, Func<TokenLossInputs, string> loss, IEnumerable<string> trainable, DecoderGraphOptions? decoderOptions = null)
    {
        var decoder = DecoderBuilder.Build(config, (decoderOptions ?? new DecoderGraphOptions()) with { Logits = true });
        var forward = decoder.Model.Clone();
        // The decoder's own outputs (the logits) are no outputs of a training step: ONNX Runtime would copy them out and
        // keep them (a [batch, seq, vocab] copy per step).
        forward.Graph.Output.Clear();
        var b = new GraphBuilder(forward.Graph);
        string Row(string name, DataType type) => b.Input(name, type, DecoderGraph.Batch);
        string Mask(string name) => b.Input(name, DataType.Float, DecoderGraph.Batch, DecoderGraph.Sequence);
        string logits = decoder.Logits!, ids = DecoderGraph.InputIds, mask = Mask(TokenBatcher.LossMask);
        var value = loss(new TokenLossInputs(b, logits, ids, mask, () => Mask(RetainMask), () => Row(ReferenceLogProbs, DataType.Float)));
        var output = b.Node("Identity", [value], 1, name: "Loss", outputNames: [LossName])[0];
        b.Output(output, Losses.TypeOf(b, output));
        return new TokenLossGraph(decoder, Gradients.Build(forward, output, trainable), output);
    }
}
