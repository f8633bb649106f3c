namespace AlignThenUnlearn.Models;

/// <summary>A model computed NaN or infinite logits for a prompt. Greedy decoding would read them as a token (the
/// first, say) and an evaluation would score that as an answer, so the prompt is named instead; whoever handed the
/// prompts over (<see cref="Prompt"/> indexes their list) names what it was.</summary>
public sealed class NonFiniteLogitsException(int prompt, int step, string? detail = null, Exception? inner = null)
    : Exception(detail ?? $"the model's logits for prompt {prompt} are not finite (NaN or infinity) at generation step {step}; its weights or configuration are broken", inner)
{
    public int Prompt { get; } = prompt;
    public int Step { get; } = step;

    /// <summary>The same failure for the prompt <paramref name="offset"/> places further on in a longer list.</summary>
    public NonFiniteLogitsException Shifted(int offset) => new(Prompt + offset, Step, null, this);
}
