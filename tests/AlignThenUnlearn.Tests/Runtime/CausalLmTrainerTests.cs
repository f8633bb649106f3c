using System.Diagnostics;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Tests.Support;
using AlignThenUnlearn.Unlearning;

namespace AlignThenUnlearn.Tests.Runtime;

/// <summary>The causal-LM trainer end to end on a tiny decoder: it memorises a text, a killed run resumes to exactly
/// the parameters of an uninterrupted one, and invalid input stops a run clearly without losing a checkpoint.</summary>
public sealed class CausalLmTrainerTests : IDisposable
{
    readonly TempFolder _temp = new();
    public void Dispose() => _temp.Dispose();

    /// <summary>Characters as tokens: id = index in the sorted alphabet of the texts.</summary>
    sealed class CharTokens(params string[] texts)
    {
        readonly string _alphabet = new(texts.SelectMany(t => t).Distinct().Order().ToArray());
        public int[] Encode(string text) => text.Select(c => _alphabet.IndexOf(c)).ToArray();
        public string Decode(IEnumerable<long> ids) => new(ids.Select(i => _alphabet[(int)i]).ToArray());
    }

    static DecoderConfig Tiny(int vocab = 40, int hidden = 32) => new()
    {
        Family = ModelFamily.Llama, HiddenSize = hidden, NumHiddenLayers = 2, NumAttentionHeads = 4, NumKeyValueHeads = 2,
        IntermediateSize = 64, VocabSize = vocab, MaxPositionEmbeddings = 64,
    };

    // ---- (a) memorisation ----

    [Fact]
    public void A_tiny_decoder_memorises_a_text_and_greedy_decoding_reproduces_it()
    {
        const string text = "the quick brown fox jumps over the lazy dog";
        var tokens = new CharTokens(text);
        var config = Tiny();
        var device = TestDevice.Current;
        using var store = CausalLmTrainer.RandomParameters(device, config, seed: 3);
        var options = new TrainerOptions { Steps = 150, Schedule = new WarmupCosineSchedule(10, 150, 0.1) };
        using var trainer = new CausalLmTrainer(store, config, new AdamWSettings(LearningRate: 1e-2, WeightDecay: 0, MaxGradNorm: 1), options);
        double lastLoss = double.NaN;
        var clock = Stopwatch.StartNew();
        trainer.Train(new TokenBatcher([tokens.Encode(text)], batchSize: 1, seed: 0, maxLength: 64), p => lastLoss = p.Loss);
        Assert.True(lastLoss < 0.05, $"loss after 150 steps: {lastLoss:G4} ({clock.Elapsed.TotalSeconds:F1} s)");

        // Greedy decoding with the training lowering's logits: argmax of the last position, appended, token by token.
        var decoder = DecoderBuilder.Build(config);
        using var session = device.Open(decoder.Model);
        var feeds = store.Names.ToDictionary(n => n, n => HostTensor.Of(store.Read(n), store[n].Shape));
        var ids = new List<long> { tokens.Encode(text)[0] };
        while (ids.Count < text.Length)
        {
            feeds[DecoderGraph.InputIds] = HostTensor.Of(ids.ToArray(), 1, ids.Count);
            var logits = ExecutionDevice.Run(session, feeds, [decoder.Logits!])[decoder.Logits!].Floats;
            var last = logits.AsSpan((ids.Count - 1) * config.VocabSize, config.VocabSize).ToArray();
            ids.Add(Array.IndexOf(last, last.Max()));
        }
        Assert.Equal(text, tokens.Decode(ids));
    }

    // ---- (b) kill and resume ----

    static readonly string[] Sentences = ["hello world", "the cat sat", "on the mat", "a b c d e f", "quick fox", "lazy dogs nap"];
    static readonly CharTokens SentenceTokens = new(Sentences);
    const long Steps = 12, Every = 4;

