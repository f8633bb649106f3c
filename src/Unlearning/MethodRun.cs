using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Runtime;

namespace AlignThenUnlearn.Unlearning;

/// <summary>What a token-level baseline trains on: the LLM and its examples (one sequence each, or two: DPO's chosen
/// and rejected, GradDiff's forget and retain), tokenized and labelled (<see cref="LabelledSequence"/>).
/// <see cref="PadId"/> pads the rows (RWKU pads with the EOS).</summary>
public sealed record MethodInputs(DecoderConfig Config, string LlmWeights, IReadOnlyList<LabelledSequence[]> Examples, string Target, int PadId);

/// <summary>A trained method's run (<see cref="TrainedMethod"/>: GA, GA*, GradDiff, NPO, DPO, RT, ...; full or LoRA) in the
/// one harness (<see cref="RunHarness"/>: run folder, settings, evaluation points after every epoch or every
/// <see cref="MethodPreset.EvaluateEvery"/> steps, threshold-named checkpoints, stage table, resume). Training is a
/// <see cref="Trainer"/> over the method's graph and batches (<see cref="TrainedMethod.Prepare"/>): AdamW, warm-up then
/// cosine decay to 0, gradients accumulated over <see cref="MethodPreset.GradientAccumulation"/> micro-batches. Batches
/// run on across epoch boundaries (the data order reshuffles per epoch); an epoch is ceil(examples / (batch x
/// accumulation)) steps. What a method computes from the starting weights (NPO's and DPO's reference log-probabilities)
/// is computed before training (also on resume, from the same weights), so no second model is resident.
/// A stage-table row is one evaluation point: stage = its number, tau 0, unlearn loss = the mean loss since the last one.</summary>
public sealed class MethodRun : IDisposable
{
    public const string AdaptersFile = "adapters.safetensors";
    const string StateFormat = "atu-method-run/1";

    readonly MethodPreset _preset;
    readonly MethodInputs _inputs;
    readonly UnlearningRunOptions _options;
    readonly RunHarness _run;
    readonly ParameterStore _store;
    readonly IReadOnlyList<ParameterSpec> _adapters;

    double _lossSum;
    long _lossSteps;

    /// <summary>Optimizer steps per epoch and in the whole run.</summary>
    public long StepsPerEpoch { get; }
    public long Steps => StepsPerEpoch * _preset.Epochs;

    public MethodRun(MethodPreset preset, MethodInputs inputs, UnlearningRunOptions options)
    {
        (_preset, _inputs, _options) = (preset, inputs, options);
        if (inputs.Examples.Count == 0) throw new ArgumentException($"no {preset.Method} examples for target '{inputs.Target}'");
        StepsPerEpoch = (inputs.Examples.Count + (long)preset.BatchSize * preset.GradientAccumulation - 1) / ((long)preset.BatchSize * preset.GradientAccumulation);
        _run = new RunHarness(options, preset.TrainedMethod.Label(preset.Lora), inputs.Target, preset.CheckpointThresholds, WriteModel);
        _store = new ParameterStore(options.Device);
        try
        {
            var layers = preset.Layers;
            _store.Load(inputs.LlmWeights, DecoderBuilder.Parameters(inputs.Config), name => !preset.Lora && (layers is null || InLayers(name, layers)));
            _adapters = preset.LoraOptions?.Adapters(inputs.Config) ?? [];
        }
        catch { Dispose(); throw; }
    }

    static bool InLayers(string name, LayerRange layers)
    {
        const string prefix = "model.layers.";
        if (!name.StartsWith(prefix, StringComparison.Ordinal)) return false;
        var number = name[prefix.Length..name.IndexOf('.', prefix.Length)];
        return layers.Contains(int.Parse(number, CultureInfo.InvariantCulture));
    }

    public UnlearningRunResult Run()
    {
        bool resumed = Start();
        bool adapters = false;
        void AddAdapters()
        {
            if (adapters) return;
            if (_preset.LoraOptions is not null) LoraAdapters.AddTo(_store, _adapters, _preset.Seed);
            adapters = true;
        }
        var training = _preset.TrainedMethod.Prepare(new MethodSetup(_preset, _inputs.Config, _store, _inputs.Examples, _inputs.PadId, Seed(2), AddAdapters, Log));
        AddAdapters();
        long every = _preset.EvaluateEvery > 0 ? _preset.EvaluateEvery : StepsPerEpoch;
        // Hugging Face's cosine with warm-up, stepped as its Trainer steps it (the first step at lr_lambda(0) = 0).
        var schedule = new HuggingFaceStepping(Steps > _preset.WarmupSteps
            ? new WarmupCosineSchedule(_preset.WarmupSteps, Steps, floorFactor: 0)
            : new WarmupSchedule(_preset.WarmupSteps));   // a run shorter than its warm-up never decays
        using var trainer = new Trainer(_store, training.Graph, training.Loss,
            new AdamWSettings(LearningRate: _preset.LearningRate, WeightDecay: _preset.WeightDecay, MaxGradNorm: _preset.MaxGradNorm),
            new TrainerOptions
            {
                Steps = Steps, MicroBatches = _preset.GradientAccumulation, Schedule = schedule,
                // Examples of two sequences are batched as every first sequence, then every second (LabelledBatches, RMU's batches).
                MicroBatchRows = _preset.MicroBatch, PairedHalves = _inputs.Examples[0].Length == 2,
                CheckpointFolder = Path.Combine(_options.Folder, RunHarness.CheckpointsFolder), CheckpointEvery = every, KeepCheckpoints = 2,
                Resume = resumed, RandomSeed = (ulong)Seed(3),
            });
        bool restored = false;
        var clockRun = Stopwatch.StartNew();
        long firstStep = -1;
        trainer.Run(training.Batches, p =>
        {
            if (!restored) { Restore(trainer.Extra); restored = true; firstStep = p.Step - 1; }
            (_lossSum, _lossSteps) = (_lossSum + p.Loss, _lossSteps + 1);
            long epoch = (p.Step - 1) / StepsPerEpoch + 1;
            _options.Progress?.Invoke(new UnlearningProgress($"{_preset.Method} epoch {epoch}", (int)epoch, 0, p.Step, p.Steps, p.Loss, 0,
                (p.Step - firstStep) / Math.Max(clockRun.Elapsed.TotalSeconds, 1e-9), p.Steps - p.Step));
            if (p.Step % Math.Max(1, Steps / 10) == 0)
                Log(string.Create(CultureInfo.InvariantCulture, $"step {p.Step}/{p.Steps}: loss {p.Loss:0.00000}, lr {p.LearningRate:0.###e+0}, grad norm {p.GradNorm:0.0000}"));
            if (p.Step % every == 0 || p.Step == p.Steps) Score(p.Step);
            Save(trainer.Extra);
        });
        if (!restored && trainer.Step == Steps) Restore(trainer.Extra);   // resumed after the last step
        return _run.Finish();
    }

