using System.Diagnostics;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Unlearning;
using CommandLine;
using Onnx;

namespace AlignThenUnlearn.Benchmarks;

[Verb("steps", HelpText = "Steps per second of Align-then-Unlearn's step kinds (alignment recomputing layer l, alignment on cached hidden states, " +
    "unlearning with the frozen head) and of GA's and NPO's, where a step's time goes (session run, optimizer, host batch, garbage collections), " +
    "ONNX Runtime's profile by op type (--profile) and the small model's training MFU (issue 27).")]
public sealed class StepOptions
{
    [Option("shape", Default = "both", HelpText = "toy (the toy world's model with the toy preset, batch 8 x 64), small (hidden 512, 4 layers, " +
        "vocabulary 32,000 with the paper preset's head on the last layer, batch 4 x 128) or both.")] public string Shape { get; set; } = "both";
    [Option("kinds", Default = "all", HelpText = "Comma-separated: align, cached, unlearn, ga, npo, train (the small model's full training step " +
        "at 4 x 256 tokens and its MFU; with --shape small or both), or all.")] public string Kinds { get; set; } = "all";
    [Option("steps", Default = 21, HelpText = "Timed steps per step kind, after 3 warm-up steps.")] public int Steps { get; set; }
    [Option("train-steps", Default = 5, HelpText = "Timed full training steps of the small model (after 2 warm-up steps).")] public int TrainSteps { get; set; }
    [Option("threads", Default = 1, HelpText = "ONNX Runtime intra-op threads (0: its default, one per physical core).")] public int Threads { get; set; }
    [Option("device", Default = "cpu", HelpText = "cpu, cuda or auto.")] public string Device { get; set; } = "cpu";
    [Option("profile", HelpText = "Folder for ONNX Runtime's profiles (one file per session, left there); printed aggregated by op type. " +
        "The profiler's own cost is in the step times of such a run.")] public string? Profile { get; set; }
    [Option("toy-vocab", Default = 1408, HelpText = "Vocabulary of the toy model shape (the world tokenizer of seed 1 has 1,408 tokens).")] public int ToyVocab { get; set; }
    [Option("pieces", Default = 4, HelpText = "Corpus rows per batch row (the hidden-state cache holds this many batches' rows).")] public int Pieces { get; set; }
    [Option("gemm", Default = 2048, HelpText = "Size n of the n x n x n float32 MatMul that measures the GEMM rate for the MFU.")] public int Gemm { get; set; }
}

/// <summary>Times the steps of the product as it takes them (<see cref="TrainSession"/>.Run then <see cref="Optimizer"/>.Step,
/// the batch built by the product's batcher at every step): Align-then-Unlearn's alignment recomputing the LLM up to the
/// head's layer (joint graph, dropout on, the preset's Adam), alignment on cached hidden states (head-only graph), unlearning
/// (the LLM below the head trained through the frozen head, the preset's SGD), and GA's and NPO's steps (the whole LLM,
/// AdamW; NPO with reference log-probabilities as an input). Each kind gets its own parameter store, session and optimizer,
/// on random weights and random tokens. With --profile every session writes ONNX Runtime's profile, aggregated here by op
/// type over the timed steps.</summary>
public static class StepBenchmark
{
    const int WarmupSteps = 3;
    static readonly string[] AllKinds = ["align", "cached", "unlearn", "ga", "npo", "train"];

    sealed record Shape(string Name, DecoderConfig Config, int Layer, AtuPreset Preset, int EncoderDim, int Batch, int Seq, string GaPreset, string NpoPreset);

