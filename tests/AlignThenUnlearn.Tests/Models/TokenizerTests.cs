using AlignThenUnlearn.Models;
using AlignThenUnlearn.Tests.Support;

namespace AlignThenUnlearn.Tests.Models;

/// <summary>Tokenizers on tiny models that the tests write. Every expected id is worked out by hand from the
/// vocabulary below and the BPE rules, never read back from the code under test.
///
/// SentencePiece BPE (Llama / Phi-3): the normalized text (spaces as "▁", a dummy "▁" in front) starts as single
/// characters; repeatedly, of all adjacent pairs whose concatenation is a piece, the one whose piece has the
/// highest score merges (ties: leftmost). A symbol that is not a piece at the end falls back to its UTF-8 bytes,
/// piece <c>&lt;0xXX&gt;</c> = id 3 + byte in the Llama layout.</summary>
public class TokenizerTests
{
    // Llama layout: <unk> 0, <s> 1, </s> 2, <0x00>..<0xFF> 3..258, then these from 259 on.
    static readonly (string Piece, float Score)[] Pieces =
    [
        ("th", -1), ("he", -2), ("▁th", -3), ("▁the", -4), ("at", -5), ("▁c", -6), ("▁cat", -7), ("the", -8),
        ("ha", -10), ("▁", -20), ("t", -21), ("h", -22), ("e", -23), ("c", -24), ("a", -25),
    ];

    static int Id(string piece)
    {
        int index = Array.FindIndex(Pieces, p => p.Piece == piece);
        return index >= 0 ? 259 + index : throw new ArgumentException($"'{piece}' is not in the test vocabulary.");
    }

    static int ByteId(char c) => 3 + c;

    // Added tokens numbered as Phi-3's (32000 <|endoftext|>, 32001 <|assistant|>, 32006 <|system|>, 32007 <|end|>,
    // 32010 <|user|>), shifted to follow this vocabulary's 274 pieces.
    const int EndOfText = 274, Assistant = 275, SystemRole = 280, End = 281, User = 284;

    static string AddedTokenJson(int id, string content, bool rstrip) =>
        $$"""{"id": {{id}}, "content": "{{content}}", "single_word": false, "lstrip": false, "rstrip": {{(rstrip ? "true" : "false")}}, "normalized": false, "special": true}""";

    static readonly (int Id, string Content, bool RStrip)[] Phi3AddedTokens =
    [
        (EndOfText, "<|endoftext|>", false), (Assistant, "<|assistant|>", true), (SystemRole, "<|system|>", true),
        (End, "<|end|>", true), (User, "<|user|>", true),
    ];

    /// <summary>A Phi-3-shaped snapshot: tokenizer.model, tokenizer_config.json (added_tokens_decoder,
    /// add_bos_token), optionally tokenizer.json with Phi-3's Prepend("▁") normalizer, generation_config.json.</summary>
    static TempFolder Phi3Folder(bool addBos = false, bool withTokenizerJson = true, string? chatTemplate = null)
    {
        var folder = new TempFolder();
        SentencePieceModel.LlamaLayout(Pieces).Save(folder.File("tokenizer.model"));
        var decoder = string.Join(",\n", Phi3AddedTokens.Select(t => $"\"{t.Id}\": {AddedTokenJson(t.Id, t.Content, t.RStrip)}"));
        folder.Write("tokenizer_config.json", $$"""
            {
              "add_bos_token": {{(addBos ? "true" : "false")}}, "add_eos_token": false, "legacy": false,
              "bos_token": "<s>", "eos_token": "<|endoftext|>", "unk_token": "<unk>", "pad_token": "<|endoftext|>",{{(chatTemplate is null ? "" : $"\n\"chat_template\": {System.Text.Json.JsonSerializer.Serialize(chatTemplate)},")}}
              "added_tokens_decoder": { {{decoder}} }
            }
            """);
        if (withTokenizerJson)
        {
            var added = string.Join(",\n", Phi3AddedTokens.Select(t => AddedTokenJson(t.Id, t.Content, t.RStrip)));
            folder.Write("tokenizer.json", $$"""
                {
                  "added_tokens": [ {{added}} ],
                  "normalizer": {"type": "Sequence", "normalizers": [
                    {"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
                  "pre_tokenizer": null
                }
                """);
        }
        folder.Write("generation_config.json", $$"""{"eos_token_id": [{{EndOfText}}, {{Assistant}}, {{End}}]}""");
        return folder;
    }

