using AlignThenUnlearn.Models;

namespace AlignThenUnlearn.Unlearning;

/// <summary>The future window of each LLM token: the first N encoder word pieces that end after the token does
/// (character offsets align the two tokenizations), padded with the encoder's pad id and marked not full when the
/// text ends first. Windows are embedded as bare pieces (no special tokens, all-ones mask) by the encoder.</summary>
public sealed record FutureWindows(int[][] Windows, bool[] Full)
{
    /// <param name="llmSpans">Character span of each LLM token (an added BOS has an empty span at 0).</param>
    /// <param name="pieceSpans">Character span of each encoder word piece, in text order, special tokens excluded.</param>
    public static FutureWindows Build(IReadOnlyList<TokenSpan> llmSpans, IReadOnlyList<int> pieceIds, IReadOnlyList<(int Start, int End)> pieceSpans, int size, int padId)
    {
        if (pieceIds.Count != pieceSpans.Count) throw new ArgumentException("one span per encoder piece");
        var windows = new int[llmSpans.Count][];
        var full = new bool[llmSpans.Count];
        int first = 0;   // pieces ending at or before the current token's end never return: token ends do not decrease
        for (int i = 0; i < llmSpans.Count; i++)
        {
            int end = llmSpans[i].End;
            if (i > 0 && end < llmSpans[i - 1].End) first = 0;   // defensive: spans out of order restart the scan
            while (first < pieceSpans.Count && pieceSpans[first].End <= end) first++;
            int count = Math.Min(size, pieceSpans.Count - first);
            var window = new int[size];
            Array.Fill(window, padId);
            for (int k = 0; k < count; k++) window[k] = pieceIds[first + k];
            windows[i] = window;
            full[i] = count == size;
        }
        return new FutureWindows(windows, full);
    }
}
