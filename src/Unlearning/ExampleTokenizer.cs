using AlignThenUnlearn.Models;

namespace AlignThenUnlearn.Unlearning;

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
