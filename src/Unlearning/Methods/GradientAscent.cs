namespace AlignThenUnlearn.Unlearning;

/// <summary>GA (RWKU's ga trainer): descends minus the next-token cross-entropy of the forget corpus (the preset's
/// <c>forget_corpus</c>, RWKU's <c>positive.json</c>), each text + EOS one row.</summary>
public sealed class GradientAscent : TokenLossMethod
{
    public const string Id = "ga";
    public override string Name => Id;
    public override string DisplayName => "GA";
    public override string Summary => "gradient ascent on the forget corpus";
    public override ToyVariants Toy => ToyVariants.Full | ToyVariants.Lora;

    public override List<LabelledSequence[]> Examples(MethodPreset preset, ITargetTexts texts, ExampleTokenizer tokens) =>
        ForgetTextRows(preset, texts, tokens);

    public override string Loss(TokenLossInputs x, MethodPreset preset) => MethodLosses.GradientAscent(x.Builder, x.Logits, x.InputIds, x.LossMask);
}
