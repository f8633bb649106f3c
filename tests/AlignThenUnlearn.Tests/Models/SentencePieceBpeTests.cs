using System.Text.Json;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Tests.Support;

namespace AlignThenUnlearn.Tests.Models;

/// <summary>SentencePiece BPE on one tiny vocabulary written in both forms a checkpoint ships it in: a
/// <c>tokenizer.model</c> (SentencePiece's rule: the adjacent pair whose concatenation is the best-scoring piece
/// merges first, the leftmost on ties) and the <c>tokenizer.json</c> that transformers' converter makes of it
/// (Hugging Face's rule: the pair listed first in "merges" merges first, the leftmost on ties). Every expected id is
/// worked out by hand below. Llama layout: &lt;unk&gt; 0, &lt;s&gt; 1, &lt;/s&gt; 2, byte b at 3 + b, then
/// <see cref="Pieces"/> from 259.</summary>
public class SentencePieceBpeTests
{
    static readonly string S2 = new('▁', 2), S4 = new('▁', 4), S8 = new('▁', 8), S16 = new('▁', 16);

    static readonly (string Piece, float Score)[] Pieces =
    [
        (S2, -1), ("aa", -2), (S4, -3), ("aaaa", -4), ("▁a", -5), (S8, -6), (S16, -7),
        ("bc", -8), ("ab", -8), // equal scores: a tie between two different pieces
        ("▁", -9), ("a", -10), ("b", -11), ("c", -12),
    ];

    static int Id(string piece)
    {
        int index = Array.FindIndex(Pieces, p => p.Piece == piece);
        return index >= 0 ? 259 + index : throw new ArgumentException($"'{piece}' is not in the test vocabulary.");
    }

    static int ByteId(int b) => 3 + b;

    /// <summary>transformers' <c>generate_merges</c> on <see cref="Pieces"/>: for each piece every split into two
    /// pieces, all sorted by score (best first), then by the lengths of the parts (longest first), then in vocabulary
    /// order. Each piece here has one such split (▁▁▁▁ = ▁▁+▁▁ but not ▁+▁▁▁, no ▁▁▁ piece; aaaa = aa+aa), and "bc"
    /// (id 266) comes before "ab" (id 267) at their shared score -8.</summary>
    static readonly (string Left, string Right)[] ConvertedMerges =
    [
        ("▁", "▁"), ("a", "a"), (S2, S2), ("aa", "aa"), ("▁", "a"), (S4, S4), (S8, S8), ("b", "c"), ("a", "b"),
    ];

    const string Config = """{"add_bos_token": true, "add_eos_token": false, "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "legacy": true}""";

    /// <summary>The model as <c>tokenizer.model</c> only; <c>legacy</c> true: every plain piece gets the dummy
    /// prefix, as SentencePiece itself does.</summary>
    static TempFolder ModelFolder(SentencePieceModel? model = null)
    {
        var folder = new TempFolder();
        (model ?? SentencePieceModel.LlamaLayout(Pieces)).Save(folder.File("tokenizer.model"));
        folder.Write("tokenizer_config.json", Config);
        return folder;
    }

    /// <summary>The same vocabulary as a Llama-2-style <c>tokenizer.json</c> only (Prepend "▁" and Replace " " by
    /// "▁" normalizers) or, with <paramref name="metaspace"/>, Mistral's newer Metaspace pre-tokenizer.</summary>
    internal static TempFolder JsonFolder(string? metaspace = null)
    {
        var vocabulary = new List<string> { "<unk>", "<s>", "</s>" };
        for (int b = 0; b < 256; b++) vocabulary.Add($"<0x{b:X2}>");
        vocabulary.AddRange(Pieces.Select(p => p.Piece));
        var vocabJson = string.Join(", ", vocabulary.Select((piece, id) => $"{JsonSerializer.Serialize(piece)}: {id}"));
        var mergesJson = string.Join(", ", ConvertedMerges.Select(m => $"[{JsonSerializer.Serialize(m.Left)}, {JsonSerializer.Serialize(m.Right)}]"));
        var added = string.Join(", ", new[] { "<unk>", "<s>", "</s>" }.Select((content, id) =>
            $$"""{"id": {{id}}, "content": "{{content}}", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}"""));
        var normalizer = metaspace is null
            ? """{"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]}"""
            : "null";
        var folder = new TempFolder();
        folder.Write("tokenizer.json", $$$"""
            {
              "version": "1.0",
              "added_tokens": [ {{{added}}} ],
              "normalizer": {{{normalizer}}},
              "pre_tokenizer": {{{metaspace ?? "null"}}},
              "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                                 "pair": [], "special_tokens": {}},
              "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"},
                          {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
              "model": {"type": "BPE", "dropout": null, "unk_token": "<unk>", "continuing_subword_prefix": null, "end_of_word_suffix": null,
                        "fuse_unk": true, "byte_fallback": true, "ignore_merges": false,
                        "vocab": { {{{vocabJson}}} }, "merges": [ {{{mergesJson}}} ]}
            }
            """);
        folder.Write("tokenizer_config.json", Config);
        return folder;
    }

