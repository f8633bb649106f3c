using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using AlignThenUnlearn.Autodiff;

namespace AlignThenUnlearn.Runtime;

/// <summary>How long and how a <see cref="Trainer"/> runs.</summary>
public sealed record TrainerOptions
{
    /// <summary>Optimizer steps of the whole run (a resumed run continues up to this step).</summary>
    public required long Steps { get; init; }
    /// <summary>Micro-batches whose gradients are accumulated (and averaged) into one step.</summary>
    public int MicroBatches { get; init; } = 1;
    /// <summary>Each batch runs as pieces of at most this many rows (examples, with <see cref="PairedHalves"/>) whose
    /// gradients add up to the batch's (<see cref="MicroBatching"/>); 0: the whole batch at once.</summary>
    public int MicroBatchRows { get; init; }
    /// <summary>Batches hold every example's first sequence, then every second one (DPO, GradDiff, RMU).</summary>
    public bool PairedHalves { get; init; }
    /// <summary>Each batch runs as this many pieces of near-equal rows at once, each on a thread of its own
    /// (<see cref="TrainSession.RunAtOnce"/>: on a CPU device with one intra-op thread, one core per piece), their
    /// gradients added in piece order: deterministic, unlike more intra-op threads, but a float sum other than the whole
    /// batch's. 1: the whole batch (or <see cref="MicroBatchRows"/>) on the calling thread.</summary>
    public int ConcurrentPieces { get; init; } = 1;
    public LearningRateSchedule Schedule { get; init; } = new ConstantSchedule();
    /// <summary>Where checkpoints go (a <see cref="CheckpointDirectory"/>); none are written when null.</summary>
    public string? CheckpointFolder { get; init; }
    /// <summary>A checkpoint every this many steps, and always after the last step; 0: only after the last.</summary>
    public long CheckpointEvery { get; init; }
    public int KeepCheckpoints { get; init; } = 3;
    /// <summary>Continue from the newest complete checkpoint in <see cref="CheckpointFolder"/> (start afresh when there is none).</summary>
    public bool Resume { get; init; }
    /// <summary>Initial state of <see cref="Trainer.Random"/>.</summary>
    public ulong RandomSeed { get; init; }
}

/// <summary>What a step did, for progress reports; metrics are averaged over the step's micro-batches.</summary>
public sealed record TrainingProgress(long Step, long Steps, double Loss, double LearningRate, double GradNorm, TimeSpan Elapsed,
    IReadOnlyDictionary<string, double[]> Metrics);

/// <summary>A run stopped because a step's loss or gradient norm was not finite. Nothing of that step was applied;
/// the newest checkpoint (<see cref="LastCheckpoint"/>, which <c>latest</c> names) is the last good one.</summary>
public sealed class TrainingDivergedException(long step, string what, string? lastCheckpoint)
    : Exception($"step {step}: {what}, so the run stopped without applying the step; " +
        (lastCheckpoint is null ? "no checkpoint had been written" : $"the last good checkpoint is '{lastCheckpoint}' (latest)"))
{
    public long Step { get; } = step;
    public string? LastCheckpoint { get; } = lastCheckpoint;
}

/// <summary>Trains a store's trainable parameters with one joint forward+loss+backward graph: per step, gradients
/// accumulated over micro-batches, one optimizer update at the scheduled learning rate, a checkpoint every K steps.
/// The loop is <see cref="Run"/>; devices, sessions and files belong to the classes it calls.</summary>
public sealed class Trainer : IDisposable
{
    readonly TrainerOptions _options;
    readonly Action<IReadOnlyDictionary<string, HostTensor>>? _validateBatch;

    public ParameterStore Parameters { get; }
    public TrainSession Session { get; }
    public Optimizer Optimizer { get; }
    /// <summary>Randomness for the caller between steps; its state is saved in checkpoints and restored on resume.</summary>
    public SplitMix64 Random { get; }
    /// <summary>The caller's own state, saved in state.json and restored on resume.</summary>
    public JsonObject Extra { get; private set; } = [];
    /// <summary>Optimizer steps completed.</summary>
    public long Step { get; private set; }

    /// <param name="validateBatch">Throws (with a message saying what is wrong) for a batch the graph must not run.</param>
    public Trainer(ParameterStore store, GradientGraph graph, string loss, OptimizerSettings optimizer, TrainerOptions options,
        IEnumerable<string>? metrics = null, Action<IReadOnlyDictionary<string, HostTensor>>? validateBatch = null)
    {
        if (options.MicroBatches < 1) throw new ArgumentOutOfRangeException(nameof(options), options.MicroBatches, "at least one micro-batch per step");
        if (options.MicroBatchRows < 0) throw new ArgumentOutOfRangeException(nameof(options), options.MicroBatchRows, "a micro-batch size is 0 (the whole batch) or positive");
        if (options.ConcurrentPieces < 1) throw new ArgumentOutOfRangeException(nameof(options), options.ConcurrentPieces, "at least one piece per batch");
        if (options.ConcurrentPieces > 1 && (options.MicroBatches > 1 || options.MicroBatchRows > 0))
            throw new ArgumentException($"a batch runs either as {options.ConcurrentPieces} pieces at once or as micro-batches one after another, not both", nameof(options));
        if (options.CheckpointEvery < 0) throw new ArgumentOutOfRangeException(nameof(options), options.CheckpointEvery, "checkpoint interval cannot be negative");
        var missing = store.Trainable.Where(p => !graph.Gradients.ContainsKey(p)).ToList();
        if (missing.Count > 0) throw new ArgumentException($"the training graph has no gradient for trainable parameter '{missing[0]}'");
        (Parameters, _options, _validateBatch) = (store, options, validateBatch);
        Random = new SplitMix64(options.RandomSeed);
        Session = new TrainSession(store.Device, graph, store, loss, metrics, allowAccumulation: options.MicroBatches > 1 || options.MicroBatchRows > 0,
            concurrentPieces: options.ConcurrentPieces);
        Optimizer = new Optimizer(store, optimizer);
    }

