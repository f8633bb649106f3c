using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Tests.Support;
using static AlignThenUnlearn.Tests.Support.TinyChatModel;

namespace AlignThenUnlearn.Tests.Evaluation;

/// <summary>The text side of generation as RWKU does it: the stop ids its <c>generate</c> call ends at, and the
/// continuation cut from the decoded prompt-plus-continuation. Expected values are worked out by hand from the test
/// vocabulary (<see cref="TinyChatModel.Pieces"/>).</summary>
public sealed class GreedyTextGeneratorTests(TinyChatModel tiny) : IClassFixture<TinyChatModel>
{
    [Fact]
    public void Rwku_stops_only_at_the_eos_and_the_unknown_token_for_a_phi3_tokenizer()
    {
        // eos_token is <|endoftext|>; "<|eot_id|>", " \n" and "\n" are no vocabulary entries (SentencePiece spells a
        // newline <0x0A>), so convert_tokens_to_ids gives <unk> = 0 for each. Not <|end|>, unlike the chat stop ids.
        Assert.Equal([EndOfText, 0], RwkuPrompts.StopIds(tiny.Tokenizer));
        Assert.Equal(new[] { EndOfText, Assistant, End }.Order(), tiny.Tokenizer.StopIds.Order());
    }

    [Fact]
    public void Rwku_stops_at_a_newline_where_the_vocabulary_has_one_as_a_piece()
    {
        using var folder = new TempFolder();
        // Llama layout with "\n" as piece 259; no tokenizer_config.json: eos is the model's </s> = 2.
        SentencePieceModel.LlamaLayout([("\n", -1), ("a", -2)]).Save(folder.File("tokenizer.model"));
        var tokenizer = LlmTokenizer.Load(folder.Path);
        // [eos, <|eot_id|> -> <unk> 0, " \n" -> <unk> 0 (repeat dropped), "\n" -> 259]
        Assert.Equal([2, 0, 259], RwkuPrompts.StopIds(tokenizer));
    }

    [Fact]
    public void Continuation_keeps_the_space_its_first_token_carries_after_the_prompt()
    {
        using var generator = GreedyGenerator.Open(tiny.Model, GradCheck.Cpu);
        var text = new GreedyTextGenerator(generator, tiny.Tokenizer, RwkuPrompts.StopIds(tiny.Tokenizer));
        // Prompt <|user|> ▁the <|end|> <|assistant|> decodes (special tokens skipped) to "the" (the dummy-prefix space is
        // dropped at the start of the output only); with ▁cat ▁a after it, "the cat a". Cutting 3 characters leaves
        // " cat a"; decoding the continuation alone would give "cat a".
        int[] prompt = [User, Id("▁the"), End, Assistant];
        Assert.Equal(" cat a", text.ContinuationText(prompt, [Id("▁cat"), Id("▁a")]));
        Assert.Equal("cat a", tiny.Tokenizer.Decode([Id("▁cat"), Id("▁a")], skipSpecialTokens: true));
        // A special token in the continuation decodes to nothing; "é" spans two byte pieces and appears once both are there.
        Assert.Equal(" cat", text.ContinuationText(prompt, [Id("▁cat"), End]));
        Assert.Equal(" é", text.ContinuationText(prompt, [Id("▁"), 3 + 0xC3, 3 + 0xA9]));
        Assert.Equal("", text.ContinuationText(prompt, []));
    }

    [Fact]
    public void Generated_text_is_the_decoded_continuation_of_the_encoded_prompt()
    {
        using var generator = GreedyGenerator.Open(tiny.Model, GradCheck.Cpu);
        var stops = RwkuPrompts.StopIds(tiny.Tokenizer);
        var text = new GreedyTextGenerator(generator, tiny.Tokenizer, stops);
        string[] prompts = [ChatTemplate.Format(ChatFormat.Phi3, "the cat") + "Answer:", "hat", ChatTemplate.Format(ChatFormat.Phi3, "a cat on the mat")];
        var answers = text.Generate(prompts, 9);
        for (int i = 0; i < prompts.Length; i++)
        {
            var ids = tiny.Tokenizer.EncodeToIds(prompts[i]);
            var tokens = generator.Generate([ids], 9, stops)[0].Tokens;
            Assert.Equal(text.ContinuationText(ids, tokens), answers[i]);
        }
        // MMLU's scorer reads the same model: the logits of the candidates after each prompt.
        int[] letters = [Id("a"), Id("c"), Id("e"), Id("h")];
        var logits = text.NextTokenLogits(prompts, letters);
        for (int i = 0; i < prompts.Length; i++)
        {
            // Alone versus in a padded batch: the same numbers up to float rounding of differently shaped products.
            var alone = generator.NextTokenLogits([tiny.Tokenizer.EncodeToIds(prompts[i])], letters)[0];
            for (int j = 0; j < letters.Length; j++) Assert.True(Math.Abs(alone[j] - logits[i][j]) < 1e-4, $"prompt {i} letter {j}");
        }
    }
}
