namespace AlignThenUnlearn.Unlearning;

/// <summary>RT (RWKU's rt trainer) on <c>reject.json</c>: the question in the chat template, the refusal + end-of-turn
/// the labels, trained with cross-entropy.</summary>
public sealed class RejectionTuning : TokenLossMethod
{
    public const string Id = "rt";
    public override string Name => Id;
    public override string DisplayName => "RT";
    public override string Summary => "fine-tuning on refusals";

    public override List<LabelledSequence[]> Examples(MethodPreset preset, ITargetTexts texts, ExampleTokenizer tokens) =>
        [.. texts.Refusals().Select(r => new[] { tokens.Answer(tokens.Prompt(r.Question), r.Answer) })];

    public override string Loss(TokenLossInputs x, MethodPreset preset) => MethodLosses.RejectionTuning(x.Builder, x.Logits, x.InputIds, x.LossMask);
}
