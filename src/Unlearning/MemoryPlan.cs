using System.Text.Json;
using System.Text.Json.Nodes;
using AlignThenUnlearn.Autodiff;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Onnx;
using AlignThenUnlearn.Runtime;
using Onnx;

namespace AlignThenUnlearn.Unlearning;

/// <summary>One buffer group of a phase: its name and bytes.</summary>
public sealed record MemoryItem(string Name, long Bytes);

/// <summary>What is in the device's memory at once during one phase of a run. A training step also says its batch
/// (rows; examples for a token-level method) and the largest micro-batch (a divisor of the batch) whose step fits the
/// device (0: not even one row; null: not a training step).</summary>
public sealed record MemoryPhase(string Name, IReadOnlyList<MemoryItem> Items, int? Batch = null, int? LargestMicroBatch = null)
{
    public long Bytes => Items.Sum(i => i.Bytes);
}

/// <summary>The model a plan is for: its configuration, its weights as stored (artifact or checkpoint dtype) and the
/// sentence encoder of Align-then-Unlearn (dimension and weight bytes; its graph when an artifact folder holds it).</summary>
public sealed record MemoryPlanModel(string Name, DecoderConfig Config, long StoredWeightBytes, string StoredDtype,
    int EncoderDimension, long EncoderWeightBytes, ModelProto? EncoderGraph = null);

/// <summary>Where a plan's model comes from.</summary>
public static class MemoryPlanModels
{
    /// <summary>The encoders presets name, for a plan without an artifact folder: dimension and float32 weight bytes.</summary>
    static readonly Dictionary<string, (int Dimension, long Bytes)> KnownEncoders = new(StringComparer.OrdinalIgnoreCase)
    {
        ["all-mpnet-base-v2"] = (768, 4L * 109_486_464),
        ["all-MiniLM-L6-v2"] = (384, 4L * 22_713_216),
    };

    /// <summary>An artifact folder of `atu export`: its config, its weights file and dtype, and its encoder when it has one
    /// (else the encoder <paramref name="presetEncoder"/> names).</summary>
    public static MemoryPlanModel FromArtifacts(string folder, string? presetEncoder)
    {
        var manifest = ArtifactManifest.Load(folder);
        var config = HfConfig.Load(Path.Combine(folder, HfConfig.FileName));
        var weights = new FileInfo(Path.Combine(folder, ArtifactExporter.WeightsFile));
        if (!weights.Exists) throw new FileNotFoundException($"'{folder}' has no {ArtifactExporter.WeightsFile}", weights.FullName);
        var encoderPath = Path.Combine(folder, "encoder", EncoderFolder.ModelFile);
        if (!File.Exists(encoderPath)) return WithKnownEncoder(Path.GetFullPath(folder), config, weights.Length, manifest.Dtype, presetEncoder);
        var encoder = ModelFile.Load(encoderPath, loadExternalData: false);
        var output = encoder.Graph.Output[0].Type.TensorType.Shape.Dim;
        var encoderBytes = Directory.GetFiles(Path.GetDirectoryName(encoderPath)!).Sum(f => new FileInfo(f).Length);
        return new MemoryPlanModel(Path.GetFullPath(folder), config, weights.Length, manifest.Dtype, (int)output[^1].DimValue, encoderBytes, encoder);
    }

    /// <summary>A Hugging Face config.json: weights as its torch_dtype says (bfloat16 when it says nothing).</summary>
    public static MemoryPlanModel FromConfig(string path, string? presetEncoder)
    {
        var config = HfConfig.Load(path);
        var dtype = config.TorchDtype ?? "bfloat16";
        long element = dtype is "float32" or "float" ? 4 : 2;
        long stored = element * DecoderBuilder.Parameters(config).Sum(p => p.ElementCount);
        return WithKnownEncoder(path, config, stored, dtype, presetEncoder);
    }

    static MemoryPlanModel WithKnownEncoder(string name, DecoderConfig config, long stored, string dtype, string? encoder)
    {
        var (dimension, bytes) = KnownEncoders.TryGetValue(encoder ?? "all-MiniLM-L6-v2", out var known) ? known
            : throw new ArgumentException($"no encoder in '{name}' and none known by the name '{encoder}' (known: {string.Join(", ", KnownEncoders.Keys)}); add one with `atu export --encoder`");
        return new MemoryPlanModel(name, config, stored, dtype, dimension, bytes);
    }
}

