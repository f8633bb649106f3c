namespace AlignThenUnlearn.Unlearning;

/// <summary>NPO (RWKU's npo trainer): the forget corpus as GA reads it, each row compared with the starting model's
/// log-probability; beta from the preset (RWKU's 0.2 when absent).</summary>
public sealed class NegativePreferenceOptimization : TokenLossMethod
{
    public const string Id = "npo";
    public override string Name => Id;
    public override string DisplayName => "NPO";
    public override string Summary => "negative preference optimization on the forget corpus";
    public override bool NeedsReferenceLogProbs => true;

    public override List<LabelledSequence[]> Examples(MethodPreset preset, ITargetTexts texts, ExampleTokenizer tokens) =>
        ForgetTextRows(preset, texts, tokens);

    public override string Loss(TokenLossInputs x, MethodPreset preset) =>
        MethodLosses.Npo(x.Builder, x.Logits, x.InputIds, x.LossMask, x.ReferenceLogProbs(), preset.Beta ?? MethodLosses.NpoBeta);
}
