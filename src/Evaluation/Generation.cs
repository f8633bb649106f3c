namespace AlignThenUnlearn.Evaluation;

/// <summary>Greedy text generation for RWKU's probes. An implementation encodes each prompt (the full chat-formatted
/// text, with the BOS where the tokenizer adds one), decodes greedily for at most <c>maxNewTokens</c> tokens, stops
/// a prompt at its stop ids (RWKU's: <see cref="RwkuPrompts.StopIds"/>), and returns the continuation only, decoded with special tokens skipped and
/// not yet stripped. Results are in prompt order and must not depend on how prompts are batched.</summary>
public interface ITextGenerator
{
    IReadOnlyList<string> Generate(IReadOnlyList<string> prompts, int maxNewTokens);
}

/// <summary>Next-token logits after each prompt, for MMLU: the implementation encodes each prompt as
/// <see cref="ITextGenerator"/> does, runs the model once, and returns, per prompt, the logits of the last position
/// at <c>candidateTokenIds</c> (in that order).</summary>
public interface INextTokenScorer
{
    IReadOnlyList<float[]> NextTokenLogits(IReadOnlyList<string> prompts, IReadOnlyList<int> candidateTokenIds);
}