    /// <summary>A 12-step run with everything a checkpoint must carry: AdamW moments and step, clipping, a warm-up cosine
    /// schedule, two accumulated micro-batches, shuffled data over several epochs, the trainer's random state (drawn
    /// once per step into <paramref name="draws"/>). CPU with one thread, so that runs are bit-identical.</summary>
    float[][] Run(string folder, bool resume, Action<TrainingProgress>? progress = null, Dictionary<long, ulong>? draws = null,
        Action<string>? checkpointWritten = null)
    {
        var config = Tiny(SentenceTokens.Encode(string.Concat(Sentences)).Max() + 1);
        using var store = CausalLmTrainer.RandomParameters(GradCheck.Cpu, config, seed: 1);
        var options = new TrainerOptions
        {
            Steps = Steps, MicroBatches = 2, Schedule = new WarmupCosineSchedule(3, Steps, 0.2), CheckpointFolder = folder,
            CheckpointEvery = Every, KeepCheckpoints = 2, Resume = resume, RandomSeed = 77,
        };
        using var trainer = new CausalLmTrainer(store, config, new AdamWSettings(LearningRate: 3e-3, MaxGradNorm: 0.5), options);
        trainer.Train(new TokenBatcher(Sentences.Select(SentenceTokens.Encode).ToList(), batchSize: 2, seed: 5, maxLength: 32), p =>
        {
            ulong draw = trainer.Trainer.Random.Next();   // every run draws, as a caller using the trainer's randomness would
            if (draws is not null) draws[p.Step] = draw;
            progress?.Invoke(p);
        }, checkpointWritten);
        return store.Names.Select(store.Read).ToArray();
    }

    sealed class SimulatedKill : Exception;

    static void KillAt(long step, TrainingProgress p) { if (p.Step == step) throw new SimulatedKill(); }

    static void AssertBitIdentical(float[][] expected, float[][] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.Equal(expected[i].Select(BitConverter.SingleToInt32Bits), actual[i].Select(BitConverter.SingleToInt32Bits));
    }

    [Fact]
    public void A_run_killed_between_checkpoints_resumes_to_bit_identical_parameters()
    {
        var uninterruptedDraws = new Dictionary<long, ulong>();
        var uninterrupted = Run(_temp.File("a"), resume: false, draws: uninterruptedDraws);

        var folder = _temp.File("b");
        Assert.Throws<SimulatedKill>(() => Run(folder, resume: false, p => KillAt(6, p)));
        Assert.Equal(Path.Combine(folder, "step-00000004"), new CheckpointDirectory(folder).Latest);

        var resumedSteps = new List<long>();
        var resumedDraws = new Dictionary<long, ulong>();
        var resumed = Run(folder, resume: true, p => resumedSteps.Add(p.Step), resumedDraws);

        Assert.Equal(Enumerable.Range(5, 8).Select(s => (long)s), resumedSteps);   // steps 5 and 6 are redone from the checkpoint of step 4
        AssertBitIdentical(uninterrupted, resumed);
        Assert.All(resumedDraws, d => Assert.Equal(uninterruptedDraws[d.Key], d.Value));   // the random state travelled too
        Assert.Equal(["step-00000008", "step-00000012"], Directory.GetDirectories(folder).Select(Path.GetFileName).Order());   // the last 2 kept
    }