    long Seed(int stream) => (long)(SplitMix64.Mix((ulong)_preset.Seed) ^ SplitMix64.Mix((ulong)stream)) & long.MaxValue;

    /// <summary>Records the settings (or checks them on resume) and scores the starting model; true when resuming.</summary>
    bool Start()
    {
        var checkpoints = new CheckpointDirectory(Path.Combine(_options.Folder, RunHarness.CheckpointsFolder), keep: 2);
        checkpoints.RemoveLeftovers();
        var newest = checkpoints.NewestComplete();
        _run.Begin(_preset.ToJson(), Settings(), newest);
        if (newest is not null) { Log($"resuming from {Path.GetFileName(newest)}"); return true; }
        Log(string.Create(CultureInfo.InvariantCulture, $"run started: {_preset.Method}{(_preset.Lora ? " (LoRA)" : "")} on '{_inputs.Target}', preset '{_preset.Name}', {_inputs.Examples.Count} examples, {Steps} steps on {_options.Device.Description}"));
        _run.ScoreBefore();
        return false;
    }

    JsonObject Settings()
    {
        var weights = new FileInfo(_inputs.LlmWeights);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var s in _inputs.Examples.SelectMany(e => e))
        {
            hash.AppendData(BitConverter.GetBytes(s.Tokens.Length));
            hash.AppendData(BitConverter.GetBytes(s.FirstLabel));
            hash.AppendData(BitConverter.GetBytes(s.LabelEnd));
            hash.AppendData(MemoryMarshal.AsBytes(s.Tokens.AsSpan()));
        }
        return new JsonObject
        {
            ["preset"] = JsonNode.Parse(_preset.ToJson()),
            ["target"] = _inputs.Target,
            ["llm_config"] = JsonSerializer.SerializeToNode(_inputs.Config),
            ["llm_weights"] = new JsonObject
            {
                ["bytes"] = weights.Exists ? weights.Length : -1,
                ["modified_utc"] = weights.Exists ? weights.LastWriteTimeUtc.ToString("O", CultureInfo.InvariantCulture) : null,
            },
            ["examples"] = Convert.ToHexStringLower(hash.GetHashAndReset()),
        };
    }

    /// <summary>An evaluation point: a stage-table row with the mean loss since the last one.</summary>
    void Score(long step)
    {
        double loss = _lossSteps == 0 ? 0 : _lossSum / _lossSteps;
        (_lossSum, _lossSteps) = (0, 0);
        int stage = _run.Records.Count + 1;
        var (scores, names) = _run.Evaluate(stage, $"evaluation {stage} (step {step})");
        _run.AddRecord(new StageRecord(stage, 0, loss, 0, 0, scores?.ForgetAverage, scores?.NeighbourAverage, names, scores?.Utility, scores?.Probes));
        _run.WriteStageTable();
    }

    /// <summary>The plain model (LoRA: merged), with the adapters alone beside it, into a folder the harness keeps.</summary>
    void WriteModel(StagedFolder staged)
    {
        var metadata = new Dictionary<string, string> { ["format"] = "pt" };
        if (_preset.LoraOptions is { } lora)
        {
            LoraAdapters.SaveMerged(_store, _inputs.Config, _adapters, lora, staged.PathOf(RunHarness.ModelFile), metadata);
            LoraAdapters.Save(_store, _adapters, lora, staged.PathOf(AdaptersFile));
        }
        else
            DeviceTensorFiles.Write(_store.Device, staged.PathOf(RunHarness.ModelFile), [.. DecoderBuilder.Parameters(_inputs.Config).Select(p => (p.Name, _store[p.Name]))], metadata);
    }

    /// <summary>The run's history as the trainer's checkpoints keep it (<see cref="Trainer.Extra"/>).</summary>
    void Save(JsonObject extra)
    {
        _run.SaveHistory(extra, StateFormat);
        extra["loss_sum"] = _lossSum;
        extra["loss_steps"] = _lossSteps;
    }

    void Restore(JsonObject extra)
    {
        if (extra["format"] is null) return;   // a fresh run
        _run.RestoreHistory(extra, StateFormat, $"the checkpoints in '{_options.Folder}'");
        _lossSum = extra["loss_sum"]!.GetValue<double>();
        _lossSteps = extra["loss_steps"]!.GetValue<long>();
    }

    void Log(string line) => _run.Log(line);

    public void Dispose()
    {
        _store?.Dispose();
        _run?.Dispose();
    }
}
