using System.Security.Cryptography;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Models.Checkpoints;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Tests.Support;
using AlignThenUnlearn.Unlearning;

namespace AlignThenUnlearn.Tests.Unlearning;

/// <summary>(Re)alignment on hidden states computed once per phase gives what recomputing them at every step gives:
/// the cached rows equal the LLM's hidden states of the padded batch, and a run's head and LLM after 20 alignment
/// steps, unlearning and 20 realignment steps (dropout on) agree with the recomputing run, in memory and memory-mapped.</summary>
public sealed class HiddenStateCacheTests : IDisposable
{
    readonly TinyChatModel _model = new();
    readonly TempFolder _temp = new();
    public void Dispose() { _model.Dispose(); _temp.Dispose(); }

    static readonly string[] Forget = ["the cat sat on the mat in the sun", "a cat can hunt at night", "the other cat ran to the tree"];
    static readonly string[] Others = ["cats hate rain on their coats", "the heron stood in the reeds", "an otter ate in the river"];

    AtuInputs Inputs(SentenceEncoder encoder)
    {
        var cache = _temp.File("windows");
        string[] tokenizerFiles = [Path.Combine(_model.Artifacts, "tokenizer.model")];
        var alignment = WindowEmbeddingCache.Compute([.. Forget, .. Others], _model.Tokenizer, encoder, 4, cache, tokenizerFiles);
        return new AtuInputs(_model.Config, _model.Model.PathOf(ArtifactExporter.WeightsFile), alignment, alignment.First(Forget.Length),
            encoder.Embed(["cat"])[0], "cat");
    }

    string[] RowFiles() => Directory.Exists(_temp.File("rows")) ? Directory.GetFiles(_temp.File("rows")) : [];

    [Theory]
    [InlineData(1L << 30)]   // in memory: batches gathered by the device
    [InlineData(1L)]         // over the limit: memory-mapped from a file
    public void Cached_rows_are_the_hidden_states_the_LLM_computes_for_each_padded_batch(long memoryLimit)
    {
        using var encoder = SentenceEncoder.Open(EncoderFolder.FromMiniLmPackage(_temp.File("minilm")), GradCheck.Cpu);
        var inputs = Inputs(encoder);
        int[] layers = [1, 2];
        var decoder = DecoderBuilder.Build(_model.Config, new DecoderGraphOptions { HiddenStates = layers, Logits = false });
        using var store = new ParameterStore(GradCheck.Cpu);
        store.Load(inputs.LlmWeights, decoder.Parameters, _ => false);
        var data = new WindowBatcher(inputs.AlignmentCorpus, batchSize: 3, sequenceLength: 8, seed: 5);
        Assert.True(data.Pieces > 6, $"{data.Pieces} pieces: too few for batches of several lengths");

        bool padded = false;
        using (var cache = HiddenStateCache.Compute(GradCheck.Cpu, store, _model.Config, layers, data,
            new HiddenStateCacheSettings { MemoryLimitBytes = memoryLimit, Folder = _temp.File("rows") }, _temp.Path, batchSize: 2))
        {
            Assert.Equal(memoryLimit > 1, cache.InMemory);
            // A file per layer, which on Unix is unlinked as soon as it is open (a killed run leaves nothing behind).
            Assert.Equal(cache.InMemory || !OperatingSystem.IsWindows() ? 0 : layers.Length, RowFiles().Length);
            for (int step = 0; step < 4; step++)
            {
                var batch = data.Next();
                int seq = (int)batch[DecoderGraph.InputIds].Shape[1];
                padded |= batch[UnlearningGraphs.TokenMask].Floats.Contains(0f);
                // The reference: the LLM run on this very batch (its pieces padded to the batch's longest).
                var feeds = new Dictionary<string, HostTensor> { [DecoderGraph.InputIds] = batch[DecoderGraph.InputIds] };
                foreach (var p in decoder.Parameters) feeds[p.Name] = HostTensor.Of(store.Read(p.Name), p.Shape);
                var expected = GradCheck.Cpu.Run(decoder.Model, feeds);
                using var rows = cache.Read(data.LastPieces, seq);
                foreach (var layer in layers)
                {
                    var name = DecoderGraph.HiddenStateName(layer);
                    var want = expected[decoder.HiddenStates[layer]];
                    Assert.Equal(want.Shape, rows.Tensors[name].Shape);
                    var got = GradCheck.Cpu.Download<float>(rows.Tensors[name]);
                    double scale = want.Floats.Max(v => Math.Abs(v));
                    Assert.All(want.Floats.Zip(got), p => Assert.True(Math.Abs(p.First - p.Second) <= 1e-5 * scale, $"layer {layer}: {p.Second} instead of {p.First}"));
                }
            }
        }
        Assert.True(padded, "no batch had padding: the test would not see positions past a piece's end");
        Assert.Empty(RowFiles());   // the file goes with the cache
    }

    sealed class Killed : Exception;