    /// <param name="progress">Called after each step, before its checkpoint: what it changes (<see cref="Random"/>,
    /// <see cref="Extra"/>) belongs to the step and is saved with it.</param>
    /// <param name="checkpointWritten">Called with the folder of each checkpoint written.</param>
    public void Run(IBatchSource data, Action<TrainingProgress>? progress = null, Action<string>? checkpointWritten = null)
    {
        var checkpoints = _options.CheckpointFolder is null ? null : new CheckpointDirectory(_options.CheckpointFolder, _options.KeepCheckpoints);
        if (checkpoints is not null) Start(checkpoints, data);
        var clock = Stopwatch.StartNew();
        int micro = _options.MicroBatches;
        for (long step = Step + 1; step <= _options.Steps; step++)
        {
            double lr = Optimizer.Settings.LearningRate * _options.Schedule.Factor(step);
            double loss = 0;
            var metrics = new Dictionary<string, double[]>();
            for (int k = 0; k < micro; k++)
            {
                var batch = data.Next();
                try { _validateBatch?.Invoke(batch); }
                catch (ArgumentException e) { throw new ArgumentException($"step {step}, micro-batch {k + 1}: {e.Message}", e); }
                var result = _options.ConcurrentPieces > 1 ? Session.RunAtOnce(batch, _options.PairedHalves)
                    : Session.Run(batch, _options.MicroBatchRows, _options.PairedHalves, accumulate: k > 0);
                loss += result.Loss / micro;
                foreach (var (name, values) in result.Metrics)
                {
                    var sum = metrics.TryGetValue(name, out var s) ? s : metrics[name] = new double[values.Length];
                    for (int i = 0; i < values.Length; i++) sum[i] += values[i] / micro;
                }
            }
            if (!double.IsFinite(loss)) throw new TrainingDivergedException(step, $"the loss is {loss}", checkpoints?.Latest);
            double norm = Optimizer.Step(Session.Gradients, lr, gradScale: 1.0 / micro);
            if (!double.IsFinite(norm)) throw new TrainingDivergedException(step, $"the gradient norm is {norm}", checkpoints?.Latest);
            Step = step;
            progress?.Invoke(new TrainingProgress(step, _options.Steps, loss, lr, norm, clock.Elapsed, metrics));
            if (checkpoints is not null && (step == _options.Steps || (_options.CheckpointEvery > 0 && step % _options.CheckpointEvery == 0)))
            {
                var folder = checkpoints.Save(step, Parameters, Optimizer, State(data, lr));
                checkpointWritten?.Invoke(folder);
            }
        }
    }

    /// <summary>Resumes from the newest complete checkpoint, or makes sure a fresh run does not mix with an old one.</summary>
    void Start(CheckpointDirectory checkpoints, IBatchSource data)
    {
        checkpoints.RemoveLeftovers();
        var newest = checkpoints.NewestComplete();
        if (newest is null) return;
        if (!_options.Resume)
            throw new IOException($"'{checkpoints.Root}' already holds checkpoints of a run (latest '{newest}'); resume it or choose another folder");
        var state = TrainingCheckpoint.ReadState(newest);
        var step = Read(state, "step", n => n.GetValue<long>(), newest);
        var dataState = Read(state, "data", n => n.AsObject(), newest);
        var random = Read(state, "random", n => ulong.Parse(n.GetValue<string>(), CultureInfo.InvariantCulture), newest);
        var extra = Read(state, "extra", n => n.AsObject(), newest);
        data.RestoreState((JsonObject)dataState.DeepClone());   // checked before the store changes: other data changes nothing
        TrainingCheckpoint.Restore(newest, Parameters, Optimizer);
        if (Optimizer.StepsTaken != step)
            throw new InvalidOperationException($"checkpoint '{newest}' is at step {step} but its optimizer has taken {Optimizer.StepsTaken} steps");
        (Step, Random.State, Extra) = (step, random, (JsonObject)extra.DeepClone());
    }

    JsonObject State(IBatchSource data, double lr) => new()
    {
        ["format"] = "atu-training-checkpoint/1",
        ["step"] = Step,
        ["random"] = Random.State.ToString(CultureInfo.InvariantCulture),   // a string: JSON numbers lose 64-bit precision
        ["data"] = data.SaveState(),
        ["optimizer"] = Optimizer.Settings.ToJson(),
        ["schedule"] = _options.Schedule.ToJson(),
        ["learning_rate"] = lr,
        ["micro_batches"] = _options.MicroBatches,
        ["concurrent_pieces"] = _options.ConcurrentPieces,
        ["extra"] = Extra.DeepClone(),
    };

    static T Read<T>(JsonObject state, string key, Func<JsonNode, T> read, string folder)
    {
        try { return read(state[key] ?? throw new InvalidOperationException("missing")); }
        catch (Exception e) when (e is InvalidOperationException or FormatException or OverflowException)
        {
            throw new Models.ModelFormatException($"'{Path.Combine(folder, TrainingCheckpoint.StateFile)}' has no valid '{key}' ({e.Message})");
        }
    }

    public void Dispose()
    {
        Session.Dispose();
        Optimizer.Dispose();
    }
}