    public static int Run(StepOptions o)
    {
        if (o.Steps < 1) throw new ArgumentException($"--steps {o.Steps}: at least 1");
        var kinds = o.Kinds == "all" ? AllKinds : o.Kinds.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (kinds.Except(AllKinds).FirstOrDefault() is { } unknown) throw new ArgumentException($"--kinds: unknown step kind '{unknown}' (expected {string.Join(", ", AllKinds)} or all)");
        var shapes = new List<Shape>();
        if (o.Shape is "toy" or "both")
        {
            var toy = AtuPreset.Load("toy");
            shapes.Add(new Shape("toy", HeadBenchmark.ToyConfig(o.ToyVocab), toy.Layers[0], toy, 384, toy.Alignment.BatchSize, toy.Alignment.SequenceLength, "toy-ga", "toy-npo"));
        }
        if (o.Shape is "small" or "both")
            shapes.Add(new Shape("small", TrainBenchmark.Small, TrainBenchmark.Small.NumHiddenLayers, AtuPreset.Load("paper"), 768, 4, 128, "rwku-llama3-ga", "rwku-llama3-npo"));
        if (shapes.Count == 0) throw new ArgumentException($"--shape {o.Shape}: expected toy, small or both");
        if (o.Profile is not null) Directory.CreateDirectory(o.Profile);

        using var device = ExecutionDevice.Create(o.Device, o.Threads, notice: Console.WriteLine);
        Console.WriteLine($"{device.Description}, {(o.Threads > 0 ? $"{o.Threads} intra-op thread{(o.Threads == 1 ? "" : "s")}" : "ONNX Runtime's default threads")}, " +
            $"{Environment.ProcessorCount} logical processors; {o.Steps} timed steps per kind after {WarmupSteps} warm-up steps" +
            (o.Profile is null ? "" : $"; profiling into {o.Profile} (the profiler's cost is in these times)"));
        foreach (var shape in shapes)
        {
            Console.WriteLine();
            Console.WriteLine($"{shape.Name}: hidden {shape.Config.HiddenSize}, {shape.Config.NumHiddenLayers} layers, {shape.Config.NumAttentionHeads} heads " +
                $"({shape.Config.NumKeyValueHeads} key/value), vocabulary {shape.Config.VocabSize}; preset '{shape.Preset.Name}': head on hidden_states[{shape.Layer}], " +
                $"{shape.Preset.Head.Layers} layer(s) of d_model {shape.Preset.Head.DModel}, encoder dim {shape.EncoderDim}; batch {shape.Batch} x {shape.Seq}");
            var weights = RandomInit.Create(shape.Config, seed: 1);
            foreach (var kind in kinds.Where(k => k != "train"))
            {
                using var step = StepKind.Create(kind, shape, weights, device, o);
                step.Measure(WarmupSteps, o.Steps);
                step.Report(o.Profile is null ? null : WarmupSteps);
            }
        }
        if (kinds.Contains("train") && shapes.Any(s => s.Name == "small"))
        {
            Console.WriteLine();
            Console.WriteLine("training step of the small model (forward, cross-entropy, backward, AdamW with clipping):");
            TrainBenchmark.Report(device, [("small", TrainBenchmark.Small)],
                new TrainOptions { Batch = 4, Seq = 256, Steps = o.TrainSteps, Gemm = o.Gemm, Threads = o.Threads, Device = o.Device });
        }
        return 0;
    }

    /// <summary>One step kind of one shape: its store, session, optimizer and batches, and the times of its steps.</summary>
    sealed class StepKind : IDisposable
    {
        public required string Name { get; init; }
        public required ParameterStore Store { get; init; }
        public required TrainSession Session { get; init; }
        public required Optimizer Optimizer { get; init; }
        public required ModelProto TrainModel { get; init; }
        public required ModelProto OptimizerModel { get; init; }
        public required Func<IReadOnlyDictionary<string, HostTensor>> NextBatch { get; init; }
        /// <summary>The cached hidden states of a batch's rows (alignment on cached hidden states only).</summary>
        public Func<int[], (IReadOnlyDictionary<string, DeviceTensor> Tensors, IDisposable Owner)>? OnDevice { get; set; }
        /// <summary>Disposed in order: the optimizer and the session first (they write their profiles), the devices last.</summary>
        public List<IDisposable> Owned { get; } = [];
        /// <summary>The profile prefixes of the training session's and the optimizer's devices, when profiling.</summary>
        public (string Train, string Optimizer)? ProfilePrefixes { get; set; }
        /// <summary>Profiles of those prefixes that were there before this kind's sessions opened (and wrote theirs).</summary>
        HashSet<string> _earlierProfiles = [];