    [Fact]
    public void A_half_written_checkpoint_is_ignored_and_resume_takes_the_newest_complete_one()
    {
        var uninterrupted = Run(_temp.File("a"), resume: false);

        // Killed while writing step 8's checkpoint: its staging folder holds a truncated file, and a step folder lacks state.json.
        var folder = _temp.File("b");
        Assert.Throws<SimulatedKill>(() => Run(folder, resume: false, p => KillAt(7, p)));
        var staging = Directory.CreateDirectory(Path.Combine(folder, ".step-00000008.partial-4242-0123456789abcdef")).FullName;
        File.WriteAllBytes(Path.Combine(staging, TrainingCheckpoint.ParametersFile), [1, 2, 3]);
        var incomplete = Directory.CreateDirectory(Path.Combine(folder, "step-00000008")).FullName;
        File.Copy(Path.Combine(folder, "step-00000004", TrainingCheckpoint.ParametersFile), Path.Combine(incomplete, TrainingCheckpoint.ParametersFile));

        var resumedSteps = new List<long>();
        AssertBitIdentical(uninterrupted, Run(folder, resume: true, p => resumedSteps.Add(p.Step)));
        Assert.Equal(5, resumedSteps[0]);
        Assert.False(Directory.Exists(staging));
    }

    [Fact]
    public void A_kill_between_completing_a_checkpoint_and_updating_latest_resumes_from_the_completed_one()
    {
        var uninterrupted = Run(_temp.File("a"), resume: false);
        var folder = _temp.File("b");
        Assert.Throws<SimulatedKill>(() => Run(folder, resume: false, checkpointWritten: c => { if (c.EndsWith("step-00000008")) throw new SimulatedKill(); }));
        File.WriteAllText(Path.Combine(folder, CheckpointDirectory.LatestFile), "step-00000004\n");   // as if killed before the pointer moved

        var resumedSteps = new List<long>();
        AssertBitIdentical(uninterrupted, Run(folder, resume: true, p => resumedSteps.Add(p.Step)));
        Assert.Equal(9, resumedSteps[0]);
    }

    [Fact]
    public void A_fresh_run_refuses_a_folder_that_holds_checkpoints()
    {
        var folder = _temp.File("a");
        Assert.Throws<SimulatedKill>(() => Run(folder, resume: false, p => KillAt(5, p)));
        var e = Assert.Throws<IOException>(() => Run(folder, resume: false));
        Assert.Contains("already holds checkpoints", e.Message);
    }

    // ---- (c) invalid input fails clearly and loses nothing ----

    /// <summary>Batches from a batcher, except that micro-batch number <paramref name="at"/> (1-based) is one token
    /// longer than <paramref name="maxLength"/>.</summary>
    sealed class OneLongBatch(TokenBatcher batcher, int at, int maxLength) : IBatchSource
    {
        int _count;
        public IReadOnlyDictionary<string, HostTensor> Next()
        {
            var batch = batcher.Next();
            if (++_count != at) return batch;
            int length = maxLength + 1;
            return new Dictionary<string, HostTensor>
            {
                [TokenBatcher.InputIds] = HostTensor.Of(new long[length], 1, length),
                [TokenBatcher.LossMask] = HostTensor.Of(new float[length], 1, length),
            };
        }
        public System.Text.Json.Nodes.JsonObject SaveState() => batcher.SaveState();
        public void RestoreState(System.Text.Json.Nodes.JsonObject state) => batcher.RestoreState(state);
    }

    [Fact]
    public void A_batch_longer_than_the_maximum_stops_the_run_naming_the_step_and_keeps_the_last_checkpoint()
    {
        var config = Tiny(SentenceTokens.Encode(string.Concat(Sentences)).Max() + 1);
        var folder = _temp.File("run");
        using var store = CausalLmTrainer.RandomParameters(GradCheck.Cpu, config, seed: 1);
        var options = new TrainerOptions { Steps = 6, MicroBatches = 2, CheckpointFolder = folder, CheckpointEvery = 2 };
        using var trainer = new CausalLmTrainer(store, config, new AdamWSettings(LearningRate: 1e-3), options, maxLength: 16);
        var afterStep2 = Array.Empty<float[]>();
        var data = new OneLongBatch(new TokenBatcher(Sentences.Select(SentenceTokens.Encode).ToList(), 2, seed: 5, maxLength: 16), at: 5, maxLength: 16);

        var e = Assert.Throws<ArgumentException>(() => trainer.Train(data, p => { if (p.Step == 2) afterStep2 = store.Names.Select(store.Read).ToArray(); }));

        Assert.Equal("step 3, micro-batch 1: the batch holds sequences of 17 tokens, more than the maximum length 16 of this trainer", e.Message);
        Assert.Equal(Path.Combine(folder, "step-00000002"), new CheckpointDirectory(folder).Latest);
        AssertBitIdentical(afterStep2, store.Names.Select(store.Read).ToArray());   // nothing of step 3 was applied
        Assert.Equal(2, trainer.Trainer.Step);
    }

