using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Models.Checkpoints;
using AlignThenUnlearn.Runtime;

namespace AlignThenUnlearn.Unlearning;

/// <summary>What the probes say about a model, in percent: the forget average (FB, QA, AA) and the neighbour average;
/// <see cref="Utility"/>, the figures of the preset's stage_tasks (see <see cref="StageRecord.Utility"/>); <see cref="Probes"/>,
/// the averages' parts (see <see cref="StageRecord.Probes"/>; null when the evaluator does not give them).</summary>
public sealed record ProbeScores(double ForgetAverage, double NeighbourAverage, IReadOnlyDictionary<string, double>? Utility = null,
    IReadOnlyDictionary<string, double>? Probes = null)
{
    /// <summary>"forget average 41.2, neighbour average 60.3", then the utility figures (for the log and stages.md).</summary>
    public string Describe() => string.Create(CultureInfo.InvariantCulture, $"forget average {ForgetAverage:0.0}, neighbour average {NeighbourAverage:0.0}")
        + string.Concat((Utility ?? new Dictionary<string, double>()).Select(f => string.Create(CultureInfo.InvariantCulture, $", {f.Key} {f.Value:0.0}")));

    /// <summary>The scores as a checkpoint keeps them (the model before unlearning, for the stage table of a resumed run).</summary>
    public JsonObject ToJson() => new()
    {
        ["forget"] = ForgetAverage, ["neighbour"] = NeighbourAverage, ["utility"] = JsonSerializer.SerializeToNode(Utility), ["probes"] = JsonSerializer.SerializeToNode(Probes),
    };

    public static ProbeScores? FromJson(JsonNode? node) => node is JsonObject o
        ? new ProbeScores(o["forget"]!.GetValue<double>(), o["neighbour"]!.GetValue<double>(), o["utility"]?.Deserialize<Dictionary<string, double>>(),
            o["probes"]?.Deserialize<Dictionary<string, double>>())
        : null;
}

/// <summary>The data of a run: the LLM (configuration and weights), the alignment corpus (the target's forget corpus
/// and other targets'), the forget corpus, both with their window embeddings, and the target's embedding.
/// <see cref="EosId"/> pads the rows of sequences "first"; <see cref="Encoder"/> names the sentence encoder (checked
/// against the preset's); <see cref="AlignmentTargets"/> says which other targets joined the alignment corpus.</summary>
public sealed record AtuInputs(DecoderConfig Config, string LlmWeights, CorpusWindows AlignmentCorpus, CorpusWindows ForgetCorpus,
    float[] TargetEmbedding, string Target, int? EosId = null, string? Encoder = null, string? AlignmentTargets = null);

/// <summary>What only Align-then-Unlearn's run takes besides <see cref="UnlearningRunOptions"/>.</summary>
public sealed record AtuRunOptions
{
    /// <summary>Stop after the alignment (`atu align`); a later run with <see cref="UnlearningRunOptions.Resume"/> goes on from there.</summary>
    public bool AlignmentOnly { get; init; }
    /// <summary>(Re)alignment trains the head on the LLM's hidden states computed once per phase (default), or recomputes them every step.</summary>
    public HiddenStateCacheSettings HiddenStates { get; init; } = new();
}

/// <summary>Align-then-Unlearn (DESIGN.md section 1) as the reference runs it: align the head, then per stage unlearn at
/// threshold tau (LLM moves, head frozen), score the probes, realign (head moves, LLM frozen); the checkpoints at which
/// the forget average first drops below each threshold are kept under their names.
///
/// Resuming gives the run that was never interrupted: a checkpoint (every phase's end, and every
/// <see cref="AtuPreset.CheckpointEvery"/> steps inside one) holds parameters, both optimizers, data positions and the
/// stage table so far, and the dropout session is opened afresh at every checkpoint with seeds from (run seed, phase,
/// chunk) (<see cref="TrainGraphs.WithDropoutSeed"/>), so its masks do not depend on where a run was resumed.</summary>
public sealed class AtuRun : IDisposable
{
    /// <summary>The heads beside the LLM in every kept folder.</summary>
    public const string HeadFile = "head.safetensors";
    const string HeadOptimizer = "head", LlmOptimizer = "llm", StateFormat = "atu-run/1";

    enum PhaseKind { Align, Unlearn, Realign }
    sealed record Phase(int Number, PhaseKind Kind, int Stage, double Tau, int Steps)
    {
        public string Name => Kind switch { PhaseKind.Align => "align", PhaseKind.Unlearn => $"unlearn {Stage}", _ => $"realign {Stage}" };
    }