        readonly List<StepTimes> _steps = [];
        double _readSeconds;

        sealed record StepTimes(double Total, double Batch, double Run, double Read, double Optimizer, long Allocated, int Gen0, int Gen1, int Gen2);

        public static StepKind Create(string kind, Shape s, Dictionary<string, ParameterArray> weights, ExecutionDevice device, StepOptions o)
        {
            // With --profile, the training session and the optimizer open on devices of their own, so each session's profile
            // has a name of its own (ONNX Runtime names a file by its prefix and the second it was opened in).
            string Prefix(string role) => Path.Combine(Path.GetFullPath(o.Profile!), $"{s.Name}-{kind}-{role}");
            var trainDevice = o.Profile is null ? device : ExecutionDevice.Create(o.Device, o.Threads, profilePrefix: Prefix("train"));
            var optimizerDevice = o.Profile is null ? device : ExecutionDevice.Create(o.Device, o.Threads, profilePrefix: Prefix("optimizer"));
            var devices = o.Profile is null ? new List<IDisposable>() : [trainDevice, optimizerDevice];
            var earlier = o.Profile is null ? [] : ProfilePrinter.Files(Prefix("train")).Concat(ProfilePrinter.Files(Prefix("optimizer"))).ToHashSet();
            try
            {
                var step = kind is "ga" or "npo" ? TokenLoss(kind, s, weights, trainDevice, optimizerDevice)
                    : AlignThenUnlearn(kind, s, weights, device, trainDevice, optimizerDevice, o.Pieces);
                step.Owned.AddRange(devices);
                if (o.Profile is not null) (step.ProfilePrefixes, step._earlierProfiles) = ((Prefix("train"), Prefix("optimizer")), earlier);
                return step;
            }
            catch { foreach (var d in devices) d.Dispose(); throw; }
        }

