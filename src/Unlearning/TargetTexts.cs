using AlignThenUnlearn.Models;

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

/// <summary>Texts to training rows as RWKU's LLaMA-Factory makes them: a text + EOS cut at the cut-off, the EOS not a
/// label (<see cref="LabelledSequence.TextWithEos"/>); a message in the chat template, its answer + end-of-turn the labels.</summary>
public sealed class ExampleTokenizer(LlmTokenizer tokenizer, int cutoff, int targetNumber)
{
    readonly int _eos = tokenizer.EosId ?? throw new InvalidOperationException("the tokenizer has no EOS token, which RWKU's rows end with");

    public LabelledSequence Text(string text) => LabelledSequence.TextWithEos(tokenizer.Encode(text, addSpecialTokens: false).Ids, _eos, cutoff);

    /// <summary>The message in the model's chat template, ready for an answer.</summary>
    public int[] Prompt(string message)
    {
        var prompt = tokenizer.Encode(ChatTemplate.Format(tokenizer.ChatFormat, message)).Ids.ToArray();
        if (prompt.Length >= cutoff)
            throw new ArgumentException($"a prompt of target {targetNumber} has {prompt.Length} tokens, the cut-off {cutoff} leaves no answer");
        return prompt;
    }

    /// <summary>The prompt, then the answer + end-of-turn (the labels), cut at the cut-off.</summary>
    public LabelledSequence Answer(int[] prompt, string answer)
    {
        var endOfTurn = ChatTemplate.EndOfTurnToken(tokenizer.ChatFormat) is { } token ? tokenizer.Encode(token, addSpecialTokens: false).Ids.Single() : _eos;
        var tokens = tokenizer.Encode(answer, addSpecialTokens: false).Ids.Append(endOfTurn).Take(cutoff - prompt.Length).ToArray();
        return LabelledSequence.PromptAndAnswer(prompt, tokens);
    }
}