    readonly AtuPreset _preset;
    readonly AtuInputs _inputs;
    readonly UnlearningRunOptions _options;
    readonly AtuRunOptions _atu;
    readonly RunHarness _run;
    readonly List<Phase> _phases = [];
    readonly ParameterStore _store;
    readonly UnlearningGraphs.Graph _alignment, _unlearning;
    readonly UnlearningGraphs.Graph? _headAlignment;   // the alignment graph on cached hidden states
    readonly IReadOnlyList<string> _headParameters, _llmParameters;
    readonly WindowBatcher _alignData, _forgetData;
    readonly TrainSession _unlearnSession;
    readonly Optimizer _llmOptimizer;
    Optimizer _headOptimizer;
    readonly CheckpointDirectory _checkpoints;

    // The run's position and history: all of it is in every checkpoint.
    int _phase, _saves;
    long _phaseStep;
    double _lossSum, _cosineSum;
    bool _headOptimizerIsRealignment;
    /// <summary>The LLM's run to the heads' layers for the hidden-state cache: opened at the first (re)alignment, kept.</summary>
    HiddenStateSession? _hiddenStates;

    public AtuRun(AtuPreset preset, AtuInputs inputs, UnlearningRunOptions options, AtuRunOptions? atu = null)
    {
        (_preset, _inputs, _options, _atu) = (preset, inputs, options, atu ?? new AtuRunOptions());
        _phases.Add(new Phase(0, PhaseKind.Align, 0, 1, preset.Alignment.Steps));
        foreach (var (stage, i) in preset.Stages.Select((s, i) => (s, i + 1)))
        {
            _phases.Add(new Phase(_phases.Count, PhaseKind.Unlearn, i, stage.Tau, stage.UnlearnSteps));
            _phases.Add(new Phase(_phases.Count, PhaseKind.Realign, i, stage.Tau, stage.RealignSteps));
        }
        int dim = inputs.TargetEmbedding.Length;
        if (inputs.AlignmentCorpus.Dimension != dim || inputs.ForgetCorpus.Dimension != dim)
            throw new ArgumentException($"the window embeddings ({inputs.AlignmentCorpus.Dimension}, {inputs.ForgetCorpus.Dimension}) and the target embedding ({dim}) come from different encoders");

        var heads = preset.Layers.Select(layer => new UnlearningGraphs.HeadAt(layer, new EmbeddingHead(
            new EmbeddingHeadConfig(inputs.Config.HiddenSize, preset.Head.DModel, preset.Head.Heads, preset.Head.FeedForward, preset.Head.Layers, dim,
                preset.Head.Dropout, preset.Head.LayerNormEps),
            prefix: preset.Layers.Length == 1 ? EmbeddingHead.DefaultPrefix : $"head_l{layer}."))).ToList();
        _alignment = UnlearningGraphs.Alignment(inputs.Config, heads, dim);
        _unlearning = UnlearningGraphs.Unlearning(inputs.Config, heads, dim);
        if (_atu.HiddenStates.Enabled) _headAlignment = UnlearningGraphs.Alignment(inputs.Config, heads, dim, fromHiddenStates: true);
        _headParameters = _alignment.HeadParameters.Select(p => p.Name).ToList();
        _llmParameters = _unlearning.Training.Gradients.Keys.ToList();

        _run = new RunHarness(options, "Align-then-Unlearn", inputs.Target, preset.CheckpointThresholds, WriteModel);
        _store = new ParameterStore(options.Device);
        try
        {
            _store.Load(inputs.LlmWeights, _unlearning.LlmParameters, _ => false);
            foreach (var head in heads.Select(h => (EmbeddingHead)h.Head))
                foreach (var (name, values) in head.InitialValues(preset.Seed))
                    _store.Add(name, values, head.Parameters.Single(p => p.Name == name).Shape, trainable: false);
            // The authors pad with the EOS; chunks mask their padding, so its id does not matter there.
            int padId = preset.Sequences == SequenceModes.First
                ? inputs.EosId ?? throw new ArgumentException("sequences 'first' pads with the EOS token, and the tokenizer has none")
                : 0;
            _alignData = new WindowBatcher(inputs.AlignmentCorpus, preset.Alignment.BatchSize, preset.Alignment.SequenceLength, Seed(1), padId, preset.Sequences);
            _forgetData = new WindowBatcher(inputs.ForgetCorpus, preset.Unlearning.BatchSize, preset.Unlearning.SequenceLength, Seed(2), padId, preset.Sequences);
            _unlearnSession = new TrainSession(options.Device, _unlearning.Training, _store, UnlearningGraphs.Loss, [UnlearningGraphs.MeanCosine],
                allowAccumulation: preset.MicroBatch > 0);
            _llmOptimizer = new Optimizer(_store, preset.Unlearning.ToOptimizerSettings(), _llmParameters);
            _headOptimizer = new Optimizer(_store, preset.Alignment.ToOptimizerSettings(), _headParameters);
            _checkpoints = new CheckpointDirectory(Path.Combine(options.Folder, RunHarness.CheckpointsFolder), keep: 2);
        }
        catch { Dispose(); throw; }
    }