    /// <summary>Both forms, loaded.</summary>
    static (LlmTokenizer Model, LlmTokenizer Json) BothForms()
    {
        using var model = ModelFolder();
        using var json = JsonFolder();
        return (LlmTokenizer.Load(model.Path), LlmTokenizer.Load(json.Path));
    }

    static void AssertBothForms(string text, int[] expected)
    {
        var (model, json) = BothForms();
        Assert.IsType<SentencePieceLlmTokenizer>(json);
        Assert.Equal(expected, model.EncodeToIds(text, addSpecialTokens: false));
        Assert.Equal(expected, json.EncodeToIds(text, addSpecialTokens: false));
        Assert.Equal([1, .. expected], json.EncodeToIds(text)); // the BOS from the post-processor template / add_bos_token
        Assert.Equal(text, model.Decode(model.EncodeToIds(text), skipSpecialTokens: true));
        Assert.Equal(text, json.Decode(json.EncodeToIds(text), skipSpecialTokens: true));
    }

    [Fact]
    public void A_tie_between_equal_pairs_merges_the_leftmost()
    {
        // "▁aaa": pairs (▁,a)@0 -5, (a,a)@1 -2, (a,a)@2 -2. The two aa pairs tie; the leftmost merges: [▁, aa, a]. The new
        // pairs (▁,aa) and (aa,a) are no pieces, and (▁,a)@0 lost its a. (Rightmost would give [▁, a, aa], then ▁a: [▁a, aa].)
        AssertBothForms("aaa", [Id("▁"), Id("aa"), Id("a")]);
    }

    [Fact]
    public void A_run_of_five_merges_from_the_left()
    {
        // "▁aaaaa" (a at 1..5): aa pairs at 1, 2, 3, 4. Leftmost @1 -> [▁, aa, a, a, a]; @2 is gone, @3 -> [▁, aa, aa, a],
        // forming (aa,aa)@1 "aaaa" -4; @4 is gone (its left a merged). (aa,aa) -> [▁, aaaa, a]. (▁,aaaa) and (aaaa,a) are
        // no pieces. (Rightmost: @4, @2 -> [▁, a, aa, aa] -> [▁, a, aaaa] -> [▁a, aaaa].)
        AssertBothForms("aaaaa", [Id("▁"), Id("aaaa"), Id("a")]);
    }

    [Fact]
    public void A_run_of_twenty_one_spaces_merges_from_the_left()
    {
        // 21 spaces and the dummy prefix: 22 "▁" at 0..21. The ▁▁ pairs (-1) merge from the left: 0-1, 2-3, ..., 20-21,
        // eleven ▁▁. Then the ▁▁▁▁ pairs (-3) from the left: 0+2, 4+6, 8+10, 12+14, 16+18, and ▁▁ at 20 stays alone.
        // Then ▁×8 (-6): 0+4, 8+12; 16 (▁▁▁▁) has no partner left. Then ▁×16 (-7): 0+8. Result 16 + 4 + 2.
        // (Rightmost would give 2 + 4 + 16.)
        var spaces = new string(' ', 21);
        AssertBothForms(spaces, [Id(S16), Id(S4), Id(S2)]);
        // The dummy prefix belongs to the first token and spans nothing of the input: [0, 15), [15, 19), [19, 21).
        var (model, json) = BothForms();
        Assert.Equal([new(0, 15), new(15, 19), new TokenSpan(19, 21)], model.Encode(spaces, addSpecialTokens: false).Offsets);
        Assert.Equal([new(0, 15), new(15, 19), new TokenSpan(19, 21)], json.Encode(spaces, addSpecialTokens: false).Offsets);
    }

    [Fact]
    public void Unknown_characters_fall_back_to_their_utf8_bytes()
    {
        // "▁ad▁é日": (▁,a) -5 is the only pair that merges -> [▁a, d, ▁, é, 日]. d, é and 日 are no pieces: d = 64,
        // é = C3 A9, 日 = E6 97 A5, each byte at 3 + b.
        AssertBothForms("ad é日", [Id("▁a"), ByteId('d'), Id("▁"), ByteId(0xC3), ByteId(0xA9), ByteId(0xE6), ByteId(0x97), ByteId(0xA5)]);
        // Every byte spans its character.
        var (model, _) = BothForms();
        Assert.Equal([new(0, 1), new(1, 2), new(2, 3), new(3, 4), new(3, 4), new(4, 5), new(4, 5), new TokenSpan(4, 5)],
            model.Encode("ad é日", addSpecialTokens: false).Offsets);
    }

