using System.Text.Json;
using System.Text.Json.Serialization;
using AlignThenUnlearn.Models;

namespace AlignThenUnlearn.Unlearning;

/// <summary>Every value of a trained method's run (`atu unlearn --method M`, M a <see cref="TrainedMethod"/>), as JSON
/// (snake_case keys; built-in presets <c>rwku-llama3-&lt;method&gt;[-lora]</c> with RWKU's Llama-3-8B settings and
/// <c>toy-&lt;method&gt;[-lora]</c>). Optimiser and schedule as RWKU: AdamW, linear warm-up then cosine decay to 0.</summary>
public sealed record MethodPreset
{
    public string Name { get; init; } = "custom";
    public string Method { get; init; } = GradientAscent.Id;
    public double LearningRate { get; init; }
    public int Epochs { get; init; } = 3;
    /// <summary>Sequences (GA, NPO, RT) or examples (DPO's pairs, GradDiff's forget and retain texts) per micro-batch.</summary>
    public int BatchSize { get; init; } = 8;
    /// <summary>Micro-batches whose gradients are averaged into one optimizer step.</summary>
    public int GradientAccumulation { get; init; } = 1;
    /// <summary>Each batch of <see cref="BatchSize"/> examples runs as pieces of this many examples whose gradients add up
    /// to the batch's (<see cref="Runtime.MicroBatching"/>: the same step within float rounding, less activation memory);
    /// must divide the batch size; 0: the whole batch at once. Left out of the JSON when 0, so runs started before the key
    /// existed resume.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public int MicroBatch { get; init; }
    public int WarmupSteps { get; init; } = 20;
    public double WeightDecay { get; init; }
    /// <summary>Gradient clipping (Hugging Face's Trainer default 1.0; 0: none).</summary>
    public double MaxGradNorm { get; init; } = 1.0;
    /// <summary>Tokens per sequence at most (LLaMA-Factory's cutoff_len).</summary>
    public int Cutoff { get; init; } = 512;
    /// <summary>NPO's and DPO's beta (null: RWKU's, 0.2 for NPO and 0.1 for DPO).</summary>
    public double? Beta { get; init; }
    /// <summary>GA, GA*, GradDiff and NPO train on this file of the target's folder (positive.json: RWKU's Llama-3 corpus;
    /// passage.json: GA*).</summary>
    public string ForgetCorpus { get; init; } = "positive.json";
    /// <summary>DPO trains on this file of the target's folder (<c>pair.json</c>: RWKU's Llama-3 pairs; <c>pair_phi.json</c>: Phi-3's).</summary>
    public string PairCorpus { get; init; } = "pair.json";
    /// <summary>RT trains on this file of the target's folder (<c>reject.json</c>: RWKU's Llama-3 refusals; <c>reject_phi.json</c>: Phi-3's).</summary>
    public string RejectCorpus { get; init; } = "reject.json";
    /// <summary>GradDiff's retain corpus: the forget-corpus texts of this many other targets, drawn by <see cref="Seed"/>.</summary>
    public int RetainTargets { get; init; } = 3;
    public bool Lora { get; init; }
    public int LoraRank { get; init; } = 8;
    public double LoraAlpha { get; init; } = 16;
    /// <summary>Train only decoder layers <c>[a, b]</c> read as Python's <c>range(a, b)</c>, b excluded, as RWKU's
    /// <c>--train_layers a-b</c> (its workflows select <c>layers.{i}.</c> for i in <c>range(a, b)</c>); null: all.</summary>
    public int[]? TrainLayers { get; init; }
    /// <summary>The BOS tokens of the evaluation's chat prompts: <c>template</c> (as the snapshot's chat template renders
    /// them: one) or <c>rwku</c> (as RWKU's evaluation encodes them: the template's BOS, then the tokenizer's; two for
    /// Llama-3, which the <c>rwku-llama3-*</c> presets use so that their figures compare with RWKU's published ones).</summary>
    public string PromptBos { get; init; } = PromptBosTemplate;
    public const string PromptBosTemplate = "template", PromptBosRwku = "rwku";

    [JsonIgnore]
    public Models.PromptBos PromptLayout => PromptBos == PromptBosRwku ? Models.PromptBos.Rwku : Models.PromptBos.Template;

    /// <summary>Score the probes every this many optimizer steps; 0: after every epoch.</summary>
    public int EvaluateEvery { get; init; }
    public double[] CheckpointThresholds { get; init; } = [50, 35, 20];
    public int Seed { get; init; }
    /// <summary>The weights of the levels in the "All" averages (null: the probe counts of the evaluated set).</summary>
    public AllWeightSettings? AllWeights { get; init; }
    /// <summary>RWKU suite tasks scored after every evaluation besides the probes, as <see cref="AtuPreset.StageTasks"/>.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string[]? StageTasks { get; init; }