/// <summary>Sizes a plan assumes besides the preset's.</summary>
public sealed record MemoryPlanOptions
{
    public required long DeviceBytes { get; init; }
    /// <summary>Rows of the alignment corpus whose hidden states are cached (the target's and three other targets' texts).</summary>
    public int AlignmentRows { get; init; } = 400;
    /// <summary><see cref="HiddenStateCacheSettings.MemoryLimitBytes"/>: more is memory-mapped from a file.</summary>
    public long HiddenCacheLimitBytes { get; init; } = new HiddenStateCacheSettings().MemoryLimitBytes;
    /// <summary>Scoring: prompts decoded together (RWKU's 16), prompt tokens (padded) and new tokens (RWKU's 30).</summary>
    public int ScoringBatch { get; init; } = 16;
    public int PromptTokens { get; init; } = 256;
    public int NewTokens { get; init; } = 30;
    /// <summary>Windows per encoder run (<see cref="WindowEmbeddingCache"/>'s) and encoder tokens per window.</summary>
    public int EncoderBatch { get; init; } = 256;
    public int EncoderTokens { get; init; } = 32;
    /// <summary>Micro-batch size of the training steps (null: the whole batch at once).</summary>
    public int? MicroBatch { get; init; }
}

/// <summary>The bytes of each phase of a run on one device (issue 23): parameters as stored and as trained, gradients,
/// optimizer state (as <see cref="MemoryLayout"/> says the runtime keeps them), activations of the real training graphs
/// at the preset's batch and length (<see cref="GraphMemory"/> on the graph ONNX Runtime runs, <see cref="OnnxRuntimeGraphs"/>:
/// liveness of every value in its execution order, sizes from shape inference, what its arena keeps for those
/// allocations, <see cref="ArenaModel"/>, and the constants its optimiser folded;
/// a session's arena is held while the session lives, so the arenas of the sessions a run keeps open count in every
/// later phase), the hidden-state cache, the head, the encoder, and the KV cache and logits of scoring; the peak phase,
/// and per training step the largest micro-batch that fits.</summary>
public sealed record MemoryPlan(string Model, string Preset, IReadOnlyList<int> Layers, long DeviceBytes, IReadOnlyList<MemoryPhase> Phases)
{
    public MemoryPhase Peak => Phases.MaxBy(p => p.Bytes)!;
    public bool Fits => Peak.Bytes <= DeviceBytes;

    const long F32 = 4;