    long Seed(int stream) => (long)(SplitMix64.Mix((ulong)_preset.Seed) ^ SplitMix64.Mix((ulong)stream)) & long.MaxValue;

    /// <summary>The whole schedule (or the rest of it, when resuming); see the class summary.</summary>
    public UnlearningRunResult Run()
    {
        Start();
        while (_phase < _phases.Count)
        {
            var phase = _phases[_phase];
            if (_atu.AlignmentOnly && phase.Kind != PhaseKind.Align) { Log("alignment done; `atu unlearn` continues this run"); break; }
            Train(phase);
            double loss = phase.Steps == 0 ? 0 : _lossSum / phase.Steps, cosine = phase.Steps == 0 ? 0 : _cosineSum / phase.Steps;
            Log(string.Create(CultureInfo.InvariantCulture, $"{phase.Name}: {phase.Steps} steps, mean loss {loss:0.00000}, mean cosine {cosine:0.0000}"));
            if (phase.Kind == PhaseKind.Unlearn)
            {
                // After a stage's unlearning: the probes on the LLM as it now is, naming the thresholds crossed.
                var (scores, names) = _run.Evaluate(phase.Stage, $"stage {phase.Stage}");
                _run.AddRecord(new StageRecord(phase.Stage, phase.Tau, loss, 0, cosine, scores?.ForgetAverage, scores?.NeighbourAverage, names, scores?.Utility, scores?.Probes));
            }
            if (phase.Kind == PhaseKind.Realign) _run.ReplaceLastRecord(_run.Records[^1] with { RealignLoss = loss });
            _run.WriteStageTable(EncoderWarning());
            (_phase, _phaseStep, _lossSum, _cosineSum) = (_phase + 1, 0, 0, 0);
            Checkpoint();
        }
        return _phase == _phases.Count ? _run.Finish() : _run.Result(null);
    }

    /// <summary>A phase's steps, from where the run stands, with a checkpoint every <see cref="AtuPreset.CheckpointEvery"/> steps.</summary>
    void Train(Phase phase)
    {
        bool unlearn = phase.Kind == PhaseKind.Unlearn;
        if (phase.Kind == PhaseKind.Realign && _phaseStep == 0 && _preset.ResetHeadOptimizerEachStage) UseRealignmentOptimizer();
        var settings = unlearn ? _preset.Unlearning : phase.Kind == PhaseKind.Align ? _preset.Alignment : _preset.Realignment;
        var optimizer = unlearn ? _llmOptimizer : _headOptimizer;
        var data = unlearn ? _forgetData : _alignData;
        if (_phaseStep == 0 && phase.Steps > 0) Log($"{phase.Name}: {phase.Steps} steps" + (unlearn ? string.Create(CultureInfo.InvariantCulture, $" at tau {phase.Tau}") : ""));
        int every = _preset.CheckpointEvery;
        using var hidden = unlearn || _headAlignment is null || _phaseStep >= phase.Steps ? null : CacheHiddenStates(phase);
        while (_phaseStep < phase.Steps)
        {
            long chunkEnd = every > 0 ? Math.Min(phase.Steps, (_phaseStep / every + 1) * every) : phase.Steps;
            using var dropout = unlearn ? null : new TrainSession(_options.Device,
                TrainGraphs.WithDropoutSeed((hidden is null ? _alignment : _headAlignment!).Training, (ulong)Seed(1000 + phase.Number * 100_003 + (int)(_phaseStep / Math.Max(every, 1)))),
                _store, UnlearningGraphs.Loss, [UnlearningGraphs.MeanCosine], allowAccumulation: _preset.MicroBatch > 0);
            var session = unlearn ? _unlearnSession : dropout!;
            var clock = Stopwatch.StartNew();
            long first = _phaseStep;
            for (; _phaseStep < chunkEnd; _phaseStep++)
            {
                var batch = new Dictionary<string, HostTensor>(data.Next())
                {
                    [UnlearningGraphs.TargetEmbedding] = HostTensor.Of(_inputs.TargetEmbedding, _inputs.TargetEmbedding.Length),
                    [UnlearningGraphs.Tau] = HostTensor.Of([(float)phase.Tau]),
                    [EmbeddingHead.DropoutRatio] = HostTensor.Of([(float)_preset.Head.Dropout]),
                };
                int positions = (int)batch[DecoderGraph.InputIds].Shape[1];
                var pieces = _alignData.LastPieces;
                var result = session.Run(batch, _preset.MicroBatch, pairedHalves: false, onDevice: hidden is null ? null : rows =>
                {
                    var states = hidden.Read([.. rows.Select(r => pieces[r])], positions);
                    return (states.Tensors, states);
                });
                double cosine = result.Metrics[UnlearningGraphs.MeanCosine][0];
                if (!double.IsFinite(result.Loss)) throw new TrainingDivergedException(_phaseStep + 1, $"{phase.Name}: the loss is {result.Loss}", _checkpoints.Latest);
                double norm = optimizer.Step(session.Gradients, settings.LearningRate);
                if (!double.IsFinite(norm)) throw new TrainingDivergedException(_phaseStep + 1, $"{phase.Name}: the gradient norm is {norm}", _checkpoints.Latest);
                (_lossSum, _cosineSum) = (_lossSum + result.Loss, _cosineSum + cosine);
                long done = _phaseStep + 1 - first;
                _options.Progress?.Invoke(new UnlearningProgress(phase.Name, phase.Stage, phase.Tau, _phaseStep + 1, phase.Steps, result.Loss, cosine,
                    done / Math.Max(clock.Elapsed.TotalSeconds, 1e-9), StepsLeft() - 1));
                if (phase.Steps >= 10 && (_phaseStep + 1) % (phase.Steps / 10) == 0)
                    Log(string.Create(CultureInfo.InvariantCulture, $"{phase.Name} step {_phaseStep + 1}/{phase.Steps}: loss {result.Loss:0.00000}, cosine {cosine:0.0000}, grad norm {norm:0.0000}"));
            }
            if (_phaseStep < phase.Steps) Checkpoint();
        }
    }

