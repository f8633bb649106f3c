using System.Diagnostics;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Unlearning;
using CommandLine;

namespace AlignThenUnlearn.Benchmarks;

[Verb("head", HelpText = "Head steps per second of (re)alignment: recomputing the LLM's hidden states at every step vs reading them from the hidden-state cache (in memory and memory-mapped).")]
public sealed class HeadOptions
{
    [Option("model", Default = "both", HelpText = "toy (the toy world's model shape with the toy preset), phi3 (--phi3-config with the paper preset's head) or both.")] public string Model { get; set; } = "both";
    [Option("phi3-config", Default = "models/phi3-mini-8-layers.json", HelpText = "Hugging Face config.json of the Phi-3-shaped model; its head reads the last hidden state.")] public string Phi3Config { get; set; } = "";
    [Option("phi3-batch", Default = 2, HelpText = "Rows per step for the Phi-3-shaped model (the paper's 16 takes minutes per recomputed step on a CPU).")] public int Phi3Batch { get; set; }
    [Option("phi3-seq", Default = 64, HelpText = "Tokens per row for the Phi-3-shaped model (the paper's 256, see --phi3-batch).")] public int Phi3Seq { get; set; }
    [Option("toy-vocab", Default = 1408, HelpText = "Vocabulary of the toy model shape (the world tokenizer of seed 1 has 1,408 tokens).")] public int ToyVocab { get; set; }
    [Option("pieces", Default = 4, HelpText = "Corpus rows per batch row: the cache holds this many batches' rows.")] public int Pieces { get; set; }
    [Option("steps", Default = 3, HelpText = "Timed head steps per mode (after 1 warm-up step).")] public int Steps { get; set; }
    [Option("device", Default = "cpu", HelpText = "cpu, cuda or auto.")] public string Device { get; set; } = "cpu";
    [Option("threads", Default = 0, HelpText = "ONNX Runtime intra-op threads (0: its default, one per physical core).")] public int Threads { get; set; }
}

/// <summary>Times (re)alignment steps as <see cref="AtuRun"/> takes them (joint graph or head-only graph on cached hidden
/// states, dropout on, AdamW with clipping), on random LLM weights and a random corpus of windows: steps per second of
/// each mode, and the time to compute the cache, which a phase pays once.</summary>
public static class HeadBenchmark
{
    const int WarmupSteps = 1;

    sealed record Setup(string Name, DecoderConfig Config, int Layer, AtuPreset Preset, int EncoderDim, int Batch, int Seq);

    public static int Run(HeadOptions o)
    {
        using var device = ExecutionDevice.Create(o.Device, o.Threads, notice: Console.WriteLine);
        var setups = new List<Setup>();
        if (o.Model is "toy" or "both")
        {
            var toy = AtuPreset.Load("toy");
            setups.Add(new Setup("toy", ToyConfig(o.ToyVocab), toy.Layers[0], toy, 384, toy.Alignment.BatchSize, toy.Alignment.SequenceLength));
        }
        if (o.Model is "phi3" or "both")
        {
            var config = HfConfig.Load(o.Phi3Config);
            setups.Add(new Setup("phi3 " + o.Phi3Config, config, config.NumHiddenLayers, AtuPreset.Load("paper"), 768, o.Phi3Batch, o.Phi3Seq));
        }
        if (setups.Count == 0) throw new ArgumentException($"--model {o.Model}: expected toy, phi3 or both");

        Console.WriteLine($"{device.Description}, {(o.Threads > 0 ? $"{o.Threads} intra-op threads" : "ONNX Runtime's default threads")}, " +
            $"{Environment.ProcessorCount} logical processors; {o.Steps} timed steps per mode after {WarmupSteps} warm-up step");
        foreach (var setup in setups) Measure(device, setup, o);
        return 0;
    }

