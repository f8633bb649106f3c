using AlignThenUnlearn.Onnx;

namespace AlignThenUnlearn.Models;

/// <summary>An embedding prediction head that can be emitted into a graph after the LLM's hidden state: it reads
/// [batch, seq, llm_hidden] and predicts [batch, seq, encoder_dim]. <c>training</c> selects the training lowering
/// (dropout active) over the inference one. <c>keyMask</c> ([batch, seq], 1 on real tokens; null: none) keeps padding
/// out of what a position may read from other positions, so that padding cannot change the outputs at real tokens.</summary>
public interface IPredictionHead
{
    IReadOnlyList<ParameterSpec> Parameters { get; }
    string Emit(GraphBuilder b, string hidden, bool training, string? keyMask = null);
}
