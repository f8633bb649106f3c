using AlignThenUnlearn.Models;
using AlignThenUnlearn.Unlearning;

namespace AlignThenUnlearn.Tests.Unlearning;

/// <summary>Windows worked out by hand on texts whose token boundaries differ between the LLM and the encoder.</summary>
public class FutureWindowsTests
{
    const int Pad = 0;

    [Fact]
    public void Split_words_and_punctuation()
    {
        // "Stephen King's" : LLM tokens "Step"[0,4) "hen"[4,7) " King"[7,12) "'s"[12,14);
        // encoder pieces "stephen"[0,7)=11 "king"[8,12)=12 "'"[12,13)=13 "s"[13,14)=14.
        TokenSpan[] llm = [new(0, 4), new(4, 7), new(7, 12), new(12, 14)];
        int[] ids = [11, 12, 13, 14];
        (int, int)[] spans = [(0, 7), (8, 12), (12, 13), (13, 14)];
        var w = FutureWindows.Build(llm, ids, spans, size: 2, Pad);
        // "Step" ends at 4: "stephen" ends at 7 > 4, so the window starts inside the split word.
        Assert.Equal([11, 12], w.Windows[0]);
        Assert.Equal([12, 13], w.Windows[1]);   // "hen" ends at 7: "stephen" (end 7) is not after it
        Assert.Equal([13, 14], w.Windows[2]);   // " King" ends at 12: "'" ends at 13
        Assert.Equal([Pad, Pad], w.Windows[3]);  // nothing ends after 14
        Assert.Equal([true, true, true, false], w.Full);
    }

    [Fact]
    public void Bos_sees_the_text_from_its_start_and_short_windows_are_padded()
    {
        // BOS has an empty span at 0; "café" is one LLM token [0,4) and the encoder's "cafe"[0,4) plus "!"[4,5).
        TokenSpan[] llm = [new(0, 0), new(0, 4), new(4, 5)];
        int[] ids = [21, 22];
        (int, int)[] spans = [(0, 4), (4, 5)];
        var w = FutureWindows.Build(llm, ids, spans, size: 3, Pad);
        Assert.Equal([21, 22, Pad], w.Windows[0]);
        Assert.Equal([22, Pad, Pad], w.Windows[1]);
        Assert.Equal([Pad, Pad, Pad], w.Windows[2]);
        Assert.Equal([false, false, false], w.Full);
    }

    [Fact]
    public void Multi_unit_characters_count_in_utf16_positions_on_both_sides()
    {
        // "a😀b": the emoji is two UTF-16 units [1,3). LLM bytes of the emoji all span [1,3); the encoder has
        // "a"[0,1) "[UNK]"[1,3) "b"[3,4).
        TokenSpan[] llm = [new(0, 1), new(1, 3), new(1, 3), new(3, 4)];
        int[] ids = [31, 100, 32];
        (int, int)[] spans = [(0, 1), (1, 3), (3, 4)];
        var w = FutureWindows.Build(llm, ids, spans, size: 1, Pad);
        Assert.Equal([[100], [32], [32], [Pad]], w.Windows);
    }

    [Fact]
    public void Incremental_scan_equals_the_rule_restated_per_token()
    {
        // The scan reuses its position across tokens; restating the rule for each token independently must agree.
        TokenSpan[] llm = [new(0, 3), new(3, 7), new(7, 13), new(13, 14)];
        int[] ids = [1, 2, 3, 4, 5];
        (int, int)[] spans = [(0, 3), (4, 7), (8, 11), (11, 13), (13, 14)];
        var w = FutureWindows.Build(llm, ids, spans, size: 2, Pad);
        for (int i = 0; i < llm.Length; i++)
        {
            var expected = ids.Where((_, k) => spans[k].Item2 > llm[i].End).Take(2).ToList();
            while (expected.Count < 2) expected.Add(Pad);
            Assert.Equal(expected, w.Windows[i]);
        }
    }
}