    /// <summary>An Align-then-Unlearn run (<see cref="AtuRun"/>): resident over the whole run are the truncated LLM
    /// (embeddings and the layers below the deepest head, float32), its gradient buffers (the unlearning session
    /// holds them) and its optimizer, the heads and their optimizer.</summary>
    public static MemoryPlan ForAtu(MemoryPlanModel model, AtuPreset preset, MemoryPlanOptions options)
    {
        options = WithPresetMicroBatch(options, preset.MicroBatch);
        var config = model.Config;
        int dim = model.EncoderDimension;
        var heads = preset.Layers.Select(layer => new UnlearningGraphs.HeadAt(layer, new EmbeddingHead(
            new EmbeddingHeadConfig(config.HiddenSize, preset.Head.DModel, preset.Head.Heads, preset.Head.FeedForward, preset.Head.Layers, dim,
                preset.Head.Dropout, preset.Head.LayerNormEps),
            prefix: preset.Layers.Length == 1 ? EmbeddingHead.DefaultPrefix : $"head_l{layer}."))).ToList();
        var unlearning = UnlearningGraphs.Unlearning(config, heads, dim);
        var headAlignment = UnlearningGraphs.Alignment(config, heads, dim, fromHiddenStates: true);
        var forward = DecoderBuilder.Build(config, new DecoderGraphOptions { HiddenStates = [.. preset.Layers], Logits = false });

        long llm = F32 * unlearning.LlmParameters.Sum(p => p.ElementCount);
        long head = F32 * unlearning.HeadParameters.Sum(p => p.ElementCount);
        var llmOptimizer = preset.Unlearning.ToOptimizerSettings();
        var headOptimizer = preset.Alignment.ToOptimizerSettings();
        List<MemoryItem> Resident(bool accumulating) =>
        [
            new("LLM parameters as trained (f32, layers 0.." + (preset.Layers.Max() - 1) + ")", llm),
            new("LLM gradients", llm * MemoryLayout.GradientCopies(accumulating)),
            new($"LLM optimizer ({llmOptimizer.Kind}: spare + state)", llm * MemoryLayout.OptimizerCopies(llmOptimizer)),
            new("head parameters", head),
            new($"head optimizer ({headOptimizer.Kind}: spare + state)", head * MemoryLayout.OptimizerCopies(headOptimizer)),
        ];
        // The unlearning session's gradient buffers live through the whole run; a spare one when its steps accumulate.
        var resident = Resident(options.MicroBatch is { } mb && mb < preset.Unlearning.BatchSize);
        int alignRow = preset.Alignment.SequenceLength;
        long cacheBytes = F32 * options.AlignmentRows * alignRow * config.HiddenSize * preset.Layers.Length;
        var cache = new MemoryItem($"hidden-state cache ({options.AlignmentRows} rows, in memory up to {options.HiddenCacheLimitBytes >> 20} MiB)",
            Math.Min(cacheBytes, options.HiddenCacheLimitBytes));
        var llmInputs = unlearning.LlmParameters.Select(p => p.Name).Concat(unlearning.HeadParameters.Select(p => p.Name)).ToHashSet();

        var phases = new List<MemoryPhase>
        {
            Encoder(model, options),
            new("alignment: caching hidden states", [.. resident, cache,
                Activations("LLM forward activations", forward.Model, preset.Alignment.BatchSize, alignRow, [], llmInputs)]),
        };
        // A session's arena keeps what it took while the session lives: the unlearning session and both optimizers live
        // through the whole run, so from the first unlearning step on their arenas are held in every later phase
        // (realignment, scoring); the (re)alignment session is opened per phase and its arena goes with it.
        var headOptimizerArena = OptimizerActivations(unlearning.HeadParameters, headOptimizer, "arena of the head optimizer's session");
        var llmOptimizerArena = OptimizerActivations(unlearning.LlmParameters, llmOptimizer, "arena of the LLM optimizer's session");
        MemoryItem UnlearningArena(int m) => Activations("LLM + head activations (the unlearning session's arena)", unlearning.Training.Model, m,
            preset.Unlearning.SequenceLength, unlearning.Training.Gradients.Values, llmInputs);
        List<MemoryItem> AlignmentStep(int m) => [.. Resident(m < preset.Unlearning.BatchSize), cache,
            new("head gradients", head * MemoryLayout.GradientCopies(m < preset.Alignment.BatchSize)),
            Activations("head activations", headAlignment.Training.Model, m, alignRow, headAlignment.Training.Gradients.Values, llmInputs), headOptimizerArena];
        phases.Add(Step("alignment step", preset.Alignment.BatchSize, options, AlignmentStep));
        phases.Add(Step("unlearning step", preset.Unlearning.BatchSize, options, m => [.. Resident(m < preset.Unlearning.BatchSize),
            UnlearningArena(m), llmOptimizerArena, headOptimizerArena]));
        phases.Add(Step("realignment step", preset.Alignment.BatchSize, options, m => [.. AlignmentStep(m), UnlearningArena(Math.Min(m, preset.Unlearning.BatchSize)), llmOptimizerArena]));
        // Scoring between stages holds the unlearning session's arena too, which is smaller at a smaller micro-batch.
        phases.Add(Step("scoring (between stages)", preset.Unlearning.BatchSize, options, m => [.. Resident(m < preset.Unlearning.BatchSize),
            UnlearningArena(m), llmOptimizerArena, headOptimizerArena, .. Scoring(model, options)]));
        return new MemoryPlan(model.Name, preset.Name, [.. preset.Layers], options.DeviceBytes, phases);
    }

