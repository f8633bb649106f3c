namespace AlignThenUnlearn.Unlearning;

/// <summary>GradDiff (open-unlearning's): GA on each forget text plus cross-entropy on a retain text trained with it.
/// The retain corpus is the forget-corpus texts (same file) of <see cref="MethodPreset.RetainTargets"/> other targets
/// drawn by the seed (RWKU ships no neighbour texts; other people's biographies are the nearest "retain" corpus),
/// cycled in a seeded order.</summary>
public sealed class GradientDifference : TokenLossMethod
{
    public const string Id = "graddiff";
    public override string Name => Id;
    public override string DisplayName => "GradDiff";
    public override string Summary => "gradient ascent on the forget corpus, descent on other targets' texts";
    public override bool HasRetainRows => true;

    public override List<LabelledSequence[]> Examples(MethodPreset preset, ITargetTexts texts, ExampleTokenizer tokens)
    {
        var forget = texts.ForgetTexts(preset.ForgetCorpus);
        var retain = texts.OtherTargetsTexts(preset.ForgetCorpus, preset.RetainTargets, preset.Seed);
        if (retain.Count == 0) throw new InvalidOperationException($"GradDiff needs other targets' texts as its retain corpus, and '{texts.Source}' holds only target {texts.TargetNumber}");
        var order = new Runtime.DataOrder(retain.Count, preset.Seed + 1).Permutation(0);
        return [.. forget.Select((t, i) => new[] { tokens.Text(t), tokens.Text(retain[order[i % retain.Count]]) })];
    }

    public override string Loss(TokenLossInputs x, MethodPreset preset) =>
        MethodLosses.GradientDifference(x.Builder, x.Logits, x.InputIds, x.LossMask, x.RetainMask());
}