    [Fact]
    public void Written_model_reads_back_as_a_llama_bpe_model()
    {
        var written = SentencePieceModel.LlamaLayout(Pieces);
        // A field this project does not read (ModelProto field 4, self_test_data: tag 4<<3|2 = 0x22, length 0) is skipped.
        var read = SentencePieceModel.FromBytes([.. written.ToBytes(), 0x22, 0x00]);
        Assert.Equal(written.Pieces, read.Pieces);
        Assert.Equal((true, 0, 1, 2, -1), (read.ByteFallback, read.UnknownId, read.BeginningOfSentenceId, read.EndOfSentenceId, read.PadId));
        Assert.Equal((true, false, true), (read.AddDummyPrefix, read.RemoveExtraWhitespaces, read.EscapeWhitespaces));

        using var folder = Phi3Folder();
        var tokenizer = Assert.IsType<SentencePieceLlmTokenizer>(LlmTokenizer.Load(folder.Path));
        Assert.Equal(259 + Pieces.Length, tokenizer.Model.Vocabulary.Count);
        Assert.True(tokenizer.Model.ByteFallback);
        Assert.Equal(0, tokenizer.Model.UnknownId);
        Assert.Equal(DummyPrefixPolicy.EverySegment, tokenizer.DummyPrefix);
        Assert.Equal(3 + 0x0A, tokenizer.Model.Vocabulary["<0x0A>"]);
        Assert.Equal(0x0A, tokenizer.Model.ByteOf(3 + 0x0A));
        Assert.Equal(User + 1, tokenizer.VocabularySize);
    }

    [Fact]
    public void A_model_this_project_cannot_encode_exactly_is_refused()
    {
        using var folder = new TempFolder();
        var path = folder.File("tokenizer.model");
        // Only the fields that decide: model_type absent is UNIGRAM (proto2 default), refused; a BPE model without
        // an UNKNOWN piece is malformed.
        File.WriteAllBytes(path, [0x12, 0x00]); // trainer_spec (field 2), empty
        Assert.Contains("only BPE", Assert.Throws<NotSupportedException>(() => SentencePieceModel.Load(path)).Message);
        File.WriteAllBytes(path, [0x12, 0x02, 0x18, 0x02]); // trainer_spec { model_type (3) = BPE }
        var error = Assert.Throws<InvalidDataException>(() => SentencePieceModel.Load(path));
        Assert.Contains(path, error.Message);
        Assert.Contains("UNKNOWN", error.Message);
    }

    [Fact]
    public void Plain_text_merges_by_score()
    {
        using var folder = Phi3Folder();
        var tokenizer = LlmTokenizer.Load(folder.Path);
        // "▁the▁cat": pairs in the vocabulary th(-1) he(-2) at(-5) ▁c(-6). th merges -> [▁,th,e,▁,c,a,t]; new pairs
        // ▁th(-3), the(-8); "he" is gone with its h. ▁th -> ▁the(-4) merges -> [▁the,▁,c,a,t]; at(-5) -> [▁the,▁,c,at];
        // ▁c(-6) -> [▁the,▁c,at]; ▁cat(-7) -> [▁the,▁cat].
        var encoded = tokenizer.Encode("the cat");
        Assert.Equal([Id("▁the"), Id("▁cat")], encoded.Ids);
        Assert.Equal([new TokenSpan(0, 3), new TokenSpan(3, 7)], encoded.Offsets);
        // "▁hat": candidate pairs ha(-10) and at(-5); at wins -> [▁,h,at], and "hat", "▁h" are no pieces.
        Assert.Equal([Id("▁"), Id("h"), Id("at")], tokenizer.EncodeToIds("hat"));
    }

    [Fact]
    public void Characters_outside_the_vocabulary_fall_back_to_their_utf8_bytes()
    {
        using var folder = Phi3Folder();
        var tokenizer = LlmTokenizer.Load(folder.Path);
        // "▁the▁cat▁é!" -> ▁the ▁cat as above, then "▁" alone (no "▁é" piece), é = C3 A9 and ! = 21 are no pieces.
        var encoded = tokenizer.Encode("the cat é!");
        Assert.Equal([Id("▁the"), Id("▁cat"), Id("▁"), 3 + 0xC3, 3 + 0xA9, ByteId('!')], encoded.Ids);
        // Both bytes of é span the character.
        Assert.Equal([new(0, 3), new(3, 7), new(7, 8), new(8, 9), new(8, 9), new TokenSpan(9, 10)], encoded.Offsets);
        Assert.Equal("the cat é!", tokenizer.Decode(encoded.Ids));
    }

