namespace AlignThenUnlearn.Unlearning;

/// <summary>ICU (RWKU's use_prompt): no training; the model as it is, asked with RWKU's unlearning prompt about the
/// target before every question.</summary>
public sealed class InContextUnlearning : PromptingMethod
{
    public const string Id = "icu";
    public override string Name => Id;
    public override string DisplayName => "ICU";
    public override string Summary => "no training; RWKU's unlearning prompt before every question";
}
