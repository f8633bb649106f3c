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

/// <summary>A token-level baseline (GA, GA*, GradDiff, NPO, DPO, RT; full or LoRA) in Align-then-Unlearn's harness: the
/// same run folder (preset, settings, log, checkpoints, stage table), the same evaluation callback after every epoch (or
/// every <see cref="MethodPreset.EvaluateEvery"/> steps), the same threshold-named checkpoints
/// (<see cref="ThresholdCheckpoints"/>) and resume. Training is a <see cref="Trainer"/> over <see cref="LabelledBatches"/>:
/// AdamW, warm-up then cosine decay to 0, gradients accumulated over <see cref="MethodPreset.GradientAccumulation"/>
/// micro-batches. Batches run on across epoch boundaries (the data order reshuffles per epoch); an epoch is
/// ceil(examples / (batch x accumulation)) steps. NPO's and DPO's reference log-probabilities are computed from the
/// starting weights before training (also on resume, from the same weights), so no second model is resident.
/// A stage-table row is one evaluation point: stage = its number, tau 0, unlearn loss = the mean loss since the last one.</summary>
public sealed class MethodRun : IDisposable
{
    public const string AdaptersFile = "adapters.safetensors";
    const string StateFormat = "atu-method-run/1";

    readonly MethodPreset _preset;
    readonly MethodInputs _inputs;
    readonly AtuRunOptions _options;
    readonly ParameterStore _store;
    readonly IReadOnlyList<ParameterSpec> _adapters;
    readonly StreamWriter _log;
    readonly FileStream _lock;

    ProbeScores? _before;
    readonly List<StageRecord> _records = [];
    double _lossSum;
    long _lossSteps;

    /// <summary>Optimizer steps per epoch and in the whole run.</summary>
    public long StepsPerEpoch { get; }
    public long Steps => StepsPerEpoch * _preset.Epochs;

    public MethodRun(MethodPreset preset, MethodInputs inputs, AtuRunOptions options)
    {
        (_preset, _inputs, _options) = (preset, inputs, options);
        if (inputs.Examples.Count == 0) throw new ArgumentException($"no {preset.Method} examples for target '{inputs.Target}'");
        StepsPerEpoch = (inputs.Examples.Count + (long)preset.BatchSize * preset.GradientAccumulation - 1) / ((long)preset.BatchSize * preset.GradientAccumulation);
        Directory.CreateDirectory(options.Folder);
        _lock = AtuRun.Lock(options.Folder);
        _log = new StreamWriter(Path.Combine(options.Folder, AtuRun.LogFile), append: true) { AutoFlush = true };
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

    public AtuRunResult Run()
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
        LearningRateSchedule schedule = Steps > _preset.WarmupSteps
            ? new WarmupCosineSchedule(_preset.WarmupSteps, Steps, floorFactor: 0)
            : new WarmupSchedule(_preset.WarmupSteps);   // a run shorter than its warm-up never decays
        using var trainer = new Trainer(_store, training.Graph, training.Loss,
            new AdamWSettings(LearningRate: _preset.LearningRate, WeightDecay: _preset.WeightDecay, MaxGradNorm: _preset.MaxGradNorm),
            new TrainerOptions
            {
                Steps = Steps, MicroBatches = _preset.GradientAccumulation, Schedule = schedule,
                CheckpointFolder = Path.Combine(_options.Folder, AtuRun.CheckpointsFolder), CheckpointEvery = every, KeepCheckpoints = 2,
                Resume = resumed, RandomSeed = (ulong)Seed(3),
            });
        var thresholds = new ThresholdCheckpoints(_preset.CheckpointThresholds);
        bool restored = false;
        var clockRun = Stopwatch.StartNew();
        long firstStep = -1;
        trainer.Run(training.Batches, p =>
        {
            if (!restored) { Restore(trainer.Extra, thresholds); restored = true; firstStep = p.Step - 1; }
            (_lossSum, _lossSteps) = (_lossSum + p.Loss, _lossSteps + 1);
            long epoch = (p.Step - 1) / StepsPerEpoch + 1;
            _options.Progress?.Invoke(new AtuProgress($"{_preset.Method} epoch {epoch}", (int)epoch, 0, p.Step, p.Steps, p.Loss, 0,
                (p.Step - firstStep) / Math.Max(clockRun.Elapsed.TotalSeconds, 1e-9), p.Steps - p.Step));
            if (p.Step % Math.Max(1, Steps / 10) == 0)
                Log(string.Create(CultureInfo.InvariantCulture, $"step {p.Step}/{p.Steps}: loss {p.Loss:0.00000}, lr {p.LearningRate:0.###e+0}, grad norm {p.GradNorm:0.0000}"));
            if (p.Step % every == 0 || p.Step == p.Steps) Score(p.Step, thresholds);
            Save(trainer.Extra);
        });
        if (!restored && trainer.Step == Steps) Restore(trainer.Extra, thresholds);   // resumed after the last step
        var final = Path.Combine(_options.Folder, AtuRun.FinalFolder);
        KeepModel(final);
        Log($"final model in {final}");
        var named = thresholds.Crossed.ToDictionary(kv => kv.Key, kv => Path.Combine(_options.Folder, ThresholdCheckpoints.NameOf(kv.Key)));
        return new AtuRunResult(_before, [.. _records], named, final);
    }

