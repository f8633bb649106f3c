using AlignThenUnlearn.Autodiff;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Unlearning;
using CommandLine;

namespace AlignThenUnlearn.Benchmarks;

[Verb("memory", HelpText = "Peak memory of one training shape on the CPU (VmHWM of this process above its baseline) next to the memory plan's prediction; run once per shape (each in its own process).")]
public sealed class MemoryOptions
{
    [Option("shape", Default = "head", HelpText = "head (alignment step of a 1-layer head on cached hidden-512 states), unlearn (unlearning step of a 4-layer phi3-shaped model with a head), ga (GA step of a hidden-512 x 4-layer x vocab-32000 Llama).")]
    public string Shape { get; set; } = "head";
    [Option("steps", Default = 2, HelpText = "Training steps (each with its optimizer step).")] public int Steps { get; set; }
    [Option("threads", Default = 1, HelpText = "ONNX Runtime intra-op threads.")] public int Threads { get; set; }
    [Option("stages", HelpText = "Also print the resident memory (VmRSS) and its peak (VmHWM) above the baseline, and the .NET heap, after each stage: store filled, batch made, train session opened, optimizer made, each step's session run and optimizer step.")]
    public bool Stages { get; set; }
    [Option("optimized-model", HelpText = "Write the training graph as ONNX Runtime optimises it (at the level sessions are opened with) to this file, before the measurement.")]
    public string? OptimizedModel { get; set; }
}

/// <summary>Measures what <see cref="MemoryPlan.TrainingStep"/> predicts: a parameter store, one train session and one
/// optimizer, as <see cref="Trainer"/> holds them, run for a few steps on random values. The baseline is the resident
/// memory after ONNX Runtime is loaded, the graphs are built and a scratch buffer for the random parameters exists; the
/// peak is VmHWM, reset to the baseline through /proc/self/clear_refs.</summary>
public static class MemoryBenchmark
{
    /// <summary>The batch is made after the baseline (<see cref="Shape.MakeBatch"/>): the plan counts a step's inputs, which
    /// on a GPU are copied to the device, and on the CPU ONNX Runtime reads the host arrays themselves.</summary>
    sealed record Shape(string Description, GradientGraph Graph, IReadOnlyList<ParameterSpec> Parameters, OptimizerSettings Optimizer,
        int Rows, int Sequence, Func<Dictionary<string, HostTensor>> MakeBatch);

