using AlignThenUnlearn.Models;
using AlignThenUnlearn.Tests.Support;
using AlignThenUnlearn.Unlearning;

namespace AlignThenUnlearn.Tests.Unlearning;

/// <summary>Windows worked out by hand on texts whose token boundaries differ between the LLM and the encoder.</summary>
public class FutureWindowsTests(MiniLmFolder minilm) : IClassFixture<MiniLmFolder>
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

    [Fact]
    public void Real_encoder_pieces_of_a_decomposed_accent_an_emoji_cjk_and_a_line_break()
    {
        // "Cafe\u0301 😀東京\nok!": C0 a1 f2 e3 U+0301 4, space 5, the emoji 6-7 (two UTF-16 units), 東 8, 京 9, \n 10, o11 k12 !13.
        // Encoder (the real MiniLM WordPiece): cafe[0,5) (the stripped accent belongs to its e), [UNK][6,8) (the emoji is a
        // word of its own because the ideograph after it is split off), 東[8,9), 京[9,10), ok[11,13), ![13,14).
        const string text = "Cafe\u0301 😀東京\nok!";
        var tokenizer = EncoderTokenizer.Load(minilm.Path, new EncoderSettings());
        var (ids, spans) = tokenizer.Pieces(text);
        int cafe = minilm.Vocab("cafe"), unk = minilm.Vocab("[UNK]"), tokyo1 = minilm.Vocab("東"), tokyo2 = minilm.Vocab("京"), ok = minilm.Vocab("ok"), bang = minilm.Vocab("!");
        Assert.Equal([cafe, unk, tokyo1, tokyo2, ok, bang], ids);
        Assert.Equal([(0, 5), (6, 8), (8, 9), (9, 10), (11, 13), (13, 14)], spans);

        // LLM tokens as a byte-fallback SentencePiece model might cut the text: BOS, "Caf", "e + accent", " ", the emoji's
        // four bytes (each spanning the whole character), "東京" as one token, "\n", "ok!".
        TokenSpan[] llm = [new(0, 0), new(0, 3), new(3, 5), new(5, 6), new(6, 8), new(6, 8), new(6, 8), new(6, 8), new(8, 10), new(10, 11), new(11, 14)];
        int pad = tokenizer.PadId;
        var w = FutureWindows.Build(llm, ids, spans, size: 3, pad);
        int[][] expected =
        [
            [cafe, unk, tokyo1],     // BOS ends at 0
            [cafe, unk, tokyo1],     // "Caf" ends at 3, inside cafe
            [unk, tokyo1, tokyo2],   // the accented e ends at 5 with cafe: cafe is not after it
            [unk, tokyo1, tokyo2],   // the space
            [tokyo1, tokyo2, ok], [tokyo1, tokyo2, ok], [tokyo1, tokyo2, ok], [tokyo1, tokyo2, ok],   // the emoji's bytes
            [ok, bang, pad],         // "東京" ends at 10, after both ideographs
            [ok, bang, pad],         // "\n"
            [pad, pad, pad],         // "ok!" ends the text
        ];
        Assert.Equal(expected, w.Windows);
        Assert.Equal([true, true, true, true, true, true, true, true, false, false, false], w.Full);
    }
}
