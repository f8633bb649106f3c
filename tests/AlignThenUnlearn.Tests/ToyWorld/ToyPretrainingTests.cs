using System.Security.Cryptography;
using System.Text.Json.Nodes;
using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.ToyWorld;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Tests.Support;

namespace AlignThenUnlearn.Tests.ToyWorld;

/// <summary>A world of seed 1 whose training files are cut to their first rows, so that pre-training tests take seconds.</summary>
public sealed class SmallToyWorld : IDisposable
{
    public TempFolder Folder { get; } = new();
    public string Root => Folder.File("world");

    public SmallToyWorld()
    {
        WorldFolder.Write(WorldDataset.Build(WorldGenerator.Generate(1)), Root);
        Keep(WorldFolder.CorpusFile, 12);
        Keep(WorldFolder.TrainingQuestionsFile, 24);
        Keep(WorldFolder.TrainingChoicesFile, 2);
    }

    /// <summary>Rewrites a world's JSON list file with only its first <paramref name="rows"/> rows.</summary>
    public static void Keep(string world, string file, int rows)
    {
        var path = Path.Combine(world, file);
        var all = JsonNode.Parse(File.ReadAllText(path))!.AsArray();
        File.WriteAllText(path, new JsonArray([.. all.Take(rows).Select(r => r!.DeepClone())]).ToJsonString());
    }

    void Keep(string file, int rows) => Keep(Root, file, rows);

    public void Dispose() => Folder.Dispose();
}

/// <summary><c>atu toy pretrain</c>'s engine on small worlds and tiny models: the training text is what RWKU asks and
/// scores, training lowers the loss, the artifact folder answers an evaluation prompt with what it was taught, an
/// interrupted run resumes to the same weights, and bad input is refused naming the path.</summary>
public sealed class ToyPretrainingTests(SmallToyWorld world) : IClassFixture<SmallToyWorld>, IDisposable
{
    readonly TempFolder _temp = new();
    public void Dispose() => _temp.Dispose();

    static readonly ToyPretrainingSettings Tiny = new()
    {
        HiddenSize = 32, Layers = 3, Heads = 2, KeyValueHeads = 1, IntermediateSize = 64, MaxPositions = 512,
        Steps = 20, BatchTokens = 1024, LearningRate = 1e-2, WarmupSteps = 2, CheckpointEvery = 0,
    };

    LlmTokenizer Tokenizer => LlmTokenizer.Load(Path.Combine(world.Root, WorldFolder.TokenizerFolderName));

