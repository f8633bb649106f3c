using AlignThenUnlearn.Runtime;

namespace AlignThenUnlearn.Evaluation;

/// <summary>Token log-probabilities of whole texts, for TruthfulQA (summed log-probability of an answer after its
/// prompt) and membership inference. An implementation encodes each text as <see cref="ITextGenerator"/> encodes a
/// prompt (BOS where the tokenizer adds one) and runs the model once over it; results are in text order and do not
/// depend on batching.</summary>
public interface ITokenScorer
{
    IReadOnlyList<TokenLogProbs> ScoreTexts(IReadOnlyList<string> texts);

    /// <summary>How many tokens <paramref name="text"/> encodes to (with the BOS where one is added).</summary>
    int TokenCount(string text);
}