    /// <summary>The hidden states of the alignment corpus under the LLM as it is now (frozen for the phase).</summary>
    HiddenStateCache CacheHiddenStates(Phase phase)
    {
        var clock = Stopwatch.StartNew();
        _hiddenStates ??= new HiddenStateSession(_options.Device, _inputs.Config, _preset.Layers);
        var cache = HiddenStateCache.Compute(_hiddenStates, _store, _alignData, _atu.HiddenStates, _options.Folder, _preset.Alignment.BatchSize);
        Log(string.Create(CultureInfo.InvariantCulture, $"{phase.Name}: hidden states of {_alignData.Pieces} pieces cached {(cache.InMemory ? "in memory" : "in a memory-mapped file")} ({cache.Bytes / 1048576.0:0.0} MiB, {clock.Elapsed.TotalSeconds:0.0} s)"));
        return cache;
    }

    long StepsLeft() => _phases.Skip(_phase).Sum(p => (long)p.Steps) - _phaseStep;

    /// <summary>The reference restarts the head's Adam at every realignment: a fresh optimizer with the realignment's settings.</summary>
    void UseRealignmentOptimizer()
    {
        var settings = _preset.Realignment.ToOptimizerSettings();
        if (!_headOptimizer.TryRestart(settings))
        {
            _headOptimizer.Dispose();
            _headOptimizer = new Optimizer(_store, settings, _headParameters);
        }
        _headOptimizerIsRealignment = true;
    }

    /// <summary>The LLM as it now is (every parameter, the frozen ones from the run's weights: what `atu eval`, `atu ship`
    /// and the per-stage scoring read) and the heads, into a folder the harness keeps.</summary>
    void WriteModel(StagedFolder staged)
    {
        using (var original = SafetensorsCheckpoint.Open(_inputs.LlmWeights))
        {
            var sources = DecoderBuilder.Parameters(_inputs.Config).Select(spec => _store.Contains(spec.Name)
                ? FromStore(spec.Name)
                : TensorSource.FromGenerator(spec.Name, SafetensorsDType.F32, spec.Shape, (first, values) => original.ReadSlice(spec.Name, first, values))).ToList();
            SafetensorsWriter.Write(staged.PathOf(RunHarness.ModelFile), sources, new Dictionary<string, string> { ["format"] = "pt" });
        }
        SafetensorsWriter.Write(staged.PathOf(HeadFile), _headParameters.Select(FromStore).ToList(),
            new Dictionary<string, string> { ["layers"] = string.Join(",", _preset.Layers) });
    }

