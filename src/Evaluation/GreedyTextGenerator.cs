using AlignThenUnlearn.Models;
using AlignThenUnlearn.Runtime;

namespace AlignThenUnlearn.Evaluation;

/// <summary>Text in, text out over a <see cref="GreedyGenerator"/>: prompts are encoded with the tokenizer (BOS added
/// as Hugging Face adds it to a chat prompt or a text, <see cref="LlmTokenizer.EncodePrompt"/> with <paramref name="promptBos"/>;
/// added tokens such as <c>&lt;|user|&gt;</c> parsed), generation stops at
/// <paramref name="stopIds"/>, and the continuation is cut from the decoded text as RWKU's
/// <c>generate_completions</c> (from open-instruct) cuts it: the prompt and continuation are decoded together with
/// special tokens skipped, and the first as many characters as the decoded prompt has are dropped. (Decoding the
/// continuation alone would lose the space a SentencePiece token carries at the start of the output; after RWKU's
/// strip the two agree, but this way the unstripped text agrees too.)</summary>
public sealed class GreedyTextGenerator(GreedyGenerator generator, LlmTokenizer tokenizer, IReadOnlyCollection<int> stopIds,
    DecodingMode mode = DecodingMode.KvCache, Sampling? sampling = null, PromptBos promptBos = PromptBos.Template) : ITextGenerator, INextTokenScorer, ITokenScorer
{
    public IReadOnlyCollection<int> StopIds => stopIds;

    /// <summary>Continuations, greedy unless the generator was made with <see cref="Sampling"/> (then row i of a call draws
    /// from stream i of its seed).</summary>
    public IReadOnlyList<string> Generate(IReadOnlyList<string> prompts, int maxNewTokens)
    {
        var encoded = Encode(prompts);
        var continuations = generator.Generate(encoded, maxNewTokens, stopIds, mode, sampling: sampling);
        return [.. encoded.Select((prompt, i) => ContinuationText(prompt, continuations[i].Tokens))];
    }

    public IReadOnlyList<float[]> NextTokenLogits(IReadOnlyList<string> prompts, IReadOnlyList<int> candidateTokenIds) =>
        generator.NextTokenLogits(Encode(prompts), candidateTokenIds);

    public IReadOnlyList<TokenLogProbs> ScoreTexts(IReadOnlyList<string> texts) => generator.ScoreTokens(Encode(texts));

    public int TokenCount(string text) => tokenizer.EncodeToIds(text).Length;

    List<IReadOnlyList<int>> Encode(IReadOnlyList<string> prompts) => [.. prompts.Select(p => (IReadOnlyList<int>)tokenizer.EncodePrompt(p, promptBos))];

    /// <summary>Python's <c>output[len(prompt):]</c> on the decoded texts (lengths in code points, as Python counts).</summary>
    public string ContinuationText(IReadOnlyList<int> prompt, IReadOnlyList<int> continuation)
    {
        var whole = tokenizer.Decode(prompt.Concat(continuation), skipSpecialTokens: true);
        var promptText = tokenizer.Decode(prompt, skipSpecialTokens: true);
        return PythonText.DropCodePoints(whole, PythonText.CodePointCount(promptText));
    }
}
