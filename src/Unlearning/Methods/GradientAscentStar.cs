namespace AlignThenUnlearn.Unlearning;

/// <summary>GA* (RWKU's GA on the passages): <see cref="GradientAscent"/>'s loss on the preset's forget corpus, which its
/// presets set to <c>passage.json</c>.</summary>
public sealed class GradientAscentStar : TokenLossMethod
{
    public const string Id = "ga-star";
    public override string Name => Id;
    public override string DisplayName => "GA*";
    public override string Summary => "gradient ascent on RWKU's passages";
    /// <summary>Not among the toy table's rows (GA stands for gradient ascent there).</summary>
    public override ToyVariants Toy => ToyVariants.None;

    public override List<LabelledSequence[]> Examples(MethodPreset preset, ITargetTexts texts, ExampleTokenizer tokens) =>
        ForgetTextRows(preset, texts, tokens);

    public override string Loss(TokenLossInputs x, MethodPreset preset) => MethodLosses.GradientAscent(x.Builder, x.Logits, x.InputIds, x.LossMask);
}
