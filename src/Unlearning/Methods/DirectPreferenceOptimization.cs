namespace AlignThenUnlearn.Unlearning;

/// <summary>DPO (RWKU's dpo trainer) on the preset's pair corpus (<c>pair.json</c>; Phi-3: <c>pair_phi.json</c>): the prompt in the chat template, the chosen (invented) and
/// rejected (real) answers each + end-of-turn, labels on the answers; beta from the preset (LLaMA-Factory's 0.1 when absent).</summary>
public sealed class DirectPreferenceOptimization : TokenLossMethod
{
    public const string Id = "dpo";
    public override string Name => Id;
    public override string DisplayName => "DPO";
    public override string Summary => "direct preference optimization towards invented answers";
    public override bool NeedsReferenceLogProbs => true;
    /// <summary>The chosen and the rejected answer.</summary>
    public override int SequencesPerExample => 2;

    public override List<LabelledSequence[]> Examples(MethodPreset preset, ITargetTexts texts, ExampleTokenizer tokens) =>
        [.. texts.Pairs(preset.PairCorpus).Select(p => { var prompt = tokens.Prompt(p.Prompt); return new[] { tokens.Answer(prompt, p.Chosen), tokens.Answer(prompt, p.Rejected) }; })];

    public override string Loss(TokenLossInputs x, MethodPreset preset) =>
        MethodLosses.Dpo(x.Builder, x.Logits, x.InputIds, x.LossMask, x.ReferenceLogProbs(), preset.Beta ?? MethodLosses.DpoBeta);
}
