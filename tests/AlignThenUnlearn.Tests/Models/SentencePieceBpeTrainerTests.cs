using AlignThenUnlearn.Models;
using AlignThenUnlearn.Tests.Support;

namespace AlignThenUnlearn.Tests.Models;

/// <summary>BPE training worked out by hand, and the written tokenizer folder read back by the loader.</summary>
public class SentencePieceBpeTrainerTests
{
    [Fact]
    public void Words_are_cut_at_spaces_character_classes_and_control_characters()
    {
        // Dummy prefix and spaces as ▁; "," and "2" are other classes than letters; the newline goes to byte
        // fallback, so "there" after it has no ▁.
        Assert.Equal(["▁Hi", ",", "▁you", "2", "there"], SentencePieceBpeTrainer.Words("Hi, you2\nthere"));
        Assert.Equal(["▁", "▁a"], SentencePieceBpeTrainer.Words(" a"));
    }

    [Fact]
    public void Merges_follow_pair_frequency_with_ordinal_ties()
    {
        // Words ▁ab x2, ▁abc x1. Pair counts (▁,a) 3, (a,b) 3, (b,c) 1: a tie that the ordinally smaller pair wins,
        // and 'a' (U+0061) < '▁' (U+2581), so "ab" first. Then (▁,ab) 3 > (ab,c) 1: "▁ab". Then (▁ab,c) 1: "▁abc".
        // Then every word is one piece. Characters follow, ordinally sorted.
        var pieces = SentencePieceBpeTrainer.Train(["ab ab", "abc"], maxPieces: 100);
        Assert.Equal([("ab", 0f), ("▁ab", -1f), ("▁abc", -2f), ("a", -3f), ("b", -4f), ("c", -5f), ("▁", -6f)], pieces);
        // A full vocabulary stops the merges: 4 characters + 1 merge.
        Assert.Equal(["ab", "a", "b", "c", "▁"], SentencePieceBpeTrainer.Train(["ab ab", "abc"], maxPieces: 5).Select(p => p.Piece));
    }

    [Fact]
    public void Written_folder_loads_as_a_phi3_chat_tokenizer_that_replays_the_merges()
    {
        using var folder = new TempFolder();
        var model = SentencePieceModel.LlamaLayout(SentencePieceBpeTrainer.Train(["ab ab", "abc"], maxPieces: 100));
        Phi3StyleTokenizerFiles.Write(folder.Path, model, addBos: true);
        var tokenizer = LlmTokenizer.Load(folder.Path);

        // Llama layout: the pieces above from id 259 (ab 259, ▁ab 260, ▁abc 261, a 262, b 263, c 264, ▁ 265), then the
        // chat tokens in Phi-3's order: <|endoftext|> 266, <|assistant|> 267, <|end|> 268, <|user|> 269.
        Assert.Equal(ChatFormat.Phi3, tokenizer.ChatFormat);
        Assert.Equal(270, tokenizer.VocabularySize);
        Assert.True(tokenizer.AddsBos);
        Assert.Equal(266, tokenizer.EosId);
        Assert.Equal(new[] { 266, 267, 268 }, tokenizer.StopIds.Order());
        // "▁abc▁ab": ab merges first everywhere, then ▁ab, then ▁abc.
        Assert.Equal([1, 261, 260], tokenizer.EncodeToIds("abc ab"));
        // <|user|> and <|end|> swallow the newline after them, and the text between gets the dummy prefix.
        Assert.Equal([1, 269, 260, 268, 267], tokenizer.EncodeChatPrompt("ab").Ids);
        // "d" is no piece: its byte, 3 + 0x64.
        Assert.Equal([1, 265, 3 + 'd'], tokenizer.EncodeToIds("d"));
    }
}
