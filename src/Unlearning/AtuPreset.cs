using System.Text.Json;
using System.Text.Json.Serialization;

namespace AlignThenUnlearn.Unlearning;

/// <summary>The embedding prediction head's layout (PyTorch nn.TransformerDecoderLayer stack, post-norm).</summary>
public sealed record HeadSettings
{
    public int Layers { get; init; } = 6;
    public int DModel { get; init; } = 768;
    public int Heads { get; init; } = 8;
    public int FeedForward { get; init; } = 3072;
    public double Dropout { get; init; } = 0.1;
    public double LayerNormEps { get; init; } = 1e-5;
}

/// <summary>One optimisation phase: optimizer and data shape.</summary>
public sealed record PhaseSettings
{
    /// <summary>adam, adamw or sgd.</summary>
    public string Optimizer { get; init; } = "adam";
    public double LearningRate { get; init; }
    public double WeightDecay { get; init; }
    public double Momentum { get; init; }
    public double MaxGradNorm { get; init; } = 1.0;
    public int BatchSize { get; init; } = 16;
    public int SequenceLength { get; init; } = 256;
    /// <summary>Alignment steps; unlearning and realignment take their step counts from the stages.</summary>
    public int Steps { get; init; }

    /// <summary>The phase's optimizer: adam is AdamW without weight decay (the preset refuses adam with weight decay).</summary>
    public Runtime.OptimizerSettings ToOptimizerSettings() => Optimizer switch
    {
        "adam" or "adamw" => new Runtime.AdamWSettings(LearningRate, WeightDecay: WeightDecay, MaxGradNorm: MaxGradNorm),
        _ => new Runtime.SgdSettings(LearningRate, Momentum, WeightDecay, MaxGradNorm),
    };
}

/// <summary>The values of <see cref="AtuPreset.Sequences"/>.</summary>
public static class SequenceModes
{
    public const string First = "first", Chunks = "chunks";
}

/// <summary>One stage of the schedule: unlearning steps at a threshold, then realignment steps.</summary>
public sealed record StageSettings(double Tau, int UnlearnSteps, int RealignSteps);

/// <summary>The weights of the probe levels in the "All" averages of the reports and of the threshold checkpoints:
/// forget (FB, QA, AA) and neighbour (FB, QA).</summary>
public sealed record AllWeightSettings(double[] Forget, double[] Neighbour);

/// <summary>Every value of an Align-then-Unlearn run, as a JSON preset (`paper` and `toy` ship with the project).
/// The paper preset holds the authors' published defaults (issue 6).</summary>
public sealed record AtuPreset
{
    public string Name { get; init; } = "custom";
    /// <summary>Hidden-state indices (Hugging Face indexing) read by one head each; losses are summed.</summary>
    public int[] Layers { get; init; } = [29];
    /// <summary>Encoder tokens per future window.</summary>
    public int WindowTokens { get; init; } = 8;
    public HeadSettings Head { get; init; } = new();
    /// <summary>Other targets whose forget corpora join the target's for alignment.</summary>
    public int AlignmentExtraTargets { get; init; } = 3;
    public PhaseSettings Alignment { get; init; } = new();
    public PhaseSettings Realignment { get; init; } = new();
    public PhaseSettings Unlearning { get; init; } = new();
    public StageSettings[] Stages { get; init; } = [];
    /// <summary>Restart the head's Adam state at every realignment stage (the reference implementation does).</summary>
    public bool ResetHeadOptimizerEachStage { get; init; } = true;
    /// <summary>Forget-average thresholds (percent) whose first crossing names a kept checkpoint.</summary>
    public double[] CheckpointThresholds { get; init; } = [50, 35, 20];
    /// <summary>A resumable checkpoint every this many steps inside a phase, besides the one at every phase's end (0: phase ends only).</summary>
    public int CheckpointEvery { get; init; }
    /// <summary>Alignment, realignment and unlearning batches run as pieces of this many rows whose gradients add up to the
    /// batch's (<see cref="Runtime.MicroBatching"/>: the same step within float rounding, and without head dropout the
    /// same run; less activation memory); must divide alignment.batch_size and unlearning.batch_size; 0: the whole batch
    /// at once. Left out of the JSON when 0, so runs started before the key existed resume.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public int MicroBatch { get; init; }
    public int Seed { get; init; }
    /// <summary>The forget corpus, a file of the target's RWKU folder: <c>passage.json</c> ({text, subject}) or a model's own
    /// biographies (<c>positive_phi.json</c> for Phi-3, <c>positive.json</c> for Llama-3; `atu corpus` writes one for any model).</summary>
    public string ForgetCorpus { get; init; } = "passage.json";
    /// <summary>How texts become rows (see <see cref="SequenceModes"/>): <c>first</c>, the authors' (the first
    /// sequence_length tokens of each text, right-padded with EOS, no padding mask anywhere, the unlearning loss averaged
    /// over every position); <c>chunks</c>, every token of each text in pieces, padding masked everywhere.</summary>
    public string Sequences { get; init; } = SequenceModes.Chunks;
    /// <summary>The sentence encoder the preset's values were chosen for (null: any); a run with another says so.</summary>
    public string? Encoder { get; init; }
    /// <summary>The weights of the levels in the "All" averages (null: the probe counts of the evaluated set).</summary>
    public AllWeightSettings? AllWeights { get; init; }
    /// <summary>RWKU suite tasks beyond the forget and neighbour probes (<see cref="StageTaskNames"/>, as `atu eval --suite rwku
    /// --tasks` names them) scored after every stage, their figures in the stage table (null or empty: none). Left out of
    /// the preset's JSON when null, so that runs started before the key existed resume.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string[]? StageTasks { get; init; }