    [Fact]
    public void Decoding_round_trips_plain_text()
    {
        using var folder = Phi3Folder(addBos: true);
        var tokenizer = LlmTokenizer.Load(folder.Path);
        foreach (var text in new[] { "the cat", "hat the cat", "  two  spaces ", "tab\tand\nnewline", "ü 日本 😀 the" })
        {
            var ids = tokenizer.EncodeToIds(text);
            Assert.Equal(1, ids[0]); // BOS
            Assert.Equal(text, tokenizer.Decode(ids, skipSpecialTokens: true));
        }
    }

    [Fact]
    public void Special_tokens_in_text_are_single_ids()
    {
        using var folder = Phi3Folder();
        var tokenizer = LlmTokenizer.Load(folder.Path);
        // Split at <|endoftext|> (rstrip false): "the" -> "▁the" -> th, ▁th, ▁the -> [▁the]; "cat" -> "▁cat" (every piece
        // gets the dummy prefix under Phi-3's Prepend normalizer) -> [▁cat]; "\n" -> "▁\n": ▁ and the byte 0A.
        var encoded = tokenizer.Encode("the<|endoftext|>cat<|endoftext|>\n");
        Assert.Equal([Id("▁the"), EndOfText, Id("▁cat"), EndOfText, Id("▁"), 3 + 0x0A], encoded.Ids);
        Assert.Equal(new TokenSpan(3, 16), encoded.Offsets[1]);
        // <s> in text is the BOS id, and is not added a second time.
        using var withBos = Phi3Folder(addBos: true);
        Assert.Equal([1, Id("▁the")], LlmTokenizer.Load(withBos.Path).EncodeToIds("<s>the"));
    }

    [Fact]
    public void Added_tokens_can_be_left_as_plain_text()
    {
        using var folder = Phi3Folder();
        var tokenizer = LlmTokenizer.Load(folder.Path);
        // "▁<|user|>": only ▁ and e are pieces, and no pair of these characters is; the rest falls back to bytes.
        int bar = ByteId('|');
        Assert.Equal([Id("▁"), ByteId('<'), bar, ByteId('u'), ByteId('s'), Id("e"), ByteId('r'), bar, ByteId('>')],
            tokenizer.EncodeToIds("<|user|>", parseAddedTokens: false));
    }

    [Fact]
    public void Phi3_chat_prompt_matches_hand_derivation()
    {
        using var folder = Phi3Folder();
        var tokenizer = LlmTokenizer.Load(folder.Path);
        Assert.Equal(ChatFormat.Phi3, tokenizer.ChatFormat);
        Assert.False(tokenizer.AddsBos); // Phi-3-mini-4k-instruct's tokenizer_config.json: add_bos_token false
        // "<|user|>\nthe cat<|end|>\n<|assistant|>\n": <|user|>, <|end|> and <|assistant|> have rstrip, so each takes the
        // newline after it; what is left is "the cat" -> [▁the, ▁cat] as in Plain_text_merges_by_score.
        var prompt = tokenizer.EncodeChatPrompt("the cat");
        Assert.Equal("<|user|>\nthe cat<|end|>\n<|assistant|>\n", prompt.Text);
        Assert.Equal([User, Id("▁the"), Id("▁cat"), End, Assistant], prompt.Ids);
        Assert.Equal([new(0, 9), new(9, 12), new(12, 16), new(16, 24), new TokenSpan(24, 38)], prompt.Offsets);
        // Hugging Face's fast decoder strips the dummy-prefix space only at the start of the output.
        Assert.Equal("<|user|> the cat<|end|><|assistant|>", tokenizer.Decode(prompt.Ids));
        Assert.Equal("the cat", tokenizer.Decode(prompt.Ids, skipSpecialTokens: true));

        using var withBos = Phi3Folder(addBos: true);
        Assert.Equal([1, User, Id("▁the"), Id("▁cat"), End, Assistant], LlmTokenizer.Load(withBos.Path).EncodeChatPrompt("the cat").Ids);
    }