    /// <summary>A token-level method's run (<see cref="MethodRun"/>): the whole model in float32, gradients and AdamW
    /// state for the trained parameters (every one, the layers of <c>train_layers</c>, or the LoRA adapters), NPO's and
    /// DPO's reference pass first.</summary>
    public static MemoryPlan ForMethod(MemoryPlanModel model, MethodPreset preset, MemoryPlanOptions options)
    {
        options = WithPresetMicroBatch(options, preset.MicroBatch);
        var config = model.Config;
        if (preset.TrainedMethod is not TokenLossMethod method)
            throw new ArgumentException($"atu plan: method '{preset.Method}' of preset '{preset.Name}' is not a token-level method; the memory plan covers Align-then-Unlearn and the token-level methods");
        var decoderOptions = new DecoderGraphOptions { Lora = preset.LoraOptions };
        var specs = DecoderBuilder.Parameters(config);
        var adapters = preset.LoraOptions?.Adapters(config) ?? [];
        var trainable = preset.Lora ? adapters.Select(a => a.Name).ToList()
            : preset.Layers is { } range ? [.. range.Select(specs.Select(s => s.Name))] : specs.Select(s => s.Name).ToList();
        var graph = method.Graph(config, trainable, decoderOptions, preset);
        var parameterNames = specs.Select(s => s.Name).Concat(adapters.Select(a => a.Name)).ToHashSet();
        long all = F32 * specs.Sum(s => s.ElementCount) + F32 * adapters.Sum(a => a.ElementCount);
        var byName = specs.Concat(adapters).ToDictionary(s => s.Name);
        long trained = F32 * trainable.Sum(n => byName[n].ElementCount);
        var optimizer = new AdamWSettings(preset.LearningRate, WeightDecay: preset.WeightDecay, MaxGradNorm: preset.MaxGradNorm);
        int rows = preset.BatchSize * method.SequencesPerExample;
        List<MemoryItem> Resident(bool accumulating) =>
        [
            new("parameters (f32, whole model)", all),
            new($"gradients ({trainable.Count} trained tensors)", trained * MemoryLayout.GradientCopies(accumulating)),
            new("optimizer (adamw: spare + state)", trained * MemoryLayout.OptimizerCopies(optimizer)),
        ];
        var resident = Resident(preset.GradientAccumulation > 1 || (options.MicroBatch is { } mb && mb < preset.BatchSize));
        var phases = new List<MemoryPhase>();
        if (method.NeedsReferenceLogProbs)
        {
            var reference = DecoderBuilder.Build(config, decoderOptions with { Logits = true });
            phases.Add(new("reference log-probs", [new(resident[0].Name, all),
                Activations("forward activations", reference.Model, rows, preset.Cutoff, [], parameterNames)]));
        }
        // Micro-batches (micro_batch) count examples, as batch_size does.
        // The train session's and the optimizer's arenas are both held from the first step to the end of the run.
        var optimizerArena = OptimizerActivations([.. trainable.Select(n => byName[n])], optimizer, "arena of the optimizer's session");
        MemoryItem TrainArena(int m) => Activations("activations (the train session's arena)", graph.Training.Model, m * method.SequencesPerExample, preset.Cutoff, graph.Training.Gradients.Values, parameterNames);
        phases.Add(Step("training step", preset.BatchSize, options, m => [.. Resident(preset.GradientAccumulation > 1 || m < preset.BatchSize),
            TrainArena(m), optimizerArena]));
        phases.Add(Step("scoring (between evaluations)", preset.BatchSize, options, m => [.. Resident(preset.GradientAccumulation > 1 || m < preset.BatchSize),
            TrainArena(m), optimizerArena, .. Scoring(model, options)]));
        return new MemoryPlan(model.Name, preset.Name, preset.TrainLayers ?? [], options.DeviceBytes, phases);
    }

    /// <summary>One trainer's step alone (a store, one train session, one optimizer; what <see cref="Trainer"/> holds):
    /// the step phase and the optimizer's phase. The memory benchmark measures these.</summary>
    public static IReadOnlyList<MemoryPhase> TrainingStep(GradientGraph graph, IReadOnlyList<ParameterSpec> parameters, OptimizerSettings optimizer,
        int rows, int sequence, bool accumulating = false)
    {
        var trained = parameters.Where(p => graph.Gradients.ContainsKey(p.Name)).ToList();
        long all = F32 * parameters.Sum(p => p.ElementCount), bytes = F32 * trained.Sum(p => p.ElementCount);
        var resident = new List<MemoryItem>
        {
            new("parameters", all),
            new("gradients", bytes * MemoryLayout.GradientCopies(accumulating)),
            new($"optimizer ({optimizer.Kind}: spare + state)", bytes * MemoryLayout.OptimizerCopies(optimizer)),
        };
        var names = parameters.Select(p => p.Name).ToHashSet();
        // Each session's arena keeps what it took for the session's life: from the second step on, the train session's
        // and the optimizer's arenas are both held, whichever runs.
        var arenas = new[] { Activations("activations (the train session's arena)", graph.Model, rows, sequence, graph.Gradients.Values, names), OptimizerActivations(trained, optimizer) };
        return
        [
            new("training step", [.. resident, .. arenas], rows),
            new("optimizer step", [.. resident, .. arenas]),
        ];
    }

