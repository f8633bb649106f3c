namespace AlignThenUnlearn.Unlearning;

/// <summary>A DPO row: the prompt, the chosen answer and the rejected one.</summary>
public sealed record PreferencePair(string Prompt, string Chosen, string Rejected);

/// <summary>An RT row: a question about the target and a refusal.</summary>
public sealed record Refusal(string Question, string Answer);

/// <summary>The texts of one target that a method trains on, as the dataset's files hold them (RWKU's reader in
/// Evaluation implements it), so that a method says what it reads without knowing the files.</summary>
public interface ITargetTexts
{
    int TargetNumber { get; }
    /// <summary>Where the texts come from, for messages (the dataset's folder).</summary>
    string Source { get; }
    /// <summary>The texts of the target's forget corpus in <paramref name="fileName"/> (positive.json, passage.json, ...).</summary>
    IReadOnlyList<string> ForgetTexts(string fileName);
    /// <summary>The same file's texts of <paramref name="count"/> other targets drawn by <paramref name="seed"/>, in the
    /// order drawn (fewer when the dataset has fewer; none when it holds only this target).</summary>
    IReadOnlyList<string> OtherTargetsTexts(string fileName, int count, int seed);
    IReadOnlyList<PreferencePair> Pairs();
    IReadOnlyList<Refusal> Refusals();
}