    [Fact]
    public void Eos_and_stop_ids_come_from_the_configs()
    {
        using var folder = Phi3Folder();
        var tokenizer = LlmTokenizer.Load(folder.Path);
        Assert.Equal(EndOfText, tokenizer.EosId); // eos_token "<|endoftext|>", not the model's </s>
        Assert.Equal(1, tokenizer.BosId);
        Assert.Equal(new[] { EndOfText, Assistant, End }.Order(), tokenizer.StopIds.Order());
    }

    [Fact]
    public void Without_tokenizer_json_legacy_false_puts_the_dummy_prefix_only_at_the_text_start()
    {
        // The slow LlamaTokenizer with legacy false: the piece after an added token gets no "▁".
        using var folder = Phi3Folder(withTokenizerJson: false);
        var tokenizer = Assert.IsType<SentencePieceLlmTokenizer>(LlmTokenizer.Load(folder.Path));
        Assert.Equal(DummyPrefixPolicy.TextStartOnly, tokenizer.DummyPrefix);
        // "the" (no ▁): th(-1) -> [th,e] -> the(-8) -> [the]. "cat": only at(-5) -> [c,at]; "cat" is no piece.
        Assert.Equal([Id("▁the"), EndOfText, Id("the"), EndOfText, Id("c"), Id("at")],
            tokenizer.EncodeToIds("the<|endoftext|>the<|endoftext|>cat"));
        // The rstrip flags come from added_tokens_decoder alone here.
        Assert.Equal([User, Id("the"), Id("▁cat"), End, Assistant], tokenizer.EncodeChatPrompt("the cat").Ids);
    }

    [Fact]
    public void Lstrip_and_rstrip_swallow_adjacent_whitespace()
    {
        var marker = new AddedToken(9, "<x>", LStrip: true, RStrip: true);
        var segments = new AddedTokenMatcher([marker, new AddedToken(8, "<x>>")]).Split("a  <x>\t b<x>>").ToList();
        Assert.Equal(
            [new TextSegment(0, 1, null), new TextSegment(1, 8, marker), new TextSegment(8, 9, null), new TextSegment(9, 13, new AddedToken(8, "<x>>"))],
            segments);
    }

    [Fact]
    public void Chat_formats_render_the_documented_prompts()
    {
        Assert.Equal("<|user|>\nHi<|end|>\n<|assistant|>\n", ChatTemplate.Format(ChatFormat.Phi3, "Hi"));
        Assert.Equal("[INST] Hi [/INST]", ChatTemplate.Format(ChatFormat.Llama2, "Hi"));
        Assert.Equal("<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
            ChatTemplate.Format(ChatFormat.Llama3, "Hi"));
        Assert.Equal("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", ChatTemplate.Format(ChatFormat.ChatMl, "Hi"));
        Assert.Throws<NotSupportedException>(() => ChatTemplate.Format(ChatFormat.None, "Hi"));
    }

    // Byte-level BPE (Llama-3 / Qwen2 tokenizer.json). Vocabulary: the 256 byte characters at id = byte value, then
    // the merge results in merge order (rank 0 first) from 256 on, then "Ġworld" (264), which no merge produces.
    static readonly (string Left, string Right)[] Merges =
    [
        ("Ġ", "w"), ("o", "r"), ("l", "l"), ("H", "e"), ("He", "ll"), ("Ġw", "or"), ("Hell", "o"), ("Ġwor", "l"),
    ];