    /// <summary>A training step at the run's micro-batch (the whole batch by default), and the largest micro-batch whose
    /// step fits: the largest divisor of the batch (what a preset's micro_batch may be) that fits, 0 when one row does not.</summary>
    static MemoryPhase Step(string name, int batch, MemoryPlanOptions options, Func<int, List<MemoryItem>> items)
    {
        int rows = Math.Min(options.MicroBatch ?? batch, batch);
        var at = items(rows);
        int largest = Enumerable.Range(1, batch).Where(d => batch % d == 0).Reverse()
            .FirstOrDefault(d => (d == rows ? at : items(d)).Sum(i => i.Bytes) <= options.DeviceBytes);
        return new MemoryPhase(rows == batch ? name : $"{name} (micro-batch {rows})", at, batch, largest);
    }

    /// <summary>The preset's micro_batch unless the options name one (`atu plan --micro-batch`).</summary>
    static MemoryPlanOptions WithPresetMicroBatch(MemoryPlanOptions options, int presetMicroBatch) =>
        options.MicroBatch is null && presetMicroBatch > 0 ? options with { MicroBatch = presetMicroBatch } : options;

    /// <summary>What a session of <paramref name="graph"/> holds at (rows, sequence): the arena of its intermediates, walked
    /// in ONNX Runtime's optimised graph and order (<see cref="OnnxRuntimeGraphs"/>), the constants its optimiser folded
    /// (held as initializers while the session lives), and its batch inputs (everything but the parameters).</summary>
    public static MemoryItem Activations(string name, ModelProto graph, int rows, int sequence, IEnumerable<string> boundOutputs, ISet<string> parameters)
    {
        var dims = new Dictionary<string, long> { [DecoderGraph.Batch.Symbol!] = rows, [DecoderGraph.Sequence.Symbol!] = sequence };
        var (arena, constants, unknown) = SessionBytes(graph, dims, boundOutputs);
        var guessed = unknown == 0 ? "" : $"; {unknown} values of unknown shape sized as their largest input";
        return new MemoryItem($"{name} ({rows} x {sequence}{guessed}; arena + {constants / 1048576.0:F1} MiB of folded constants)",
            arena + constants + GraphMemory.InputBytes(graph, dims, parameters));
    }

    /// <summary>The optimizer session: its outputs go into the spare buffers, so what is left is the work of one pack of
    /// parameters at a time (<see cref="OptimizerGraphs.Packs"/>), the largest deciding.</summary>
    static MemoryItem OptimizerActivations(IReadOnlyList<ParameterSpec> parameters, OptimizerSettings settings, string name = "arena of the optimizer's session")
    {
        var specs = parameters.Select(p => new OptimizerParameter(p.Name, p.Shape)).ToList();
        var graph = settings is AdamWSettings ? OptimizerGraphs.AdamW(specs) : OptimizerGraphs.Sgd(specs, ((SgdSettings)settings).Momentum != 0);
        var bound = graph.Graph.Output.Select(o => o.Name).Where(n => n != OptimizerGraphs.GradNorm);
        var (arena, constants, _) = SessionBytes(graph, new Dictionary<string, long>(), bound);
        return new MemoryItem(name, arena + constants);
    }

    /// <summary>The arena a session's intermediates take (ONNX Runtime's optimised graph walked in its order), the bytes of
    /// its initializers, and how many values had to be sized by a guess.</summary>
    static (long Arena, long Constants, int Unknown) SessionBytes(ModelProto graph, IReadOnlyDictionary<string, long> dims, IEnumerable<string> boundOutputs)
    {
        var optimized = OnnxRuntimeGraphs.Optimized(graph);
        var estimate = GraphMemory.PeakOfIntermediates(optimized, dims, boundOutputs, inGivenOrder: true);
        return (estimate.ArenaBytes, GraphMemory.InitializerBytes(optimized), estimate.UnknownValues);
    }