    /// <summary>Values particular to the method (its <see cref="TrainedMethod.Options"/>), by name; absent ones take the method's defaults.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public SortedDictionary<string, double>? Options { get; init; }

    /// <summary>The method this preset trains (derived from <see cref="Method"/>, so not written).</summary>
    [JsonIgnore]
    public TrainedMethod TrainedMethod => MethodRegistry.GetTrained(Method);

    /// <summary>An option of the method: the preset's value, else the method's default.</summary>
    public double Option(string name) => Options is not null && Options.TryGetValue(name, out var value) ? value
        : TrainedMethod.Options.TryGetValue(name, out var defaultValue) ? defaultValue
        : throw new ArgumentException($"method '{Method}' has no option '{name}'");

    public LoraOptions? LoraOptions => Lora ? new LoraOptions { Rank = LoraRank, Alpha = LoraAlpha, Layers = Layers } : null;

    public LayerRange? Layers => TrainLayers is [var first, var end] ? new LayerRange(first, end - 1) : null;


    public static IReadOnlyList<string> Builtin { get; } = [.. MethodRegistry.Trained.SelectMany(m => m.PresetNames)];

    /// <summary>The built-in preset of a method: <c>rwku-llama3-ga</c>, <c>toy-npo-lora</c>, ...</summary>
    public static string BuiltinName(string family, string method, bool lora) => MethodRegistry.GetTrained(method).PresetName(family, lora);

    /// <summary>A built-in preset by name, or a JSON file.</summary>
    public static MethodPreset Load(string nameOrPath)
    {
        var (preset, source) = PresetJson.Read<MethodPreset>(nameOrPath, Builtin, "method preset");
        preset.Validate(source);
        return preset;
    }

    public string ToJson() => JsonSerializer.Serialize(this, PresetJson.Options);

    /// <summary>The preset with <see cref="MicroBatch"/> <paramref name="microBatch"/> (`--micro-batch`), checked.</summary>
    public MethodPreset WithMicroBatch(int microBatch, string source)
    {
        var preset = this with { MicroBatch = microBatch };
        preset.Validate(source);
        return preset;
    }

    public void Validate(string source)
    {
        void Require(bool ok, string what) { if (!ok) throw new InvalidDataException($"{source}: {what}"); }
        var trained = MethodRegistry.Trained.Select(m => m.Name).ToList();
        Require(trained.Contains(Method), $"method '{Method}' is not one of {string.Join(", ", trained)}");
        var unknown = (Options?.Keys ?? Enumerable.Empty<string>()).Where(k => !TrainedMethod.Options.ContainsKey(k)).ToList();
        Require(unknown.Count == 0, $"options {string.Join(", ", unknown)} are not options of {Method} (its options: {(TrainedMethod.Options.Count == 0 ? "none" : string.Join(", ", TrainedMethod.Options.Keys))})");
        Require(LearningRate > 0, "learning_rate must be positive");
        Require(Epochs > 0 && BatchSize > 0 && GradientAccumulation > 0, "epochs, batch_size and gradient_accumulation must be positive");
        var microBatch = Runtime.MicroBatching.Refusal("micro_batch", MicroBatch, "batch_size", BatchSize);
        Require(microBatch is null, microBatch!);
        Require(WarmupSteps >= 0 && WeightDecay >= 0 && MaxGradNorm >= 0, "warmup_steps, weight_decay and max_grad_norm must not be negative");
        Require(Cutoff > 1, "cutoff must leave at least two tokens");
        Require(Beta is null or > 0, "beta must be positive");
        foreach (var (key, file) in new[] { ("forget_corpus", ForgetCorpus), ("pair_corpus", PairCorpus), ("reject_corpus", RejectCorpus) })
            Require(!string.IsNullOrWhiteSpace(file) && Path.GetFileName(file) == file, $"{key} '{file}' must be a file name in the target's RWKU folder");
        Require(RetainTargets > 0, "retain_targets must be positive");
        Require(LoraRank > 0 && LoraAlpha > 0, "lora_rank and lora_alpha must be positive");
        Require(TrainLayers is null || (TrainLayers.Length == 2 && TrainLayers[0] >= 0 && TrainLayers[0] < TrainLayers[1]), "train_layers is [a, b], Python's range(a, b) with b excluded: 0 <= a < b");
        Require(PromptBos is PromptBosTemplate or PromptBosRwku, $"prompt_bos '{PromptBos}' is not {PromptBosTemplate} or {PromptBosRwku}");
        Require(EvaluateEvery >= 0, "evaluate_every must be 0 (every epoch) or positive");
        AtuPreset.ValidateStageTasks(StageTasks, Require);
        Require(CheckpointThresholds.All(t => t is > 0 and <= 100), "checkpoint_thresholds are percentages in (0, 100]");
    }
}