        /// <summary>Align-then-Unlearn's steps as <see cref="AtuRun"/> takes them: the batcher's batch plus the target
        /// embedding, tau and the dropout ratio; one piece per step (no micro-batches).</summary>
        static StepKind AlignThenUnlearn(string kind, Shape s, Dictionary<string, ParameterArray> weights, ExecutionDevice device,
            ExecutionDevice trainDevice, ExecutionDevice optimizerDevice, int pieces)
        {
            var h = s.Preset.Head;
            var head = new EmbeddingHead(new EmbeddingHeadConfig(s.Config.HiddenSize, h.DModel, h.Heads, h.FeedForward, h.Layers, s.EncoderDim, h.Dropout, h.LayerNormEps));
            UnlearningGraphs.HeadAt[] heads = [new(s.Layer, head)];
            var (graph, phase, name) = kind switch
            {
                "align" => (UnlearningGraphs.Alignment(s.Config, heads, s.EncoderDim), s.Preset.Alignment, $"alignment recomputing hidden_states[{s.Layer}]"),
                "cached" => (UnlearningGraphs.Alignment(s.Config, heads, s.EncoderDim, fromHiddenStates: true), s.Preset.Alignment, "alignment on cached hidden states"),
                _ => (UnlearningGraphs.Unlearning(s.Config, heads, s.EncoderDim), s.Preset.Unlearning, "unlearning (frozen head)"),
            };
            bool unlearn = kind == "unlearn";
            var store = new ParameterStore(optimizerDevice);
            var owned = new List<IDisposable> { store };
            try
            {
                // The head-only graph has no LLM, but the hidden-state cache runs it.
                var llm = kind == "cached" ? UnlearningGraphs.Alignment(s.Config, heads, s.EncoderDim).LlmParameters : graph.LlmParameters;
                foreach (var spec in llm)
                    store.Add(spec.Name, (float[])weights[spec.Name].Data, spec.Shape, trainable: false);
                foreach (var (parameter, values) in head.InitialValues(seed: 1)) store.Add(parameter, values, head.Parameters.Single(p => p.Name == parameter).Shape, trainable: false);
                var training = unlearn ? graph.Training : TrainGraphs.WithDropoutSeed(graph.Training, 5);
                var trainable = unlearn ? graph.Training.Gradients.Keys.ToList() : graph.HeadParameters.Select(p => p.Name).ToList();
                var corpus = HeadBenchmark.RandomCorpus(s.Config.VocabSize, s.EncoderDim, pieces * s.Batch, s.Seq, s.Seq);
                var data = new WindowBatcher(corpus, s.Batch, s.Seq, seed: 3);
                HiddenStateCache? cache = null;
                if (kind == "cached")
                {
                    var clock = Stopwatch.StartNew();
                    cache = HiddenStateCache.Compute(device, store, s.Config, [s.Layer], data, new HiddenStateCacheSettings(), Path.GetTempPath(), s.Batch);
                    owned.Add(cache);
                    Console.WriteLine($"  (hidden states of {data.Pieces} pieces cached in {clock.Elapsed.TotalSeconds:F1} s, {cache.Bytes / 1048576.0:F1} MiB)");
                }
                var session = new TrainSession(trainDevice, training, store, UnlearningGraphs.Loss, [UnlearningGraphs.MeanCosine]);
                owned.Add(session);
                var settings = phase.ToOptimizerSettings();
                var optimizer = new Optimizer(store, settings, trainable);
                owned.Add(optimizer);
                var target = Enumerable.Range(0, s.EncoderDim).Select(i => (float)Math.Sin(i + 1)).ToArray();
                double tau = s.Preset.Stages.Length > 0 ? s.Preset.Stages[0].Tau : 0.5;
                var step = new StepKind
                {
                    Name = name, Store = store, Session = session, Optimizer = optimizer, TrainModel = training.Model,
                    OptimizerModel = OptimizerGraph(settings, store, trainable),
                    NextBatch = () => new Dictionary<string, HostTensor>(data.Next())
                    {
                        [UnlearningGraphs.TargetEmbedding] = HostTensor.Of(target, target.Length),
                        [UnlearningGraphs.Tau] = HostTensor.Of([(float)tau]),
                        [EmbeddingHead.DropoutRatio] = HostTensor.Of([(float)h.Dropout]),
                    },
                };
                // As AtuRun reads them: the rows of the batch's pieces, padded to the batch's length.
                if (cache is not null)
                    step.OnDevice = rows =>
                    {
                        var states = cache.Read([.. rows.Select(r => data.LastPieces[r])], s.Seq);
                        return (states.Tensors, states);
                    };
                // Disposed in reverse: optimizer and session (which write their profiles), the cache, the store.
                owned.Reverse();
                step.Owned.AddRange(owned);
                return step;
            }
            catch { owned.Reverse(); foreach (var d in owned) d.Dispose(); throw; }
        }