    /// <summary>The names <see cref="StageTasks"/> takes.</summary>
    public static IReadOnlyList<string> StageTaskNames => ["mmlu", "bbh", "truthfulqa", "triviaqa", "fluency", "mia"];

    /// <summary>The check of a preset's <c>stage_tasks</c> (ATU's and the baselines' presets take the same key).</summary>
    internal static void ValidateStageTasks(string[]? stageTasks, Action<bool, string> require)
    {
        foreach (var task in stageTasks ?? [])
            require(StageTaskNames.Contains(task), $"stage_tasks: unknown task '{task}'; expected some of {string.Join(", ", StageTaskNames)} (forget and neighbour are scored anyway)");
        require(stageTasks is null || stageTasks.Distinct().Count() == stageTasks.Length, "stage_tasks names a task twice");
    }


    public static IReadOnlyList<string> Builtin => ["paper", "toy"];

    /// <summary>A built-in preset by name, or a JSON file.</summary>
    public static AtuPreset Load(string nameOrPath)
    {
        var (preset, source) = PresetJson.Read<AtuPreset>(nameOrPath, Builtin, "preset");
        preset.Validate(source);
        return preset;
    }

    public string ToJson() => JsonSerializer.Serialize(this, PresetJson.Options);

    /// <summary>The preset with <see cref="MicroBatch"/> <paramref name="microBatch"/> (`--micro-batch`), checked.</summary>
    public AtuPreset WithMicroBatch(int microBatch, string source)
    {
        var preset = this with { MicroBatch = microBatch };
        preset.Validate(source);
        return preset;
    }

    void Validate(string source)
    {
        void Require(bool ok, string what) { if (!ok) throw new InvalidDataException($"{source}: {what}"); }
        Require(Layers.Length > 0 && Layers.All(l => l >= 0), "layers must list at least one hidden-state index >= 0");
        Require(WindowTokens > 0, "window_tokens must be positive");
        Require(Head.Layers > 0 && Head.DModel > 0 && Head.Heads > 0 && Head.DModel % Head.Heads == 0, $"head: d_model {Head.DModel} must be a positive multiple of heads {Head.Heads}");
        Require(Head.Dropout is >= 0 and < 1, "head.dropout must be in [0, 1)");
        foreach (var (phase, name) in new[] { (Alignment, "alignment"), (Realignment, "realignment"), (Unlearning, "unlearning") })
        {
            Require(phase.Optimizer is "adam" or "adamw" or "sgd", $"{name}.optimizer '{phase.Optimizer}' is not adam, adamw or sgd");
            Require(phase.LearningRate > 0, $"{name}.learning_rate must be positive");
            Require(phase.BatchSize > 0 && phase.SequenceLength > 1, $"{name}: batch_size and sequence_length must be positive");
        }
        Require(Stages.Length > 0, "stages must not be empty");
        Require(Stages.All(s => s.Tau is > -1 and <= 1 && s.UnlearnSteps >= 0 && s.RealignSteps >= 0), "every stage needs tau in (-1, 1] and non-negative step counts");
        Require(CheckpointThresholds.All(t => t is > 0 and <= 100), "checkpoint_thresholds are percentages in (0, 100]");
        Require(CheckpointEvery >= 0, "checkpoint_every must be 0 (phase ends only) or positive");
        foreach (var (phase, name) in new[] { (Alignment, "alignment"), (Unlearning, "unlearning") })
        {
            // Realignment reads the alignment's batches, so its own batch_size is not read.
            var refusal = Runtime.MicroBatching.Refusal("micro_batch", MicroBatch, $"{name}.batch_size", phase.BatchSize);
            Require(refusal is null, refusal!);
        }
        Require(Alignment.Steps >= 0, "alignment.steps must not be negative");
        foreach (var (phase, name) in new[] { (Alignment, "alignment"), (Realignment, "realignment"), (Unlearning, "unlearning") })
            Require(phase.Optimizer != "adam" || phase.WeightDecay == 0, $"{name}: adam with weight_decay is L2 regularisation, which this engine does not offer; use adamw (decoupled) or weight_decay 0");
        Require(Sequences is SequenceModes.First or SequenceModes.Chunks, $"sequences '{Sequences}' is not '{SequenceModes.First}' or '{SequenceModes.Chunks}'");
        Require(!string.IsNullOrWhiteSpace(ForgetCorpus) && Path.GetFileName(ForgetCorpus) == ForgetCorpus, $"forget_corpus '{ForgetCorpus}' must be a file name in the target's RWKU folder");
        Require(AllWeights is null || (AllWeights.Forget.Length == 3 && AllWeights.Neighbour.Length == 2
            && AllWeights.Forget.Concat(AllWeights.Neighbour).All(w => w >= 0) && AllWeights.Forget.Sum() > 0 && AllWeights.Neighbour.Sum() > 0),
            "all_weights needs forget [FB, QA, AA] and neighbour [FB, QA], non-negative with positive sums");
        ValidateStageTasks(StageTasks, Require);
        Require(ResetHeadOptimizerEachStage || Realignment.Optimizer == Alignment.Optimizer,
            "realignment continues the alignment's head optimizer unless reset_head_optimizer_each_stage is true, so both need the same optimizer");
    }
}