    const int Hello = 256 + 6, Gworl = 256 + 7, Gworld = 264;
    const int BeginOfText = 300, StartHeader = 302, EndHeader = 303, EndOfTurn = 304;
    const string Llama3Pattern = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    internal static TempFolder Llama3Folder(bool ignoreMerges = true, string normalizer = "null", bool byteFallback = false, bool emptyAffixes = false,
        string? chatTemplate = null)
    {
        Assert.Equal('Ġ', ByteLevelAlphabet.Of((byte)' ')); // GPT-2's alphabet: space is U+0120, newline U+010A
        Assert.Equal('Ċ', ByteLevelAlphabet.Of((byte)'\n'));
        var vocabulary = new List<(string, int)>();
        for (int b = 0; b < 256; b++) vocabulary.Add((ByteLevelAlphabet.Of((byte)b).ToString(), b));
        for (int m = 0; m < Merges.Length; m++) vocabulary.Add((Merges[m].Left + Merges[m].Right, 256 + m));
        vocabulary.Add(("Ġworld", Gworld));
        var vocabJson = string.Join(", ", vocabulary.Select(v => $"{System.Text.Json.JsonSerializer.Serialize(v.Item1)}: {v.Item2}"));
        var mergesJson = string.Join(", ", Merges.Select(m => $"[\"{m.Left}\", \"{m.Right}\"]"));
        var added = string.Join(", ", new[] { (BeginOfText, "<|begin_of_text|>"), (301, "<|end_of_text|>"), (StartHeader, "<|start_header_id|>"),
            (EndHeader, "<|end_header_id|>"), (EndOfTurn, "<|eot_id|>") }.Select(t => AddedTokenJson(t.Item1, t.Item2, rstrip: false)));
        var patternJson = System.Text.Json.JsonSerializer.Serialize(Llama3Pattern);
        var affix = emptyAffixes ? "\"\"" : "null"; // transformers' Qwen2 converter writes "", others null
        var folder = new TempFolder();
        folder.Write("tokenizer.json", $$$"""
            {
              "added_tokens": [ {{{added}}} ],
              "normalizer": {{{normalizer}}},
              "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": {{{patternJson}}} }, "behavior": "Isolated", "invert": false},
                {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}]},
              "post_processor": {"type": "Sequence", "processors": [
                {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true},
                {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                 "pair": [], "special_tokens": {}}]},
              "decoder": {"type": "ByteLevel"},
              "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": {{{affix}}}, "end_of_word_suffix": {{{affix}}},
                        "fuse_unk": false, "byte_fallback": {{{(byteFallback ? "true" : "false")}}}, "ignore_merges": {{{(ignoreMerges ? "true" : "false")}}},
                        "vocab": { {{{vocabJson}}} }, "merges": [ {{{mergesJson}}} ]}
            }
            """);
        folder.Write("tokenizer_config.json", $$"""{"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"{{(chatTemplate is null ? "" : $", \"chat_template\": {System.Text.Json.JsonSerializer.Serialize(chatTemplate)}")}}}""");
        return folder;
    }

    [Fact]
    public void Byte_level_bpe_merges_by_rank_and_honours_ignore_merges()
    {
        using var folder = Llama3Folder(ignoreMerges: false);
        var tokenizer = Assert.IsType<ByteLevelBpeLlmTokenizer>(LlmTokenizer.Load(folder.Path));
        Assert.True(tokenizer.AddsBos); // from the post-processor template
        // The regex splits "Hello world" into "Hello" and " world" = "Ġworld". Hello: [H,e,l,l,o] -> l l (rank 2) ->
        // H e (3) -> He ll (4) -> Hell o (6) -> [Hello]. Ġworld: Ġ w (0) -> o r (1) -> Ġw or (5) -> Ġwor l (7) ->
        // [Ġworl, d]; no merge makes Ġworld.
        var encoded = tokenizer.Encode("Hello world");
        Assert.Equal([BeginOfText, Hello, Gworl, (int)'d'], encoded.Ids);
        Assert.Equal([new(0, 0), new(0, 5), new(5, 10), new TokenSpan(10, 11)], encoded.Offsets);
        // ignore_merges (Llama-3): a piece that is in the vocabulary is one token.
        using var llama3 = Llama3Folder(ignoreMerges: true);
        Assert.Equal([BeginOfText, Hello, Gworld], LlmTokenizer.Load(llama3.Path).EncodeToIds("Hello world"));
    }

    [Fact]
    public void Byte_level_bpe_encodes_non_ascii_as_bytes_and_round_trips()
    {
        using var folder = Llama3Folder();
        var tokenizer = LlmTokenizer.Load(folder.Path);
        // é = C3 A9, two byte characters with no merge between them; both span the character.
        var encoded = tokenizer.Encode("é", addSpecialTokens: false);
        Assert.Equal([0xC3, 0xA9], encoded.Ids);
        Assert.Equal([new(0, 1), new TokenSpan(0, 1)], encoded.Offsets);
        foreach (var text in new[] { "Hello world", "é and 日本 😀", "  spaces\n\nlines " })
            Assert.Equal(text, tokenizer.Decode(tokenizer.EncodeToIds(text), skipSpecialTokens: true));
    }