    static AtuPreset Preset(int checkpointEvery) => AtuPreset.Load("toy") with
    {
        Layers = [1],
        WindowTokens = 4,
        Head = new HeadSettings { Layers = 1, DModel = 16, Heads = 2, FeedForward = 32, Dropout = 0.1 },
        Alignment = new PhaseSettings { Optimizer = "adam", LearningRate = 3e-3, MaxGradNorm = 1, BatchSize = 2, SequenceLength = 8, Steps = 20 },
        Realignment = new PhaseSettings { Optimizer = "adam", LearningRate = 3e-3, MaxGradNorm = 1, BatchSize = 2, SequenceLength = 8 },
        Unlearning = new PhaseSettings { Optimizer = "sgd", LearningRate = 0.05, MaxGradNorm = 1, BatchSize = 2, SequenceLength = 8 },
        Stages = [new(-0.5, 3, 20)],
        CheckpointEvery = checkpointEvery,
        Seed = 11,
    };

    string? Run(AtuInputs inputs, string name, HiddenStateCacheSettings hiddenStates, bool resume = false, int killAt = -1)
    {
        int steps = 0;
        using var run = new AtuRun(Preset(checkpointEvery: 7), inputs, new UnlearningRunOptions
        {
            Device = GradCheck.Cpu, Folder = _temp.File(name), Resume = resume,
            Progress = _ => { if (++steps == killAt) throw new Killed(); },
        }, new AtuRunOptions { HiddenStates = hiddenStates });
        try { return run.Run().Final; }
        catch (Killed) { return null; }
    }

    static Dictionary<string, float[]> Read(string file)
    {
        using var weights = SafetensorsCheckpoint.Open(file);
        return weights.Names.ToDictionary(n => n, n =>
        {
            var values = new float[weights.Entry(n).Shape.Aggregate(1L, (a, b) => a * b)];
            weights.ReadSlice(n, 0, values);
            return values;
        });
    }

    static double Norm(IEnumerable<double> values) => Math.Sqrt(values.Sum(v => v * v));

    [Fact]
    public void Alignment_and_realignment_on_cached_hidden_states_equal_recomputing_them()
    {
        using var encoder = SentenceEncoder.Open(EncoderFolder.FromMiniLmPackage(_temp.File("minilm")), GradCheck.Cpu);
        var inputs = Inputs(encoder);
        var recomputed = Run(inputs, "recomputed", new HiddenStateCacheSettings { Enabled = false })!;
        var memory = Run(inputs, "memory", new HiddenStateCacheSettings { Folder = _temp.File("rows") })!;
        var mapped = Run(inputs, "mapped", new HiddenStateCacheSettings { MemoryLimitBytes = 1, Folder = _temp.File("rows") })!;
        Assert.DoesNotContain("hidden states", File.ReadAllText(_temp.File("recomputed/run.log")));
        Assert.Contains("align: hidden states of", File.ReadAllText(_temp.File("memory/run.log")));
        Assert.Contains("realign 1: hidden states of", File.ReadAllText(_temp.File("memory/run.log")));
        Assert.Contains("cached in a memory-mapped file", File.ReadAllText(_temp.File("mapped/run.log")));
        Assert.Empty(RowFiles());

        // The head after 20 alignment steps, 3 unlearning steps (which read the head) and 20 realignment steps, and the LLM.
        var preset = Preset(0);
        var head = new EmbeddingHead(new EmbeddingHeadConfig(_model.Config.HiddenSize, preset.Head.DModel, preset.Head.Heads, preset.Head.FeedForward,
            preset.Head.Layers, encoder.Dimension, preset.Head.Dropout, preset.Head.LayerNormEps));
        var initial = head.InitialValues(preset.Seed);
        foreach (var file in new[] { AtuRun.HeadFile, RunHarness.ModelFile })
        {
            var (want, got) = (Read(Path.Combine(recomputed, file)), Read(Path.Combine(memory, file)));
            Assert.Equal(want.Keys.Order(), got.Keys.Order());
            foreach (var (name, values) in want)
            {
                double difference = Norm(values.Zip(got[name], (a, b) => (double)a - b)), size = Norm(values.Select(v => (double)v));
                Assert.True(difference <= 1e-5 * size, $"{file} {name}: relative difference {difference / size:G3}");
                // The head moved far beyond that tolerance, so the comparison sees the training.
                if (initial.TryGetValue(name, out var start))
                    Assert.True(Norm(values.Zip(start, (a, b) => (double)a - b)) > 1e-3 * size, $"{name} did not move");
            }
            // The memory-mapped rows are the same numbers as those in memory.
            Assert.Equal(SHA256.HashData(File.ReadAllBytes(Path.Combine(memory, file))), SHA256.HashData(File.ReadAllBytes(Path.Combine(mapped, file))));
        }

        // Killed in the realignment between its checkpoints and resumed: the cache is computed again, the same.
        Assert.Null(Run(inputs, "cut", new HiddenStateCacheSettings { MemoryLimitBytes = 1, Folder = _temp.File("rows") }, killAt: 20 + 3 + 10));
        var resumed = Run(inputs, "cut", new HiddenStateCacheSettings { MemoryLimitBytes = 1, Folder = _temp.File("rows") }, resume: true)!;
        foreach (var file in new[] { AtuRun.HeadFile, RunHarness.ModelFile })
            Assert.Equal(SHA256.HashData(File.ReadAllBytes(Path.Combine(mapped, file))), SHA256.HashData(File.ReadAllBytes(Path.Combine(resumed, file))));
    }
}
