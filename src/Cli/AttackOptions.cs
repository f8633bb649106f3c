using AlignThenUnlearn.Evaluation.Attacks;
using AlignThenUnlearn.Jobs.Attacks;
using CommandLine;

namespace AlignThenUnlearn.Cli;

/// <summary>The options every attack kind takes: `atu eval`'s (the attacked model is scored as eval scores it) and the
/// inputs of the recovery. Each kind's own options are in its class below; `atu attack KIND` parses the kind's class
/// only, so an option of another kind is refused (<see cref="AttackCommand.Parse"/>).</summary>
public abstract class AttackOptions : EvalOptions
{
    /// <summary>The kind, as `atu attack KIND` names it.</summary>
    public abstract string Kind { get; }

    /// <summary>The attack these options describe; a bad value is refused here, before any work.</summary>
    public abstract IAttack CreateAttack();

    [Option("adapters", HelpText = "LoRA adapters (adapters.safetensors of a LoRA run) merged into the weights (--weights, else the artifact's) before the attack: the attacked model is base + adapters.")]
    public string? Adapters { get; set; }

    [Option("before", HelpText = "results.json (or its folder) of `atu eval` on the model before unlearning; with --unlearned, attack.json gets the recovery.")]
    public string? Before { get; set; }

    [Option("unlearned", HelpText = "results.json (or its folder) of `atu eval` on the unlearned model without the attack.")]
    public string? Unlearned { get; set; }
}

/// <summary>`atu attack quantize`.</summary>
public sealed class QuantizeAttackOptions : AttackOptions
{
    public override string Kind => QuantizeAttack.Name;
    public override IAttack CreateAttack() => new QuantizeAttack(QuantizeAttack.SchemeOf(Scheme, Bits, GroupSize, Symmetric));

    [Option("bits", Default = 4, HelpText = "8 or 4 (rtn), 4 (nf4).")]
    public int Bits { get; set; } = 4;

    [Option("scheme", Default = "rtn", HelpText = "rtn (round to nearest, a scale and zero point per group) or nf4 (bitsandbytes' NormalFloat4, absmax per block of 64).")]
    public string Scheme { get; set; } = "rtn";

    [Option("group-size", HelpText = "rtn: values of a row sharing one scale (e.g. 32, 64, 128); 0: one per output channel. Default: 0 for 8 bits, 128 for 4 bits. nf4: 64 only.")]
    public int? GroupSize { get; set; }

    [Option("symmetric", HelpText = "rtn: symmetric groups (absmax / (2^(bits-1) - 1), zero point 2^(bits-1)) instead of asymmetric ones (min/max with a zero point).")]
    public bool Symmetric { get; set; }
}

/// <summary>`atu attack cast`.</summary>
public sealed class CastAttackOptions : AttackOptions
{
    public override string Kind => CastAttack.Name;
    public override IAttack CreateAttack() => new CastAttack(To);

    [Option("to", Default = PrecisionCast.F16, HelpText = "f16 (an f16 file: an f16 artifact runs it in f16 throughout) or bf16 (the weights rounded to bf16, run in f32).")]
    public string To { get; set; } = PrecisionCast.F16;
}

/// <summary>`atu attack sample`.</summary>
public sealed class SampleAttackOptions : AttackOptions
{
    public override string Kind => SampleAttack.Name;
    public override IAttack CreateAttack() => new SampleAttack(Samples, Temperature, TopP, Seed);

    [Option('n', "samples", Default = 16, HelpText = "Answers per probe (-n 16; CommandLineParser takes no one-letter long name).")]
    public int Samples { get; set; } = 16;

    [Option("temperature", Default = 1.0, HelpText = "Logits divided by this (0: greedy).")]
    public double Temperature { get; set; } = 1.0;

    [Option("top-p", Default = 1.0, HelpText = "Keep the most probable tokens whose probabilities first reach this together (nucleus sampling).")]
    public double TopP { get; set; } = 1.0;

    [Option("seed", Default = 0L, HelpText = "Answer i of every probe draws with seed + i; the same seed gives the same answers.")]
    public long Seed { get; set; }
}

/// <summary>`atu attack relearn`.</summary>
public sealed class RelearnAttackOptions : AttackOptions
{
    public override string Kind => RelearnAttack.Name;
    public override IAttack CreateAttack() => new RelearnAttack(Data, RelearnAttack.ExampleCounts(Examples), Steps, LearningRate, Seed);

    [Option("data", Default = RelearnTexts.Forget, HelpText = "forget (the attacked targets' passage.json), neighbour (their neighbor_level1 probes as sentences, the blank filled with the answer) or unrelated (the passage.json texts of every other target in --rwku).")]
    public string Data { get; set; } = RelearnTexts.Forget;

    [Option("examples", Default = "4", HelpText = "Texts to fine-tune on, one or several comma-separated (e.g. 0,4,16); each K is a separate attack on the given weights, reports in <out>/k<K>/. K = 0 scores the weights unchanged.")]
    public string Examples { get; set; } = "4";

    [Option("steps", Default = 20L, HelpText = "AdamW steps, each on one batch of all K texts.")]
    public long Steps { get; set; } = 20;

    [Option("lr", Default = 1e-5, HelpText = "AdamW learning rate (constant, no weight decay).")]
    public double LearningRate { get; set; } = 1e-5;

    [Option("seed", Default = 0L, HelpText = "Which K texts (the pool shuffled with it) and the batch order.")]
    public long Seed { get; set; }
}