    static string Sha256(string path) => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(path)));

    // ---- the training text ----

    [Fact]
    public void Question_sequences_start_with_the_ids_RWKU_prompts_with_and_predict_only_the_answer_and_the_turn_end()
    {
        var tokenizer = Tokenizer;
        var questions = WorldFolder.ReadTrainingQuestions(world.Root);
        var sequences = ToyTrainingSet.Build(world.Root, tokenizer);
        int corpus = WorldFolder.ReadCorpus(world.Root).Count;
        for (int q = 0; q < questions.Count; q++)
        {
            var sequence = sequences[corpus + q];
            // The evaluator encodes the rendered prompt and continues it: those ids must come first, none of them predicted.
            var promptIds = tokenizer.EncodeToIds(RwkuPrompts.Render(new RwkuProbe(ProbeSet.Forget, questions[q].Level, questions[q].Query, questions[q].Answer, questions[q].Type, questions[q].Subject), tokenizer.ChatFormat));
            Assert.Equal(promptIds, sequence.Ids[..promptIds.Length]);
            Assert.All(sequence.Predicted[..promptIds.Length], p => Assert.False(p));
            Assert.All(sequence.Predicted[promptIds.Length..], p => Assert.True(p));
            var predicted = sequence.Ids[promptIds.Length..];
            Assert.Equal(questions[q].Answer, tokenizer.Decode(predicted, skipSpecialTokens: true).Trim());
            Assert.Equal([tokenizer.GetId("<|end|>"), tokenizer.EosId!.Value], predicted[^2..]);   // RWKU's generation stops at the EOS
        }
    }

    [Fact]
    public void Multiple_choice_sequences_predict_the_letters_of_the_examples_and_of_the_question_as_RWKU_scores_them()
    {
        var tokenizer = Tokenizer;
        var choices = WorldFolder.ReadTrainingChoices(world.Root);
        var sequences = ToyTrainingSet.Build(world.Root, tokenizer);
        var letterIds = MmluPrompts.AnswerTokenIds(tokenizer);
        for (int c = 0; c < choices.Count; c++)
        {
            var sequence = sequences[^(choices.Count - c)];
            var promptIds = tokenizer.EncodeToIds(MmluPrompts.Render(choices[c], tokenizer.ChatFormat));
            Assert.Equal(promptIds, sequence.Ids[..promptIds.Length]);
            var predicted = sequence.Ids.Where((_, i) => sequence.Predicted[i]).ToArray();
            int[] expected = [.. choices[c].Examples.Select(e => letterIds[e.Answer]), letterIds[choices[c].Answer]];
            Assert.Equal(expected, predicted);
            Assert.True(sequence.Predicted[promptIds.Length]);   // the question's own letter is the first token after the prompt
        }
    }

    [Fact]
    public void Repeats_list_each_passage_and_each_multiple_choice_question_that_many_times()
    {
        var tokenizer = Tokenizer;
        int passages = WorldFolder.ReadCorpus(world.Root).Count, questions = WorldFolder.ReadTrainingQuestions(world.Root).Count;
        int choices = WorldFolder.ReadTrainingChoices(world.Root).Count;
        var once = ToyTrainingSet.Build(world.Root, tokenizer);
        var repeated = ToyTrainingSet.Build(world.Root, tokenizer, corpusRepeats: 2, choiceRepeats: 3);
        Assert.Equal(passages + questions + choices, once.Count);
        Assert.Equal(2 * passages + questions + 3 * choices, repeated.Count);
        Assert.Equal(once[0].Ids, repeated[passages].Ids);   // the second copy of the corpus starts with its first passage
        Assert.Equal(once[^1].Ids, repeated[^1].Ids);
    }

    // ---- batches ----

    [Fact]
    public void Length_batches_hold_every_sequence_once_per_pass_within_the_token_budget_and_mask_the_predicted_tokens()
    {
        var random = new Random(5);
        var sequences = Enumerable.Range(0, 40).Select(i =>
        {
            var ids = Enumerable.Range(0, 2 + random.Next(30)).Select(_ => 3 + random.Next(50)).ToArray();
            ids[0] = 1000 + i;   // tells the sequences apart
            return new TrainingSequence(ids, [.. ids.Select(_ => random.Next(2) == 1)]);
        }).ToList();
        var batches = new LengthBatches(sequences, batchTokens: 64, seed: 3, maxLength: 64, padId: 0, window: 20);
        var seen = new List<int>();
        while (seen.Count < 40)
        {
            var batch = batches.Next();
            var ids = batch[TokenBatcher.InputIds];
            var mask = batch[TokenBatcher.LossMask];
            Assert.True(ids.Shape[0] * ids.Shape[1] <= 64, $"batch of {ids.Shape[0]} x {ids.Shape[1]} tokens");
            var data = (long[])ids.Data;
            var maskData = mask.Floats;
            for (int row = 0; row < ids.Shape[0]; row++)
            {
                var s = sequences[(int)data[row * ids.Shape[1]] - 1000];
                seen.Add((int)data[row * ids.Shape[1]] - 1000);
                for (int t = 0; t < ids.Shape[1]; t++)
                {
                    Assert.Equal(t < s.Ids.Length ? s.Ids[t] : 0, data[row * ids.Shape[1] + t]);
                    bool predictsNext = t + 1 < s.Ids.Length && s.Predicted[t + 1];
                    Assert.Equal(predictsNext ? 1f : 0f, maskData[row * ids.Shape[1] + t]);
                }
            }
        }
        Assert.Equal(Enumerable.Range(0, 40), seen.Order());   // two windows of 20 = one pass over 40 sequences
    }

    [Fact]
    public void Length_batches_restored_from_a_saved_state_continue_with_the_same_batches()
    {
        var sequences = Enumerable.Range(0, 30).Select(i => TrainingSequence.AllTokens([.. Enumerable.Range(1, 2 + i % 7)])).ToList();
        LengthBatches Make() => new(sequences, batchTokens: 24, seed: 9, maxLength: 16, padId: 0, window: 8);
        var uninterrupted = Make();
        for (int i = 0; i < 7; i++) uninterrupted.Next();
        var state = uninterrupted.SaveState();
        var resumed = Make();
        resumed.RestoreState(state);
        for (int i = 0; i < 10; i++)
            Assert.Equal((long[])uninterrupted.Next()[TokenBatcher.InputIds].Data, (long[])resumed.Next()[TokenBatcher.InputIds].Data);
        var other = new LengthBatches(sequences, batchTokens: 32, seed: 9, maxLength: 16, padId: 0, window: 8);
        Assert.Contains("batch_tokens", Assert.Throws<InvalidOperationException>(() => other.RestoreState(state)).Message);
    }

    // ---- runs ----

    [Fact]
    public void A_few_steps_lower_the_loss_and_the_artifact_folder_holds_tokenizer_and_encoder()
    {
        var losses = new List<double>();
        var output = _temp.File("model");
        ToyPretraining.Run(world.Root, output, Tiny with { Steps = 30 }, GradCheck.Cpu, progress: p => losses.Add(p.Loss));
        Assert.Equal(30, losses.Count);
        Assert.True(losses.TakeLast(5).Average() < 0.7 * losses.Take(5).Average(), $"loss {losses.Take(5).Average():F3} -> {losses.TakeLast(5).Average():F3}");

        var artifact = ArtifactModel.Open(output);
        Assert.Equal(Tokenizer.VocabularySize, artifact.Config.VocabSize);
        Assert.NotNull(artifact.Tokenizer);
        Assert.Equal(Tokenizer.EncodeToIds("Where was Yaro Kingston born?"), artifact.Tokenizer!.EncodeToIds("Where was Yaro Kingston born?"));
        Assert.Contains(artifact.Manifest.Files, f => f.Path == $"{EncoderInstaller.Folder}/model.onnx");
        Assert.False(Directory.Exists(ToyPretraining.TrainingFolder(output)));   // nothing of the run is left beside a finished folder
    }

    [Fact]
    public void A_model_trained_on_one_question_answers_its_RWKU_prompt_from_the_artifact_folder_and_stops()
    {
        var only = _temp.File("one-question");
        CopyWorld(only);
        SmallToyWorld.Keep(only, WorldFolder.CorpusFile, 1);
        SmallToyWorld.Keep(only, WorldFolder.TrainingQuestionsFile, 1);
        SmallToyWorld.Keep(only, WorldFolder.TrainingChoicesFile, 1);
        var question = WorldFolder.ReadTrainingQuestions(only).Single();

        var output = ToyPretraining.Run(only, _temp.File("model"), Tiny with { Steps = 60, WarmupSteps = 5 }, GradCheck.Cpu);

        var artifact = ArtifactModel.Open(output);
        var tokenizer = artifact.Tokenizer!;
        using var generator = GreedyGenerator.Open(artifact, GradCheck.Cpu);
        var text = new GreedyTextGenerator(generator, tokenizer, RwkuPrompts.StopIds(tokenizer));
        var answer = text.Generate([question.Prompt.Render(tokenizer.ChatFormat)], RwkuPrompts.MaxNewTokens).Single();
        Assert.Equal(question.Answer, RwkuPrompts.Answer(answer));
        var continuation = generator.Generate([tokenizer.EncodeToIds(question.Prompt.Render(tokenizer.ChatFormat))], RwkuPrompts.MaxNewTokens, RwkuPrompts.StopIds(tokenizer)).Single();
        Assert.True(continuation.Stopped, "generation ran to the token limit instead of stopping at the end of text");
    }

    [Fact]
    public void A_run_interrupted_after_a_checkpoint_resumes_to_the_weights_of_an_uninterrupted_run()
    {
        var settings = Tiny with { Steps = 12, CheckpointEvery = 4 };
        var uninterrupted = ToyPretraining.Run(world.Root, _temp.File("a"), settings, GradCheck.Cpu);

        var output = _temp.File("b");
        Assert.Throws<OperationCanceledException>(() =>
            ToyPretraining.Run(world.Root, output, settings, GradCheck.Cpu, progress: p => { if (p.Step == 6) throw new OperationCanceledException(); }));
        Assert.False(Directory.Exists(output));   // no half-made artifact folder
        Assert.True(Directory.Exists(ToyPretraining.TrainingFolder(output)));
        Assert.Contains("--resume", Assert.Throws<IOException>(() => ToyPretraining.Run(world.Root, output, settings, GradCheck.Cpu)).Message);

        var steps = new List<long>();
        ToyPretraining.Run(world.Root, output, settings, GradCheck.Cpu, resume: true, progress: p => steps.Add(p.Step));
        Assert.Equal(Enumerable.Range(5, 8).Select(s => (long)s), steps);   // from the checkpoint of step 4
        Assert.Equal(Sha256(Path.Combine(uninterrupted, ArtifactExporter.WeightsFile)), Sha256(Path.Combine(output, ArtifactExporter.WeightsFile)));
    }

    [Fact]
    public void The_same_seed_gives_the_same_weights_and_another_seed_other_weights()
    {
        var settings = Tiny with { Steps = 3 };
        string Weights(string name, int seed) =>
            Sha256(Path.Combine(ToyPretraining.Run(world.Root, _temp.File(name), settings with { Seed = seed }, GradCheck.Cpu), ArtifactExporter.WeightsFile));
        Assert.Equal(Weights("a", 1), Weights("b", 1));
        Assert.NotEqual(Weights("c", 1), Weights("d", 2));
    }

    // ---- bad input ----

    [Fact]
    public void A_missing_world_folder_is_refused_naming_it()
    {
        var missing = _temp.File("no-world");
        var e = Assert.Throws<DirectoryNotFoundException>(() => ToyPretraining.Run(missing, _temp.File("model"), Tiny, GradCheck.Cpu));
        Assert.Contains(missing, e.Message);
        Assert.False(Directory.Exists(_temp.File("model")));
    }

    [Fact]
    public void A_world_without_its_tokenizer_or_training_files_is_refused_naming_the_missing_path()
    {
        var noTokenizer = _temp.File("no-tokenizer");
        CopyWorld(noTokenizer);
        Directory.Delete(Path.Combine(noTokenizer, WorldFolder.TokenizerFolderName), recursive: true);
        var e = Assert.Throws<DirectoryNotFoundException>(() => ToyPretraining.Run(noTokenizer, _temp.File("model"), Tiny, GradCheck.Cpu));
        Assert.Contains(Path.Combine(noTokenizer, WorldFolder.TokenizerFolderName), e.Message);

        var noQuestions = _temp.File("no-questions");
        CopyWorld(noQuestions);
        File.Delete(Path.Combine(noQuestions, WorldFolder.TrainingQuestionsFile));
        var f = Assert.Throws<FileNotFoundException>(() => ToyPretraining.Run(noQuestions, _temp.File("model"), Tiny, GradCheck.Cpu));
        Assert.Contains(Path.Combine(noQuestions, WorldFolder.TrainingQuestionsFile), f.Message);
    }

    [Fact]
    public void An_existing_output_folder_is_kept_unless_forced()
    {
        var output = Directory.CreateDirectory(_temp.File("taken")).FullName;
        File.WriteAllText(Path.Combine(output, "mine.txt"), "keep");
        Assert.Contains("--force", Assert.Throws<IOException>(() => ToyPretraining.Run(world.Root, output, Tiny with { Steps = 1 }, GradCheck.Cpu)).Message);
        Assert.True(File.Exists(Path.Combine(output, "mine.txt")));
        ToyPretraining.Run(world.Root, output, Tiny with { Steps = 1 }, GradCheck.Cpu, force: true);
        Assert.False(File.Exists(Path.Combine(output, "mine.txt")));
        ArtifactModel.Open(output);
    }

    [Fact]
    public void A_resume_with_other_settings_or_another_world_is_refused_listing_the_differences()
    {
        var w = _temp.File("world");
        CopyWorld(w);
        var settings = Tiny with { Steps = 8, CheckpointEvery = 4 };
        var output = _temp.File("model");
        Assert.Throws<OperationCanceledException>(() =>
            ToyPretraining.Run(w, output, settings, GradCheck.Cpu, progress: p => { if (p.Step == 6) throw new OperationCanceledException(); }));

        var e = Assert.Throws<InvalidOperationException>(() =>
            ToyPretraining.Run(w, output, settings with { Steps = 12, LearningRate = 2e-2 }, GradCheck.Cpu, resume: true));
        Assert.Contains("LearningRate: recorded 0.01, now 0.02; Steps: recorded 8, now 12.", e.Message);

        var questions = Path.Combine(w, WorldFolder.TrainingQuestionsFile);
        var original = File.ReadAllBytes(questions);
        SmallToyWorld.Keep(w, WorldFolder.TrainingQuestionsFile, 23);
        Assert.Contains("world: recorded", Assert.Throws<InvalidOperationException>(() => ToyPretraining.Run(w, output, settings, GradCheck.Cpu, resume: true)).Message);

        File.WriteAllBytes(questions, original);   // the recorded settings again: the resume continues after step 4
        var steps = new List<long>();
        ToyPretraining.Run(w, output, settings, GradCheck.Cpu, resume: true, progress: p => steps.Add(p.Step));
        Assert.Equal([5L, 6, 7, 8], steps);
    }

    [Fact]
    public void An_output_overlapping_the_world_is_refused_with_force_and_the_world_stays_byte_identical()
    {
        var w = _temp.File("world");
        CopyWorld(w);
        var before = FolderContents.Hash(w);
        foreach (var output in new[] { w, Path.Combine(w, "model"), _temp.Path })
            Assert.Contains("refused (also with --force)", Assert.Throws<IOException>(() => ToyPretraining.Run(w, output, Tiny with { Steps = 1 }, GradCheck.Cpu, force: true)).Message);
        Assert.Equal(before, FolderContents.Hash(w));
    }

    /// <summary>The files a world's loader reads (training files, tokenizer), copied to <paramref name="target"/>.</summary>
    void CopyWorld(string target)
    {
        Directory.CreateDirectory(Path.Combine(target, WorldFolder.TokenizerFolderName));
        foreach (var file in new[] { WorldFolder.CorpusFile, WorldFolder.TrainingQuestionsFile, WorldFolder.TrainingChoicesFile })
            File.Copy(Path.Combine(world.Root, file), Path.Combine(target, file));
        foreach (var file in Directory.GetFiles(Path.Combine(world.Root, WorldFolder.TokenizerFolderName)))
            File.Copy(file, Path.Combine(target, WorldFolder.TokenizerFolderName, Path.GetFileName(file)));
    }
}