    public static int Run(MemoryOptions o)
    {
        using var device = ExecutionDevice.Create("cpu", o.Threads);
        var shape = Build(o.Shape);
        var scratch = new float[shape.Parameters.Max(p => p.ElementCount)];
        new Random(1).NextBytes(System.Runtime.InteropServices.MemoryMarshal.AsBytes(scratch.AsSpan()));
        for (int i = 0; i < scratch.Length; i++) scratch[i] = (scratch[i] % 1f) * 0.02f;   // finite small values
        using (var warm = device.Open(OptimizerGraphs.Sgd([new OptimizerParameter("w", [1])], momentum: false))) { }   // loads the runtime's kernels
        if (o.OptimizedModel is { } optimizedPath)
        {
            using (device.Open(shape.Graph.Model, Path.GetFullPath(optimizedPath))) { }
            // What the optimiser changed: node counts by op type, ours and ONNX Runtime's, where they differ.
            var optimized = global::AlignThenUnlearn.Onnx.ModelFile.Load(optimizedPath);
            var ours = shape.Graph.Model.Graph.Node.CountBy(n => n.OpType).ToDictionary();
            var theirs = optimized.Graph.Node.CountBy(n => (n.Domain is "" or "ai.onnx" ? "" : n.Domain + ".") + n.OpType).ToDictionary();
            Console.WriteLine($"ONNX Runtime's optimised training graph: {optimizedPath} ({optimized.Graph.Node.Count} nodes, ours {shape.Graph.Model.Graph.Node.Count})");
            foreach (var op in ours.Keys.Union(theirs.Keys).Order())
                if (ours.GetValueOrDefault(op) != theirs.GetValueOrDefault(op)) Console.WriteLine($"  {op}: {ours.GetValueOrDefault(op)} -> {theirs.GetValueOrDefault(op)}");
            var dims = new Dictionary<string, long> { [DecoderGraph.Batch.Symbol!] = shape.Rows, [DecoderGraph.Sequence.Symbol!] = shape.Sequence };
            foreach (var (label, model, order) in new[] { ("ours", shape.Graph.Model, false), ("ORT's, its order", optimized, true), ("ORT's, DFS", optimized, false) })
            {
                var e = global::AlignThenUnlearn.Onnx.GraphMemory.PeakOfIntermediates(model, dims, shape.Graph.Gradients.Values, inGivenOrder: order);
                Console.WriteLine($"  walk of {label}: peak {e.PeakBytes / 1048576.0:F1} MiB at {e.PeakNode}, arena {e.ArenaBytes / 1048576.0:F1} MiB, unknown {e.UnknownValues} ({e.UnknownBytes / 1048576.0:F1} MiB)");
            }
        }
        GC.Collect(); GC.WaitForPendingFinalizers(); GC.Collect();
        long baseline = ResetPeak();
        long heapBaseline = GC.GetTotalMemory(false);
        void Stage(string name)
        {
            if (!o.Stages) return;
            Console.WriteLine($"  stage {name,-28} RSS {(Status("VmRSS") - baseline) / 1048576.0,8:F1} MiB, peak {(Status("VmHWM") - baseline) / 1048576.0,8:F1} MiB, " +
                $".NET objects {(GC.GetTotalMemory(false) - heapBaseline) / 1048576.0,7:F1} MiB (above the baseline)");
        }

        using (var store = new ParameterStore(device))
        {
            foreach (var p in shape.Parameters) store.Add(p.Name, scratch.AsSpan(0, (int)p.ElementCount), p.Shape, trainable: shape.Graph.Gradients.ContainsKey(p.Name));
            Stage("store filled");
            var batch = shape.MakeBatch();
            Stage("batch made");
            using var session = new TrainSession(device, shape.Graph, store, UnlearningGraphs.Loss);
            Stage("train session opened");
            using var optimizer = new Optimizer(store, shape.Optimizer);
            Stage("optimizer made");
            for (int step = 0; step < o.Steps; step++)
            {
                session.Run(batch);
                Stage($"step {step + 1}: session run");
                optimizer.Step(session.Gradients, shape.Optimizer.LearningRate);
                Stage($"step {step + 1}: optimizer step");
            }
        }
        long measured = Status("VmHWM") - baseline;
        // After the measurement: the plan opens sessions of its own (to read ONNX Runtime's optimised graphs).
        var phases = MemoryPlan.TrainingStep(shape.Graph, shape.Parameters, shape.Optimizer, shape.Rows, shape.Sequence);
        var peak = phases.MaxBy(p => p.Bytes)!;
        Console.WriteLine($"{o.Shape}: {shape.Description}");
        foreach (var phase in phases)
        {
            Console.WriteLine($"  plan {phase.Name}: {phase.Bytes / 1048576.0:F1} MiB");
            foreach (var item in phase.Items) Console.WriteLine($"    {item.Name}: {item.Bytes / 1048576.0:F1} MiB");
        }
        Console.WriteLine($"  plan peak ({peak.Name}) {peak.Bytes / 1048576.0:F1} MiB; measured peak {measured / 1048576.0:F1} MiB above the baseline " +
            $"{baseline / 1048576.0:F0} MiB; plan/measured {(double)peak.Bytes / measured:F3}");
        return 0;
    }