    [Fact]
    public void Llama3_chat_prompt_matches_hand_derivation()
    {
        using var folder = Llama3Folder();
        var tokenizer = LlmTokenizer.Load(folder.Path);
        Assert.Equal(ChatFormat.Llama3, tokenizer.ChatFormat);
        Assert.Contains(EndOfTurn, tokenizer.StopIds);
        // BOS, then the added tokens split the prompt. "user" and "assistant" are single regex pieces with no merges:
        // their bytes. "\n\nHello world" -> pieces "\n\n" (\s*[\r\n]+), "Hello", " world": bytes 0A 0A, Hello, Ġworld.
        var prompt = tokenizer.EncodeChatPrompt("Hello world");
        int[] expected =
        [
            BeginOfText, StartHeader, 'u', 's', 'e', 'r', EndHeader, '\n', '\n', Hello, Gworld, EndOfTurn,
            StartHeader, 'a', 's', 's', 'i', 's', 't', 'a', 'n', 't', EndHeader, '\n', '\n',
        ];
        Assert.Equal(expected, prompt.Ids);
    }

    [Fact]
    public void Nfc_normalizing_tokenizers_encode_the_nfc_form()
    {
        using var folder = Llama3Folder(normalizer: """{"type": "NFC"}""");
        var tokenizer = LlmTokenizer.Load(folder.Path);
        Assert.Equal([0xC3, 0xA9], tokenizer.EncodeToIds("é", addSpecialTokens: false)); // precomposed: already NFC
        // e + combining acute composes to é (U+00E9 = C3 A9); the Angstrom sign U+212B is a singleton for Å (U+00C5 = C3 85).
        var composed = tokenizer.Encode("e\u0301\u212B", addSpecialTokens: false);
        Assert.Equal("é\u00C5", composed.Text);
        Assert.Equal([0xC3, 0xA9, 0xC3, 0x85], composed.Ids);
        // Without the normalizer the combining mark is its own bytes: e = 65, U+0301 = CC 81.
        using var plain = Llama3Folder();
        Assert.Equal(['e', 0xCC, 0x81], LlmTokenizer.Load(plain.Path).EncodeToIds("e\u0301", addSpecialTokens: false));
    }

    [Fact]
    public void Qwen2_empty_prefix_and_suffix_strings_load_as_nulls()
    {
        using var nulls = Llama3Folder(ignoreMerges: false);
        using var empty = Llama3Folder(ignoreMerges: false, emptyAffixes: true);
        Assert.Contains("\"continuing_subword_prefix\": \"\"", File.ReadAllText(empty.File("tokenizer.json")));
        var expected = LlmTokenizer.Load(nulls.Path);
        var actual = LlmTokenizer.Load(empty.Path);
        foreach (var text in new[] { "Hello world", "world Hello", "é 日本" })
            Assert.Equal(expected.EncodeToIds(text), actual.EncodeToIds(text));
        // Hello world as in Byte_level_bpe_merges_by_rank_and_honours_ignore_merges: [BOS, Hello, Ġworl, d].
        Assert.Equal([BeginOfText, Hello, Gworl, (int)'d'], actual.EncodeToIds("Hello world"));
    }

    [Fact]
    public void Decoding_cleans_up_tokenization_spaces_when_the_config_says_so()
    {
        // Hello, Ġworld, then the bytes of the rest (byte b is id b): the decoded text is exactly `raw`.
        const string rest = " , I 'm sure you 've seen it . Is n't it ? They 're ' fine ' !";
        int[] ids = [Hello, Gworld, .. System.Text.Encoding.UTF8.GetBytes(rest).Select(b => (int)b)];
        const string raw = "Hello world" + rest;
        // transformers' replacements in order: " ." " ?" " !" " ," " ' " " n't" " 'm" " 's" " 've" " 're". " ' " takes the
        // quote before "fine" with both spaces ("'re ' fine" -> "'re'fine"); the one before "!" has no space after it.
        const string cleaned = "Hello world, I'm sure you've seen it. Isn't it? They're'fine '!";
        using var folder = Llama3Folder();
        folder.Write("tokenizer_config.json", """{"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "clean_up_tokenization_spaces": true}""");
        var tokenizer = LlmTokenizer.Load(folder.Path);
        Assert.True(tokenizer.Specials.CleanUpTokenizationSpaces);
        Assert.Equal(cleaned, tokenizer.Decode(ids));
        Assert.Equal(raw, tokenizer.Decode(ids, cleanUpTokenizationSpaces: false));
        // Without the key (transformers' default is false) nothing is cleaned unless asked.
        using var plain = Llama3Folder();
        var unclean = LlmTokenizer.Load(plain.Path);
        Assert.Equal(raw, unclean.Decode(ids));
        Assert.Equal(cleaned, unclean.Decode(ids, cleanUpTokenizationSpaces: true));
    }