    static void Measure(ExecutionDevice device, Setup s, HeadOptions o)
    {
        var clock = Stopwatch.StartNew();
        var h = s.Preset.Head;
        var head = new EmbeddingHead(new EmbeddingHeadConfig(s.Config.HiddenSize, h.DModel, h.Heads, h.FeedForward, h.Layers, s.EncoderDim, h.Dropout, h.LayerNormEps));
        UnlearningGraphs.HeadAt[] heads = [new(s.Layer, head)];
        var joint = UnlearningGraphs.Alignment(s.Config, heads, s.EncoderDim);
        var headOnly = UnlearningGraphs.Alignment(s.Config, heads, s.EncoderDim, fromHiddenStates: true);
        using var store = new ParameterStore(device);
        foreach (var spec in joint.LlmParameters)   // one tensor at a time: a Phi-3-shaped model is gigabytes
            foreach (var (name, value) in RandomInit.Create([spec], seed: 1)) store.Add(name, (float[])value.Data, value.Shape, trainable: false);
        foreach (var (name, values) in head.InitialValues(seed: 1)) store.Add(name, values, head.Parameters.Single(p => p.Name == name).Shape, trainable: false);
        var corpus = RandomCorpus(s.Config.VocabSize, s.EncoderDim, o.Pieces * s.Batch, s.Seq / 2, s.Seq);
        Console.WriteLine();
        Console.WriteLine($"{s.Name}: hidden {s.Config.HiddenSize}, {s.Config.NumHiddenLayers} layers, {s.Config.NumAttentionHeads} heads, head reads hidden_states[{s.Layer}]; " +
            $"head {h.Layers} layers d_model {h.DModel}; batch {s.Batch} x seq {s.Seq}, {corpus.TokenIds.Count} corpus rows; weights and graphs in {clock.Elapsed.TotalSeconds:F1} s");

        // The modes take their steps in turn, so that all of them see the same load (other processes share the CPU).
        var modes = new List<Mode> { new("recomputed hidden states", device, store, joint, new WindowBatcher(corpus, s.Batch, s.Seq, seed: 3), null, s.Preset) };
        try
        {
            foreach (var (name, limit) in new[] { ("cached in memory", 2L << 30), ("cached memory-mapped", 1L) })
            {
                var data = new WindowBatcher(corpus, s.Batch, s.Seq, seed: 3);
                clock.Restart();
                var cache = HiddenStateCache.Compute(device, store, s.Config, [s.Layer], data, new HiddenStateCacheSettings { MemoryLimitBytes = limit }, Path.GetTempPath(), s.Batch);
                modes.Add(new Mode($"{name} ({cache.Bytes / 1048576.0:F1} MiB, computed in {clock.Elapsed.TotalSeconds:F1} s)", device, store, headOnly, data, cache, s.Preset));
            }
            using var optimizer = new Optimizer(store, new AdamWSettings(s.Preset.Alignment.LearningRate, WeightDecay: 0, MaxGradNorm: s.Preset.Alignment.MaxGradNorm),
                head.Parameters.Select(p => p.Name).ToList());
            for (int i = 0; i < WarmupSteps + o.Steps; i++)
                foreach (var mode in modes) mode.Step(optimizer, timed: i >= WarmupSteps);
            double recompute = modes[0].StepsPerSecond;
            foreach (var mode in modes)
                Console.WriteLine($"  {mode.Name}: {mode.StepsPerSecond:F3} steps/s" + (mode == modes[0] ? "" : $", {mode.StepsPerSecond / recompute:F1}x"));
        }
        finally { foreach (var mode in modes) mode.Dispose(); }
    }

    /// <summary>Head steps on <paramref name="graph"/> as a run takes them (dropout on), with the hidden states read from
    /// <paramref name="cache"/> when there is one; one optimizer serves every mode (they train the same head).</summary>
    sealed class Mode(string name, ExecutionDevice device, ParameterStore store, UnlearningGraphs.Graph graph, WindowBatcher data, HiddenStateCache? cache, AtuPreset preset) : IDisposable
    {
        readonly TrainSession _session = new(device, TrainGraphs.WithDropoutSeed(graph.Training, 5), store, UnlearningGraphs.Loss, [UnlearningGraphs.MeanCosine]);
        readonly List<double> _seconds = [];

        public string Name => name;
        /// <summary>The median over the timed steps.</summary>
        public double StepsPerSecond => 1 / _seconds.Order().ElementAt(_seconds.Count / 2);

        public void Step(Optimizer optimizer, bool timed)
        {
            var clock = Stopwatch.StartNew();
            var batch = new Dictionary<string, HostTensor>(data.Next()) { [EmbeddingHead.DropoutRatio] = HostTensor.Of([(float)preset.Head.Dropout]) };
            using var hidden = cache?.Read(data.LastPieces, (int)batch[DecoderGraph.InputIds].Shape[1]);
            var result = _session.Run(batch, onDevice: hidden?.Tensors);
            optimizer.Step(_session.Gradients, preset.Alignment.LearningRate);
            if (!double.IsFinite(result.Loss)) throw new InvalidOperationException($"{name}: the loss is {result.Loss}");
            if (timed) _seconds.Add(clock.Elapsed.TotalSeconds);
        }

        public void Dispose() { _session.Dispose(); cache?.Dispose(); }
    }

    /// <summary>The toy world's model shape (<see cref="AlignThenUnlearn.ToyWorld.ToyPretrainingSettings"/>'s defaults) for a vocabulary.</summary>
    internal static DecoderConfig ToyConfig(int vocab)
    {
        var pretraining = new AlignThenUnlearn.ToyWorld.ToyPretrainingSettings();
        return new DecoderConfig
        {
            Family = ModelFamily.Llama, HiddenSize = pretraining.HiddenSize, NumHiddenLayers = pretraining.Layers, NumAttentionHeads = pretraining.Heads,
            NumKeyValueHeads = pretraining.KeyValueHeads, IntermediateSize = pretraining.IntermediateSize, VocabSize = vocab, MaxPositionEmbeddings = pretraining.MaxPositions,
        };
    }

    /// <summary>Texts of random tokens <paramref name="minLength"/> to <paramref name="maxLength"/> long (shorter ones are
    /// padded in a batch), with random window embeddings, every window full.</summary>
    internal static CorpusWindows RandomCorpus(int vocab, int dim, int texts, int minLength, int maxLength)
    {
        var random = new Random(7);
        var ids = Enumerable.Range(0, texts).Select(_ => Enumerable.Range(0, random.Next(minLength, maxLength + 1)).Select(_ => random.Next(vocab)).ToArray()).ToList();
        var embeddings = ids.Select(t => Enumerable.Range(0, t.Length * dim).Select(_ => (float)(2 * random.NextDouble() - 1)).ToArray()).ToArray();
        return new CorpusWindows(ids, embeddings, ids.Select(t => Enumerable.Repeat(true, t.Length).ToArray()).ToArray(), dim, FromCache: false);
    }
}
