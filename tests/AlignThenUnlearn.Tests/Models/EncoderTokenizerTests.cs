using AlignThenUnlearn.Models;
using AlignThenUnlearn.Tests.Support;

namespace AlignThenUnlearn.Tests.Models;

/// <summary>WordPiece splits of the real all-MiniLM-L6-v2 vocabulary worked out by hand from BERT's rules (Hugging Face's
/// fast BertNormalizer, BertPreTokenizer and WordPiece), ids looked up as line numbers of vocab.txt, and spans in the
/// ORIGINAL text.</summary>
public sealed class EncoderTokenizerTests(MiniLmFolder minilm) : IClassFixture<MiniLmFolder>
{
    readonly EncoderTokenizer _tokenizer = EncoderTokenizer.Load(minilm.Path, new EncoderSettings());

    void AssertPieces(string text, params (string Piece, int Start, int End)[] expected)
    {
        var (ids, spans) = _tokenizer.Pieces(text);
        Assert.Equal(expected.Select(e => minilm.Vocab(e.Piece)), ids);
        Assert.Equal(expected.Select(e => (e.Start, e.End)), spans);
    }

    [Fact]
    public void Published_bert_uncased_ids_and_the_bert_readme_split()
    {
        // bert-base-uncased's widely published encoding of "Hello, world!" (all-MiniLM-L6-v2 uses that vocabulary).
        Assert.Equal([101, 7592, 1010, 2088, 999, 102], _tokenizer.EncodeWithSpecialTokens("Hello, world!", 256));
        // The example of BERT's README: John Johanson's house -> john johan ##son ' s house.
        AssertPieces("John Johanson's house", ("john", 0, 4), ("johan", 5, 10), ("##son", 10, 13), ("'", 13, 14), ("s", 14, 15), ("house", 16, 21));
    }

    [Fact]
    public void Line_breaks_and_tabs_separate_words()
    {
        AssertPieces("line one\nline two\r\nthree\tx", ("line", 0, 4), ("one", 5, 8), ("line", 9, 13), ("two", 14, 17), ("three", 19, 24), ("x", 25, 26));
    }

    [Fact]
    public void Cjk_ideographs_are_words_of_their_own_and_keep_their_original_positions()
    {
        // 東 and 京 are CJK ideographs (each its own word); タワー is Katakana, one word split by WordPiece.
        AssertPieces("東京タワー is tall", ("東", 0, 1), ("京", 1, 2), ("タ", 2, 3), ("##ワ", 3, 4), ("##ー", 4, 5), ("is", 6, 8), ("tall", 9, 13));
    }

    [Fact]
    public void Accents_are_stripped_and_a_removed_mark_stays_in_the_span_of_its_letter()
    {
        AssertPieces("Stephen King's Café", ("stephen", 0, 7), ("king", 8, 12), ("'", 12, 13), ("s", 13, 14), ("cafe", 15, 19));
        // Decomposed: e + U+0301 (two UTF-16 units); lait is not in the vocabulary: lai ##t.
        AssertPieces("Cafe\u0301 au lait", ("cafe", 0, 5), ("au", 6, 8), ("lai", 9, 12), ("##t", 12, 13));
        // İ decomposes to I + U+0307; the dot is stripped and I lower-cased.
        AssertPieces("İstanbul", ("istanbul", 0, 8));
    }

    [Fact]
    public void Characters_outside_the_vocabulary_make_their_whole_word_unknown()
    {
        // The emoji is two UTF-16 units; "a😀b" is one word (an emoji is neither whitespace nor punctuation), and no
        // piece covers "##😀b", so the whole word is [UNK].
        AssertPieces("a😀b c", ("[UNK]", 0, 4), ("c", 5, 6));
        AssertPieces("x 😀 y", ("x", 0, 1), ("[UNK]", 2, 4), ("y", 5, 6));
        // ½ (No) and ﬁ (a ligature, unchanged by canonical decomposition) are vocabulary entries of their own.
        AssertPieces("½ ﬁne", ("½", 0, 1), ("ﬁ", 2, 3), ("##ne", 3, 5));
        // Longer than 100 characters: [UNK] without trying pieces.
        var (ids, spans) = _tokenizer.Pieces(new string('a', 101));
        Assert.Equal([minilm.Vocab("[UNK]")], ids);
        Assert.Equal([(0, 101)], spans);
        (ids, spans) = _tokenizer.Pieces(new string('a', 100));
        Assert.DoesNotContain(minilm.Vocab("[UNK]"), ids);
        Assert.Equal((0, 100), (spans[0].Start, spans[^1].End));
    }

    [Fact]
    public void Control_and_format_characters_are_removed_and_join_the_preceding_character()
    {
        // U+200B (zero-width space, Cf) joins "do" and "g"; U+FFFD and NUL are removed; the removed character belongs to
        // the span of the character before it (x spans [5,7)).
        AssertPieces("do\u200bg x\ufffdy\0", ("dog", 0, 4), ("x", 5, 7), ("##y", 7, 9));
    }

    [Fact]
    public void Ascii_symbols_and_unicode_punctuation_are_split_off()
    {
        // $ and + are ASCII punctuation for BERT although Unicode calls them symbols; the hyphen and the dots split too.
        AssertPieces("$5+3 über-cool...", ("$", 0, 1), ("5", 1, 2), ("+", 2, 3), ("3", 3, 4), ("uber", 5, 9), ("-", 9, 10), ("cool", 10, 14), (".", 14, 15), (".", 15, 16), (".", 16, 17));
    }

    [Fact]
    public void Truncation_keeps_the_special_tokens()
    {
        int[] expected = [minilm.Vocab("[CLS]"), minilm.Vocab("line"), minilm.Vocab("one"), minilm.Vocab("[SEP]")];
        Assert.Equal(expected, _tokenizer.EncodeWithSpecialTokens("line one line two", 4));
    }

    [Fact]
    public void Cased_vocabularies_and_other_special_token_names_follow_the_settings()
    {
        using var temp = new TempFolder();
        // An MPNet-style vocabulary: <s> </s> <pad> <unk> instead of BERT's bracketed names.
        temp.Write(EncoderFolder.VocabFile, string.Join("\n", "<s>", "<pad>", "</s>", "<unk>", "Hello", "hello", "world", "W", "##orld"));
        var mpnet = new EncoderSettings(LowerCase: false, ClsToken: "<s>", SepToken: "</s>", PadToken: "<pad>", UnkToken: "<unk>");
        var cased = EncoderTokenizer.Load(temp.Path, mpnet);
        Assert.Equal([0, 4, 7, 8, 2], cased.EncodeWithSpecialTokens("Hello World", 16));
        Assert.Equal(1, cased.PadId);
        Assert.Equal([0, 5, 6, 2], EncoderTokenizer.Load(temp.Path, mpnet with { LowerCase = true }).EncodeWithSpecialTokens("Hello World", 16));
        // Without lower-casing, accents stay unless strip_accents says otherwise.
        Assert.Equal([3], cased.Pieces("Hellö").Ids);
        Assert.Equal([4], EncoderTokenizer.Load(temp.Path, mpnet with { StripAccents = true }).Pieces("Hellö").Ids);
        var missing = Assert.Throws<ModelFormatException>(() => EncoderTokenizer.Load(temp.Path, new EncoderSettings()));
        Assert.Contains("[CLS]", missing.Message);
    }
}
