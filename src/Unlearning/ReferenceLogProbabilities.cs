using AlignThenUnlearn.Models;
using AlignThenUnlearn.Onnx;
using AlignThenUnlearn.Runtime;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Unlearning;

/// <summary>The frozen reference model's summed log-probability of each training sequence (NPO's and DPO's <c>ref</c>).
/// They depend only on the data, so they are computed once, before the first step, from the very parameters that are
/// about to be trained: one forward-only session over the data in order, and no second copy of the weights is ever
/// resident. RWKU's trainers run the reference model on every batch instead; without dropout (RWKU's DPO disables it,
/// its NPO model runs in eval mode for the reference) both give the same values.</summary>
public static class ReferenceLogProbabilities
{
    public const string Output = "sequence_log_probs";

    /// <summary>The decoder's training lowering with logits, and the sum of the masked next-token log-probabilities of each
    /// row as <see cref="Output"/> [batch].</summary>
    public static global::Onnx.ModelProto Graph(DecoderConfig config)
    {
        var decoder = DecoderBuilder.Build(config, new DecoderGraphOptions { Logits = true });
        var model = decoder.Model.Clone();
        var b = new GraphBuilder(model.Graph);
        var mask = b.Input(TokenBatcher.LossMask, DataType.Float, DecoderGraph.Batch, DecoderGraph.Sequence);
        var sums = MethodLosses.SequenceLogProbabilities(b, decoder.Logits!, DecoderGraph.InputIds, mask);
        b.Node("Identity", [sums], 1, name: "SequenceLogProbs", outputNames: [Output]);
        b.Output(Output, DataType.Float, DecoderGraph.Batch);
        // Only the sums leave the session: the logits stay an intermediate value the planner frees.
        model.Graph.Output.Remove(model.Graph.Output.Single(o => o.Name == decoder.Logits));
        return model;
    }

    /// <summary>The summed label log-probabilities of every sequence under the parameters in <paramref name="store"/>, in
    /// the order given, <paramref name="batchSize"/> sequences per run.</summary>
    public static double[] Compute(ParameterStore store, DecoderConfig config, IReadOnlyList<LabelledSequence> sequences, int batchSize, int padId = 0)
    {
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "must be positive");
        using var session = new ForwardSession(store, Graph(config));
        var result = new double[sequences.Count];
        for (int start = 0; start < sequences.Count; start += batchSize)
        {
            var (ids, mask) = LabelledSequence.Batch([.. sequences.Skip(start).Take(batchSize)], padId);
            var sums = session.Run(new Dictionary<string, HostTensor> { [TokenBatcher.InputIds] = ids, [TokenBatcher.LossMask] = mask }, [Output])[Output];
            sums.AsDoubles().CopyTo(result, start);
        }
        return result;
    }
}