    static Shape Build(string name)
    {
        var random = new Random(3);
        long[] Ids(int rows, int seq, int vocab) => [.. Enumerable.Range(0, rows * seq).Select(_ => (long)random.Next(vocab))];
        float[] Values(long count) => [.. Enumerable.Range(0, (int)count).Select(_ => (float)random.NextDouble() - 0.5f)];
        float[] Ones(long count) => [.. Enumerable.Repeat(1f, (int)count)];
        switch (name)
        {
            case "head":
            {
                // The toy preset's head on hidden-512 states at batch 32 x 256: the alignment step on cached hidden states.
                var config = Llama(hidden: 512, layers: 4, vocab: 32000);
                var preset = AtuPreset.Load("toy");
                const int rows = 32, seq = 256, dim = 384;
                var head = new EmbeddingHead(new EmbeddingHeadConfig(config.HiddenSize, preset.Head.DModel, preset.Head.Heads, preset.Head.FeedForward,
                    preset.Head.Layers, dim, preset.Head.Dropout, preset.Head.LayerNormEps));
                var graph = UnlearningGraphs.Alignment(config, [new UnlearningGraphs.HeadAt(4, head)], dim, fromHiddenStates: true);
                Dictionary<string, HostTensor> Batch() => new()
                {
                    [DecoderGraph.HiddenStateName(4)] = HostTensor.Of(Values((long)rows * seq * config.HiddenSize), rows, seq, config.HiddenSize),
                    [UnlearningGraphs.WindowEmbeddings] = HostTensor.Of(Values((long)rows * seq * dim), rows, seq, dim),
                    [UnlearningGraphs.WindowFull] = HostTensor.Of(Ones(rows * seq), rows, seq),
                    [UnlearningGraphs.TokenMask] = HostTensor.Of(Ones(rows * seq), rows, seq),
                    [EmbeddingHead.DropoutRatio] = HostTensor.Of([0.1f]),
                };
                return new Shape($"toy head (1 layer, d_model 64) on hidden 512, batch {rows} x {seq}, adam", graph.Training, graph.HeadParameters,
                    new AdamWSettings(1e-3, WeightDecay: 0, MaxGradNorm: 1), rows, seq, Batch);
            }
            case "unlearn":
            {
                // A 4-layer phi3-shaped model (hidden 256, vocab 32064) with the toy head at hidden_states[4]: the unlearning step.
                var config = HfConfig.Load("models/tiny-phi3.json") with { HiddenSize = 256, IntermediateSize = 688, NumHiddenLayers = 4, NumAttentionHeads = 8, NumKeyValueHeads = 8, VocabSize = 32064 };
                var preset = AtuPreset.Load("toy");
                const int rows = 8, seq = 256, dim = 384;
                var head = new EmbeddingHead(new EmbeddingHeadConfig(config.HiddenSize, preset.Head.DModel, preset.Head.Heads, preset.Head.FeedForward,
                    preset.Head.Layers, dim, preset.Head.Dropout, preset.Head.LayerNormEps));
                var graph = UnlearningGraphs.Unlearning(config, 4, head, dim);
                Dictionary<string, HostTensor> Batch() => new()
                {
                    [DecoderGraph.InputIds] = HostTensor.Of(Ids(rows, seq, config.VocabSize), rows, seq),
                    [UnlearningGraphs.TokenMask] = HostTensor.Of(Ones(rows * seq), rows, seq),
                    [UnlearningGraphs.TargetEmbedding] = HostTensor.Of(Values(dim), dim),
                    [UnlearningGraphs.Tau] = HostTensor.Of([-0.9f]),
                    [EmbeddingHead.DropoutRatio] = HostTensor.Of([0f]),
                };
                return new Shape($"phi3-shaped hidden 256 x 4 layers x vocab 32064 with the toy head, batch {rows} x {seq}, sgd",
                    graph.Training, [.. graph.LlmParameters, .. graph.HeadParameters], new SgdSettings(3e-2, MaxGradNorm: 1), rows, seq, Batch);
            }
            case "ga":
            {
                var config = Llama(hidden: 512, layers: 4, vocab: 32000);
                const int rows = 4, seq = 128;
                var specs = DecoderBuilder.Parameters(config);
                var graph = ((TokenLossMethod)MethodRegistry.Get(GradientAscent.Id)).Graph(config, specs.Select(s => s.Name));
                Dictionary<string, HostTensor> Batch() => new()
                {
                    [DecoderGraph.InputIds] = HostTensor.Of(Ids(rows, seq, config.VocabSize), rows, seq),
                    [TokenBatcher.LossMask] = HostTensor.Of(Ones(rows * seq), rows, seq),
                };
                return new Shape($"GA on a Llama of hidden 512 x 4 layers x vocab 32000, batch {rows} x {seq}, adamw", graph.Training, specs,
                    new AdamWSettings(1e-5, MaxGradNorm: 1), rows, seq, Batch);
            }
            default: throw new ArgumentException($"--shape {name}: expected head, unlearn or ga");
        }
    }

    static DecoderConfig Llama(int hidden, int layers, int vocab) => new()
    {
        Family = ModelFamily.Llama, HiddenSize = hidden, NumHiddenLayers = layers, NumAttentionHeads = 8, NumKeyValueHeads = 8,
        IntermediateSize = 1408, VocabSize = vocab, MaxPositionEmbeddings = 512,
    };

    /// <summary>The resident memory now, after resetting the peak (VmHWM) to it.</summary>
    static long ResetPeak()
    {
        File.WriteAllText("/proc/self/clear_refs", "5");
        return Status("VmRSS");
    }

    /// <summary>A size field of /proc/self/status, in bytes.</summary>
    static long Status(string field)
    {
        var line = File.ReadLines("/proc/self/status").First(l => l.StartsWith(field + ":", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
    }
}
