namespace AlignThenUnlearn.Unlearning;

/// <summary>Align-then-Unlearn (DESIGN.md section 1): its own run kind (<see cref="AtuRun"/>, from an
/// <see cref="AtuPreset"/>) on the target's embedding and the windows of its forget corpus.</summary>
public sealed class AlignThenUnlearnMethod : UnlearningMethod
{
    public const string Id = "atu";
    public override string Name => Id;
    public override string DisplayName => "ATU";
    public override string Summary => "Align-then-Unlearn";
    public override string Label(bool lora) => DisplayName;
    public override IReadOnlyList<string> PresetNames => AtuPreset.Builtin;
}