    /// <summary>The window embeddings are computed before training: the encoder alone.</summary>
    static MemoryPhase Encoder(MemoryPlanModel model, MemoryPlanOptions options)
    {
        var items = new List<MemoryItem> { new("encoder weights", model.EncoderWeightBytes) };
        if (model.EncoderGraph is { } graph)
        {
            // Encoder exports name their dimensions freely: the first of each input is the batch, the second the tokens.
            var dims = new Dictionary<string, long>();
            foreach (var input in graph.Graph.Input)
                if (input.Type?.TensorType?.Shape is { } shape)
                    for (int k = 0; k < shape.Dim.Count && k < 2; k++)
                        if (shape.Dim[k].DimParam is { Length: > 0 } symbol) dims[symbol] = k == 0 ? options.EncoderBatch : options.EncoderTokens;
            items.Add(new($"encoder activations ({options.EncoderBatch} x {options.EncoderTokens})", GraphMemory.PeakOfIntermediates(graph, dims).PeakBytes));
        }
        return new MemoryPhase("window embeddings (encoder)", items);
    }

    /// <summary>Scoring the probes between stages: the inference model in its stored dtype beside the training state,
    /// its KV cache for the prompt and the new tokens, the prefill's logits (every position, as the generator reads
    /// them) and one layer's prefill intermediates.</summary>
    /// <summary>What scoring the probes adds: the inference session's weights, KV cache, logits and one layer's work.</summary>
    static List<MemoryItem> Scoring(MemoryPlanModel model, MemoryPlanOptions options)
    {
        var c = model.Config;
        long element = model.StoredDtype is "f32" or "float32" ? 4 : 2;
        long batch = options.ScoringBatch, positions = options.PromptTokens + options.NewTokens;
        long kv = 2L * c.NumHiddenLayers * batch * c.NumKeyValueHeads * c.HeadDimension * positions * element;
        long logits = batch * options.PromptTokens * c.VocabSize * element;
        long layer = batch * options.PromptTokens * element * (4L * c.HiddenSize + 3L * c.IntermediateSize)
            + batch * c.NumAttentionHeads * (long)options.PromptTokens * options.PromptTokens * element;
        return [
            new($"inference weights as stored ({model.StoredDtype})", model.StoredWeightBytes),
            new($"KV cache ({batch} x {positions})", kv),
            new($"prefill logits ({batch} x {options.PromptTokens} x {c.VocabSize})", logits),
            new("prefill intermediates (one layer)", layer)];
    }

    public JsonObject ToJson() => new()
    {
        ["model"] = Model,
        ["preset"] = Preset,
        ["layers"] = new JsonArray([.. Layers.Select(l => (JsonNode)l)]),
        ["device_bytes"] = DeviceBytes,
        ["peak_phase"] = Peak.Name,
        ["peak_bytes"] = Peak.Bytes,
        ["fits"] = Fits,
        ["phases"] = new JsonArray([.. Phases.Select(p => (JsonNode)new JsonObject
        {
            ["name"] = p.Name,
            ["bytes"] = p.Bytes,
            ["batch"] = p.Batch,
            ["largest_micro_batch"] = p.LargestMicroBatch,
            ["items"] = new JsonArray([.. p.Items.Select(i => (JsonNode)new JsonObject { ["name"] = i.Name, ["bytes"] = i.Bytes })]),
        })]),
    };

    /// <summary>The plan as text: each phase with its items in GiB, the peak, and the largest micro-batches.</summary>
    public string Describe()
    {
        static string Gib(long bytes) => (bytes / (double)(1L << 30)).ToString("0.00", System.Globalization.CultureInfo.InvariantCulture);
        var w = new System.Text.StringBuilder();
        w.AppendLine($"memory plan: {Model}, preset {Preset}, layers {string.Join(",", Layers)}, device {Gib(DeviceBytes)} GiB");
        foreach (var p in Phases)
        {
            w.AppendLine($"  {p.Name}: {Gib(p.Bytes)} GiB" + (p.Batch is { } b ? $" (batch {b}, largest micro-batch that fits {p.LargestMicroBatch})" : ""));
            foreach (var i in p.Items) w.AppendLine($"    {i.Name}: {Gib(i.Bytes)} GiB");
        }
        w.AppendLine($"peak: {Peak.Name}, {Gib(Peak.Bytes)} GiB: {(Fits ? "fits" : "does not fit")}");
        return w.ToString();
    }

    public string ToJsonString() => ToJson().ToJsonString(new JsonSerializerOptions { WriteIndented = true });
}