    [Fact]
    public void Byte_level_tokenizer_json_with_byte_fallback_is_refused()
    {
        // byte_fallback makes it a SentencePiece-style BPE, whose pre-tokenizer can only be Metaspace.
        using var folder = Llama3Folder(ignoreMerges: false, byteFallback: true);
        var error = Assert.Throws<NotSupportedException>(() => LlmTokenizer.Load(folder.Path));
        Assert.Contains("tokenizer.json", error.Message);
        Assert.Contains("Split", error.Message);
    }

    /// <summary>Meta-Llama-3-8B-Instruct's chat_template (tokenizer_config.json).</summary>
    const string Llama3Template = "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}";

    [Fact]
    public void Llama3_rwku_prompts_start_with_two_bos_tokens_and_the_trimmed_message()
    {
        using var folder = Llama3Folder(chatTemplate: Llama3Template);
        var tokenizer = LlmTokenizer.Load(folder.Path);
        Assert.True(tokenizer.Specials.ChatTemplateBos);
        // RWKU's FB probe: apply_chat_template(tokenize=False) renders "<|begin_of_text|>" + the header, the message
        // trimmed (its final "\n" dropped), "<|eot_id|>" and the assistant header; eval_forget.py appends "Answer:" and
        // tokenizes with special tokens, which adds Llama-3's BOS once more.
        var probe = new AlignThenUnlearn.Evaluation.RwkuProbe(AlignThenUnlearn.Evaluation.ProbeSet.Forget, 1, "Hello ___", "world", "", "Ada");
        var text = AlignThenUnlearn.Evaluation.RwkuPrompts.Render(probe, tokenizer.ChatFormat);
        Assert.Equal("<|start_header_id|>user<|end_header_id|>\n\nPlease complete the blank in the following question.\nQuestion: Hello ___<|eot_id|>" +
            "<|start_header_id|>assistant<|end_header_id|>\n\nAnswer:", text);
        var body = tokenizer.EncodeToIds(text, addSpecialTokens: false);
        Assert.Equal([BeginOfText, BeginOfText, .. body], tokenizer.EncodePrompt(text, PromptBos.Rwku));
        Assert.Equal([BeginOfText, .. body], tokenizer.EncodePrompt(text, PromptBos.Template));
        // A text that is no chat prompt (an MIA passage) gets the tokenizer's one BOS in either layout.
        Assert.Equal([BeginOfText, Hello, Gworld], tokenizer.EncodePrompt("Hello world", PromptBos.Rwku));
    }

    [Fact]
    public void Phi3_chat_prompts_take_the_bos_from_the_snapshots_template()
    {
        // Phi-3-mini-4k-instruct's first chat_template starts with {{ bos_token }}; its add_bos_token is false.
        const string firstTemplate = "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') %}{{'<|user|>' + '\\n' + message['content'] + '<|end|>' + '\\n' + '<|assistant|>' + '\\n'}}{% elif (message['role'] == 'assistant') %}{{message['content'] + '<|end|>' + '\\n'}}{% endif %}{% endfor %}";
        using var folder = Phi3Folder(chatTemplate: firstTemplate);
        var tokenizer = LlmTokenizer.Load(folder.Path);
        Assert.False(tokenizer.AddsBos);
        var prompt = ChatTemplate.Format(tokenizer.ChatFormat, "the cat");
        // apply_chat_template(..., tokenize=True) == [<s>, <|user|>, ▁the, ▁cat, <|end|>, <|assistant|>], in either layout.
        Assert.Equal([1, User, Id("▁the"), Id("▁cat"), End, Assistant], tokenizer.EncodePrompt(prompt, PromptBos.Template));
        Assert.Equal([1, User, Id("▁the"), Id("▁cat"), End, Assistant], tokenizer.EncodePrompt(prompt, PromptBos.Rwku));
        Assert.Equal([Id("▁the"), Id("▁cat")], tokenizer.EncodePrompt("the cat"));   // plain text: add_bos_token (false)
        // A later template without bos_token: no BOS, as before.
        using var later = Phi3Folder(chatTemplate: "{% for message in messages %}{{'<|user|>\\n' + message['content'] + '<|end|>\\n'}}{% endfor %}");
        Assert.Equal([User, Id("▁the"), Id("▁cat"), End, Assistant], LlmTokenizer.Load(later.Path).EncodePrompt(prompt));
    }
}