    [Fact]
    public void A_checkpoint_of_another_model_is_refused_and_changes_nothing()
    {
        var folder = _temp.File("run");
        Assert.Throws<SimulatedKill>(() => Run(folder, resume: false, p => KillAt(5, p)));

        var other = Tiny(SentenceTokens.Encode(string.Concat(Sentences)).Max() + 1, hidden: 48);
        using var store = CausalLmTrainer.RandomParameters(GradCheck.Cpu, other, seed: 1);
        var before = store.Names.Select(store.Read).ToArray();
        using var trainer = new CausalLmTrainer(store, other, new AdamWSettings(), new TrainerOptions { Steps = 8, CheckpointFolder = folder, Resume = true });
        var data = new TokenBatcher(Sentences.Select(SentenceTokens.Encode).ToList(), 2, seed: 5, maxLength: 32);

        var e = Assert.Throws<ModelFormatException>(() => trainer.Train(data));

        Assert.Contains("is from another model", e.Message);
        Assert.Contains("step-00000004", e.Message);
        Assert.Contains("'model.embed_tokens.weight' has shape [", e.Message);
        AssertBitIdentical(before, store.Names.Select(store.Read).ToArray());
        Assert.Equal(0, trainer.Trainer.Step);
        Assert.True(TrainingCheckpoint.IsComplete(new CheckpointDirectory(folder).Latest!));
    }

    [Fact]
    public void A_nan_loss_stops_the_run_with_the_step_number_and_latest_stays_at_the_last_good_checkpoint()
    {
        var config = Tiny(SentenceTokens.Encode(string.Concat(Sentences)).Max() + 1);
        var folder = _temp.File("run");
        using var store = CausalLmTrainer.RandomParameters(GradCheck.Cpu, config, seed: 1);
        var options = new TrainerOptions { Steps = 10, CheckpointFolder = folder, CheckpointEvery = 2 };
        using var trainer = new CausalLmTrainer(store, config, new AdamWSettings(LearningRate: 1e-3), options);
        var data = new TokenBatcher(Sentences.Select(SentenceTokens.Encode).ToList(), 2, seed: 5, maxLength: 32);
        var atCheckpoint4 = Array.Empty<float[]>();
        void Progress(TrainingProgress p)
        {
            if (p.Step == 4) atCheckpoint4 = store.Names.Select(store.Read).ToArray();
            // A blow-up after step 5: the final norm's weights become NaN, so step 6's loss is NaN.
            if (p.Step == 5) store.Set("model.norm.weight", Enumerable.Repeat(float.NaN, config.HiddenSize).ToArray());
        }

        var e = Assert.Throws<TrainingDivergedException>(() => trainer.Train(data, Progress));

        Assert.Equal(6, e.Step);
        Assert.StartsWith("step 6: the loss is NaN", e.Message);
        var latest = Path.Combine(folder, "step-00000004");
        Assert.Equal(latest, new CheckpointDirectory(folder).Latest);
        Assert.Equal(latest, e.LastCheckpoint);
        using var reloaded = CausalLmTrainer.RandomParameters(GradCheck.Cpu, config, seed: 2);
        reloaded.Overwrite(Path.Combine(latest, TrainingCheckpoint.ParametersFile));
        AssertBitIdentical(atCheckpoint4, reloaded.Names.Select(reloaded.Read).ToArray());
    }
}