        /// <summary>GA's or NPO's step as <see cref="MethodRun"/> takes it: the whole LLM trainable, the method's joint graph,
        /// <see cref="LabelledBatches"/> of random texts (NPO: each with a reference log-probability), AdamW with the
        /// preset's rate, weight decay and clipping.</summary>
        static StepKind TokenLoss(string kind, Shape s, Dictionary<string, ParameterArray> weights, ExecutionDevice trainDevice, ExecutionDevice optimizerDevice)
        {
            var preset = MethodPreset.Load(kind == "ga" ? s.GaPreset : s.NpoPreset);
            var method = (TokenLossMethod)preset.TrainedMethod;
            var store = new ParameterStore(optimizerDevice);
            var owned = new List<IDisposable> { store };
            try
            {
                foreach (var spec in DecoderBuilder.Parameters(s.Config)) store.Add(spec.Name, (float[])weights[spec.Name].Data, spec.Shape, trainable: true);
                var trainable = store.Trainable;
                var graph = method.Graph(s.Config, trainable, preset: preset);
                var random = new Random(11);
                int examples = 4 * s.Batch;
                var texts = Enumerable.Range(0, examples)
                    .Select(_ => new[] { new LabelledSequence(Enumerable.Range(0, s.Seq).Select(_ => random.Next(s.Config.VocabSize)).ToArray()) }).ToList();
                // About what a model with near-zero logits gives: ln(1/vocab) per label (the values only set the loss's scale).
                double[][]? reference = method.NeedsReferenceLogProbs
                    ? [.. texts.Select(_ => new[] { (s.Seq - 1) * -Math.Log(s.Config.VocabSize) + random.NextDouble() })]
                    : null;
                var data = new LabelledBatches(texts, s.Batch, seed: 3, s.Seq, padId: 0, reference);
                var session = new TrainSession(trainDevice, graph.Training, store, graph.Loss);
                owned.Add(session);
                var settings = new AdamWSettings(preset.LearningRate, WeightDecay: preset.WeightDecay, MaxGradNorm: preset.MaxGradNorm);
                var optimizer = new Optimizer(store, settings, trainable);
                owned.Add(optimizer);
                var step = new StepKind
                {
                    Name = $"{method.DisplayName} (preset '{preset.Name}', whole LLM)", Store = store, Session = session, Optimizer = optimizer,
                    TrainModel = graph.Training.Model, OptimizerModel = OptimizerGraph(settings, store, trainable), NextBatch = data.Next,
                };
                owned.Reverse();
                step.Owned.AddRange(owned);
                return step;
            }
            catch { owned.Reverse(); foreach (var d in owned) d.Dispose(); throw; }
        }

        /// <summary>The graph <see cref="Optimizer"/> runs for these settings and parameters (for its node count).</summary>
        static ModelProto OptimizerGraph(OptimizerSettings settings, ParameterStore store, IReadOnlyList<string> parameters)
        {
            var specs = parameters.Select(p => new OptimizerParameter(p, store[p].Shape)).ToList();
            return settings is SgdSettings sgd ? OptimizerGraphs.Sgd(specs, sgd.Momentum != 0) : OptimizerGraphs.AdamW(specs);
        }

        public void Measure(int warmup, int steps)
        {
            double learningRate = Optimizer.Settings.LearningRate;
            var cached = OnDevice;
            var onDevice = cached is null ? null : new Func<int[], (IReadOnlyDictionary<string, DeviceTensor>, IDisposable)>(rows =>
            {
                long start = Stopwatch.GetTimestamp();
                var read = cached(rows);
                _readSeconds += Stopwatch.GetElapsedTime(start).TotalSeconds;
                return read;
            });
            for (int i = 0; i < warmup + steps; i++)
            {
                var (gen0, gen1, gen2) = (GC.CollectionCount(0), GC.CollectionCount(1), GC.CollectionCount(2));
                long allocated = GC.GetAllocatedBytesForCurrentThread();
                _readSeconds = 0;
                long start = Stopwatch.GetTimestamp();
                var batch = NextBatch();
                long built = Stopwatch.GetTimestamp();
                var result = Session.Run(batch, rowsPerPiece: 0, pairedHalves: false, onDevice: onDevice);
                long ran = Stopwatch.GetTimestamp();
                double norm = Optimizer.Step(Session.Gradients, learningRate);
                long end = Stopwatch.GetTimestamp();
                if (!double.IsFinite(result.Loss) || !double.IsFinite(norm))
                    throw new InvalidOperationException($"{Name}: step {i + 1} gave loss {result.Loss}, gradient norm {norm}");
                if (i < warmup) continue;
                double Seconds(long from, long to) => (to - from) / (double)Stopwatch.Frequency;
                _steps.Add(new StepTimes(Seconds(start, end), Seconds(start, built), Seconds(built, ran), _readSeconds, Seconds(ran, end),
                    GC.GetAllocatedBytesForCurrentThread() - allocated, GC.CollectionCount(0) - gen0, GC.CollectionCount(1) - gen1, GC.CollectionCount(2) - gen2));
            }
        }