    /// <summary>A parameter of the store, read from the device when the writer comes to it (one tensor in host memory at a time).</summary>
    TensorSource FromStore(string name)
    {
        float[]? values = null;
        return TensorSource.FromGenerator(name, SafetensorsDType.F32, _store[name].Shape, (first, chunk) =>
        {
            values ??= _store.Read(name);
            values.AsSpan((int)first, chunk.Length).CopyTo(chunk);
            if (first + chunk.Length == values.Length) values = null;
        });
    }

    /// <summary>Resumes from the newest checkpoint, or starts afresh (refusing a folder that holds another run, and
    /// scoring the model before unlearning).</summary>
    void Start()
    {
        _checkpoints.RemoveLeftovers();
        var newest = _checkpoints.NewestComplete();
        _run.Begin(_preset.ToJson(), RunSettings.Of(_preset, _inputs), newest);
        if (EncoderWarning() is string warning) _run.Log($"warning: {warning}");
        if (newest is null)
        {
            _run.Log($"run started: target '{_inputs.Target}', preset '{_preset.Name}', layers {string.Join(",", _preset.Layers)}, {_phases.Sum(p => (long)p.Steps)} steps on {_options.Device.Description}"
                + (_inputs.AlignmentTargets is null ? "" : $"; alignment corpus also from {_inputs.AlignmentTargets}"));
            _run.ScoreBefore();
            return;
        }
        var state = TrainingCheckpoint.ReadState(newest);
        _run.RestoreHistory(state, StateFormat, $"checkpoint '{newest}'");
        try
        {
            _phase = state["phase"]!.GetValue<int>();
            _phaseStep = state["phase_step"]!.GetValue<long>();
            _saves = state["saves"]!.GetValue<int>();
            _lossSum = state["loss_sum"]!.GetValue<double>();
            _cosineSum = state["cosine_sum"]!.GetValue<double>();
            _alignData.RestoreState(state["align_data"]!.AsObject());
            _forgetData.RestoreState(state["forget_data"]!.AsObject());
            if (state["head_optimizer_is_realignment"]!.GetValue<bool>()) UseRealignmentOptimizer();
        }
        catch (Exception e) when (e is InvalidOperationException or NullReferenceException or FormatException or JsonException)
        {
            throw new ModelFormatException($"checkpoint '{newest}' does not belong to this run: {e.Message}");
        }
        TrainingCheckpoint.Restore(newest, _store, Optimizers);
        _run.Log($"resumed from {Path.GetFileName(newest)}: phase {(_phase < _phases.Count ? _phases[_phase].Name : "done")}, step {_phaseStep}");
    }

    Dictionary<string, Optimizer> Optimizers => new() { [HeadOptimizer] = _headOptimizer, [LlmOptimizer] = _llmOptimizer };

    void Checkpoint()
    {
        var state = new JsonObject
        {
            ["phase"] = _phase,
            ["phase_step"] = _phaseStep,
            ["saves"] = _saves + 1,
            ["loss_sum"] = _lossSum,
            ["cosine_sum"] = _cosineSum,
            ["align_data"] = _alignData.SaveState(),
            ["forget_data"] = _forgetData.SaveState(),
            ["head_optimizer_is_realignment"] = _headOptimizerIsRealignment,
        };
        _run.SaveHistory(state, StateFormat);
        _saves++;
        _checkpoints.Save(_saves, _store, Optimizers, state);
    }

    /// <summary>The preset's values were chosen for one encoder; another one changes what the thresholds mean.</summary>
    public string? EncoderWarning() =>
        _preset.Encoder is null || (_inputs.Encoder is not null && EncoderNamesMatch(_preset.Encoder, _inputs.Encoder)) ? null
        : $"the preset '{_preset.Name}' assumes the encoder {_preset.Encoder}, but this run uses {_inputs.Encoder ?? "an encoder whose name is not recorded"}: its results are not the preset's";

    /// <summary>Names match ignoring case and an organisation prefix (sentence-transformers/all-mpnet-base-v2).</summary>
    static bool EncoderNamesMatch(string a, string b) =>
        string.Equals(a.Split('/')[^1], b.Split('/')[^1], StringComparison.OrdinalIgnoreCase);

    void Log(string line) => _run.Log(line);

    public void Dispose()
    {
        _unlearnSession?.Dispose();
        _llmOptimizer?.Dispose();
        _headOptimizer?.Dispose();
        _hiddenStates?.Dispose();
        _store?.Dispose();
        _run?.Dispose();
    }
}