    long Seed(int stream) => (long)(SplitMix64.Mix((ulong)_preset.Seed) ^ SplitMix64.Mix((ulong)stream)) & long.MaxValue;

    /// <summary>Records the settings (or checks them on resume) and scores the starting model; true when resuming.</summary>
    bool Start()
    {
        var settingsPath = Path.Combine(_options.Folder, AtuRun.SettingsFile);
        var checkpoints = new CheckpointDirectory(Path.Combine(_options.Folder, AtuRun.CheckpointsFolder), keep: 2);
        checkpoints.RemoveLeftovers();
        bool exists = checkpoints.NewestComplete() is not null || File.Exists(settingsPath);
        var settings = Settings();
        if (exists)
        {
            if (!_options.Resume)
                throw new IOException($"'{_options.Folder}' already holds a run; resume it (--resume) or choose another folder");
            var differences = File.Exists(settingsPath) ? RecordedSettings.Differences(settingsPath, settings) : [];
            if (differences.Count > 0)
                throw new InvalidOperationException($"'{_options.Folder}' holds a run with other settings, and a run resumes only with the settings it started with: {string.Join("; ", differences)}");
        }
        else
        {
            AtomicFile.WriteAllBytes(Path.Combine(_options.Folder, AtuRun.PresetFile), System.Text.Encoding.UTF8.GetBytes(_preset.ToJson()));
            RecordedSettings.Record(settingsPath, settings);
        }
        if (checkpoints.NewestComplete() is not null) { Log($"resuming from {Path.GetFileName(checkpoints.NewestComplete())}"); return true; }
        Log(string.Create(CultureInfo.InvariantCulture, $"run started: {_preset.Method}{(_preset.Lora ? " (LoRA)" : "")} on '{_inputs.Target}', preset '{_preset.Name}', {_inputs.Examples.Count} examples, {Steps} steps on {_options.Device.Description}"));
        if (_options.Evaluate is not null)
        {
            _before = _options.Evaluate(null);
            Log($"before unlearning: {_before.Describe()}");
        }
        return _options.Resume && exists;
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

    /// <summary>Scores the model as it is now; keeps it under the names of the thresholds crossed for the first time.</summary>
    void Score(long step, ThresholdCheckpoints thresholds)
    {
        double loss = _lossSteps == 0 ? 0 : _lossSum / _lossSteps;
        (_lossSum, _lossSteps) = (0, 0);
        int stage = _records.Count + 1;
        ProbeScores? scores = null;
        string? names = null;
        if (_options.Evaluate is not null)
        {
            var folder = Path.Combine(_options.Folder, AtuRun.EvaluationFolder);
            KeepModel(folder);
            scores = _options.Evaluate(Path.Combine(folder, AtuRun.ModelFile));
            Log(string.Create(CultureInfo.InvariantCulture, $"evaluation {stage} (step {step}): forget average {scores.ForgetAverage:0.0}, neighbour average {scores.NeighbourAverage:0.0}"));
            var crossed = thresholds.Observe(stage, scores.ForgetAverage);
            foreach (var t in crossed)
            {
                var named = Path.Combine(_options.Folder, ThresholdCheckpoints.NameOf(t));
                KeepModel(named);
                Log($"step {step}: forget average below {t.ToString(CultureInfo.InvariantCulture)} for the first time; model kept in {named}");
            }
            if (crossed.Count > 0) names = string.Join(", ", crossed.Select(ThresholdCheckpoints.NameOf));
        }
        _records.Add(new StageRecord(stage, 0, loss, 0, 0, scores?.ForgetAverage, scores?.NeighbourAverage, names, scores?.Utility));
        File.WriteAllText(Path.Combine(_options.Folder, AtuRun.StagesJson), StageTable.ToJson(_records));
        File.WriteAllText(Path.Combine(_options.Folder, AtuRun.StagesMarkdown), StageTable.ToMarkdown(_records));
    }

    /// <summary>The plain model (LoRA: merged) in <paramref name="folder"/>, with the adapters alone beside it and the stage table.</summary>
    void KeepModel(string folder)
    {
        using var staged = StagedFolder.Create(folder, force: true);
        var metadata = new Dictionary<string, string> { ["format"] = "pt" };
        if (_preset.LoraOptions is { } lora)
        {
            LoraAdapters.SaveMerged(_store, _inputs.Config, _adapters, lora, staged.PathOf(AtuRun.ModelFile), metadata);
            LoraAdapters.Save(_store, _adapters, lora, staged.PathOf(AdaptersFile));
        }
        else
            DeviceTensorFiles.Write(_store.Device, staged.PathOf(AtuRun.ModelFile), [.. DecoderBuilder.Parameters(_inputs.Config).Select(p => (p.Name, _store[p.Name]))], metadata);
        File.WriteAllText(staged.PathOf(AtuRun.StagesJson), StageTable.ToJson(_records));
        staged.Commit();
    }

    /// <summary>The run's history as the trainer's checkpoints keep it (<see cref="Trainer.Extra"/>).</summary>
    void Save(JsonObject extra)
    {
        extra["format"] = StateFormat;
        extra["target"] = _inputs.Target;
        extra["before"] = _before?.ToJson();
        extra["records"] = JsonNode.Parse(StageTable.ToJson(_records));
        extra["loss_sum"] = _lossSum;
        extra["loss_steps"] = _lossSteps;
    }

    void Restore(JsonObject extra, ThresholdCheckpoints thresholds)
    {
        if (extra["format"] is null) return;   // a fresh run
        if (extra["format"]?.GetValue<string>() != StateFormat || extra["target"]?.GetValue<string>() != _inputs.Target)
            throw new ModelFormatException($"the checkpoints in '{_options.Folder}' do not belong to a {_preset.Method} run on '{_inputs.Target}'");
        _before = ProbeScores.FromJson(extra["before"]);
        _records.Clear();
        _records.AddRange(StageTable.FromJson(extra["records"]!.ToJsonString()));
        foreach (var r in _records.Where(r => r.ForgetAverage is not null)) thresholds.Observe(r.Stage, r.ForgetAverage!.Value);
        _lossSum = extra["loss_sum"]!.GetValue<double>();
        _lossSteps = extra["loss_steps"]!.GetValue<long>();
    }

    void Log(string line)
    {
        _log?.WriteLine($"{DateTime.UtcNow:yyyy-MM-ddTHH:mm:ssZ} {line}");
        _options.Log?.Invoke(line);
    }

    public void Dispose()
    {
        _store?.Dispose();
        _log?.Dispose();
        _lock?.Dispose();
    }
}