    [Fact]
    public void A_tie_between_different_pieces_follows_each_forms_reference()
    {
        // "▁cabc": (a,b)@2 and (b,c)@3 both make a piece of score -8. SentencePiece merges the leftmost: [▁, c, ab, c].
        // The converted merges list (b,c) before (a,b) (vocabulary order at equal score and lengths), and Hugging Face
        // merges by that rank: [▁, c, a, bc]. Trained models give each piece its own score, so this never arises there.
        var (model, json) = BothForms();
        Assert.Equal([Id("▁"), Id("c"), Id("ab"), Id("c")], model.EncodeToIds("cabc", addSpecialTokens: false));
        Assert.Equal([Id("▁"), Id("c"), Id("a"), Id("bc")], json.EncodeToIds("cabc", addSpecialTokens: false));
    }

    [Fact]
    public void Metaspace_adds_no_prefix_before_a_space_and_split_merges_words_apart()
    {
        using var joined = JsonFolder("""{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": false}""");
        using var split = JsonFolder("""{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": true}""");
        using var model = ModelFolder();
        // " a": Metaspace sees it starts with "▁" and adds none: "▁a" -> [▁a]. SentencePiece always adds it:
        // "▁▁a": (▁,▁)@0 -1 beats (▁,a)@1 -5 -> [▁▁, a].
        Assert.Equal([Id("▁a")], LlmTokenizer.Load(joined.Path).EncodeToIds(" a", addSpecialTokens: false));
        Assert.Equal([Id(S2), Id("a")], LlmTokenizer.Load(model.Path).EncodeToIds(" a", addSpecialTokens: false));
        // Four spaces, no prefix: "▁▁▁▁" -> [▁▁▁▁]; split into the words ▁|▁|▁|▁ nothing merges.
        Assert.Equal([Id(S4)], LlmTokenizer.Load(joined.Path).EncodeToIds("    ", addSpecialTokens: false));
        Assert.Equal([Id("▁"), Id("▁"), Id("▁"), Id("▁")], LlmTokenizer.Load(split.Path).EncodeToIds("    ", addSpecialTokens: false));
        // "aa a" -> "▁aa▁a": split, the words ▁aa -> [▁, aa] (aa -2 beats ▁a -5) and ▁a -> [▁a].
        Assert.Equal([Id("▁"), Id("aa"), Id("▁a")], LlmTokenizer.Load(split.Path).EncodeToIds("aa a", addSpecialTokens: false));
    }

    [Fact]
    public void User_defined_pieces_are_never_merged_and_unused_pieces_are_split_back()
    {
        var pieces = SentencePieceModel.LlamaLayout(Pieces).Pieces.ToList();
        int userDefined = pieces.Count, unused = pieces.Count + 1;
        pieces.Add(new SentencePieceEntry("aab", 0, SentencePieceType.UserDefined));
        pieces.Add(new SentencePieceEntry("▁aa", 0, SentencePieceType.Unused));
        using var folder = ModelFolder(SentencePieceModel.LlamaLayout(Pieces) with { Pieces = pieces });
        var tokenizer = LlmTokenizer.Load(folder.Path);
        // "▁aab": "aab" is matched whole at 1 and frozen; ▁ cannot merge with it -> [▁, aab].
        Assert.Equal([Id("▁"), userDefined], tokenizer.EncodeToIds("aab", addSpecialTokens: false));
        // "▁aa": (a,a) -2 -> [▁, aa]; (▁,aa) makes the UNUSED piece ▁aa (score 0, the best), which is split back into
        // the two symbols that made it -> [▁, aa].
        Assert.Equal([Id("▁"), Id("aa")], tokenizer.EncodeToIds("aa", addSpecialTokens: false));
        Assert.Equal(unused, tokenizer.GetId("▁aa"));
    }

    [Fact]
    public void Long_texts_encode_fast()
    {
        var (model, json) = BothForms();
        // 2^16 a's: "▁" then the a's pair up from the left into aa, then aaaa: 2^14 tokens of aaaa after ▁.
        var run = new string('a', 1 << 16);
        var watch = System.Diagnostics.Stopwatch.StartNew();
        var ids = model.EncodeToIds(run, addSpecialTokens: false);
        Assert.Equal([Id("▁"), .. Enumerable.Repeat(Id("aaaa"), 1 << 14)], ids);
        Assert.Equal(ids, json.EncodeToIds(run, addSpecialTokens: false));
        // A quadratic loop would take minutes here; the priority queue takes a fraction of a second (the bound allows a loaded machine).
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(20), $"encoding took {watch.Elapsed}");
    }
}