        /// <param name="skipRuns">Profiled: the warm-up runs to leave out of the profiles; null: not profiled.</param>
        public void Report(int? skipRuns)
        {
            double Ms(Func<StepTimes, double> part) => 1000 * Quantile(_steps.Select(part), 0.5);
            double total = Ms(t => t.Total), q1 = 1000 * Quantile(_steps.Select(t => t.Total), 0.25), q3 = 1000 * Quantile(_steps.Select(t => t.Total), 0.75);
            string Share(double ms) => $"{100 * ms / total:F0}%";
            double run = Ms(t => t.Run), read = Ms(t => t.Read), optimizer = Ms(t => t.Optimizer), batch = Ms(t => t.Batch);
            Console.WriteLine($"  {Name}: {1000 / total:F2} steps/s, {total:F2} ms median (quartiles {q1:F2}-{q3:F2} ms, {_steps.Count} steps; " +
                $"{1000 / q3:F2}-{1000 / q1:F2} steps/s)");
            Console.WriteLine($"    session run {run:F2} ms ({Share(run)})" + (OnDevice is null ? "" : $", of it reading the cached hidden states {read:F2} ms") +
                $"; optimizer step {optimizer:F2} ms ({Share(optimizer)}); host batch {batch:F2} ms ({Share(batch)}) (medians of each part)");
            Console.WriteLine($"    per step: {_steps.Average(t => t.Allocated) / 1048576.0:F2} MiB managed allocated, GC collections {_steps.Average(t => t.Gen0):F2} gen0, " +
                $"{_steps.Average(t => t.Gen1):F2} gen1, {_steps.Average(t => t.Gen2):F2} gen2");
            Console.WriteLine($"    nodes as built: training graph {TrainModel.Graph.Node.Count}, optimizer graph {OptimizerModel.Graph.Node.Count} " +
                $"({Optimizer.Parameters.Count} parameter tensors, {Optimizer.Parameters.Sum(p => Store[p].ElementCount):N0} values)");
            if (skipRuns is not int skip || ProfilePrefixes is not { } prefixes) return;
            var (trainPrefix, optimizerPrefix) = prefixes;
            DisposeAll();   // the sessions write their profiles when disposed
            foreach (var (role, prefix, measured) in new[] { ("training session", trainPrefix, run - read), ("optimizer session", optimizerPrefix, optimizer) })
            {
                var files = ProfilePrinter.Files(prefix).Where(f => !_earlierProfiles.Contains(f)).ToList();
                if (files.Count != 1) { Console.WriteLine($"    {role}: expected one new profile {prefix}_*.json, found {files.Count}"); continue; }
                ProfilePrinter.Print(role, files[0], OnnxRuntimeProfile.Read(files[0], skip), measured);
            }
        }

        /// <summary>The value below which a fraction <paramref name="p"/> of the values lie, interpolated between neighbours.</summary>
        static double Quantile(IEnumerable<double> values, double p)
        {
            var sorted = values.Order().ToArray();
            double at = p * (sorted.Length - 1);
            int low = (int)Math.Floor(at), high = (int)Math.Ceiling(at);
            return sorted[low] + (at - low) * (sorted[high] - sorted[low]);
        }

        bool _disposed;

        void DisposeAll()
        {
            if (_disposed) return;
            _disposed = true;
            foreach (var d in Owned) d.Dispose();
        }

        public void Dispose() => DisposeAll();
    }
}
