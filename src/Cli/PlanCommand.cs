using AlignThenUnlearn.Unlearning;
using CommandLine;

namespace AlignThenUnlearn.Cli;

[Verb("plan", HelpText = "The memory plan of a run: bytes of each phase (parameters, gradients, optimizer state, activations, caches, scoring), the peak and the largest micro-batch that fits the device.")]
public sealed class PlanOptions
{
    [Option("artifacts", HelpText = "Artifact folder written by `atu export` (its config, weights dtype and encoder).")]
    public string? Artifacts { get; set; }

    [Option("config", HelpText = "A Hugging Face config.json instead of an artifact folder (e.g. models/phi3-mini-4k.json).")]
    public string? Config { get; set; }

    [Option("preset", Default = "paper", HelpText = "An Align-then-Unlearn preset (paper, toy), a method preset (rwku-llama3-npo, toy-ga, ...) or a preset JSON file.")]
    public string Preset { get; set; } = "paper";

    [Option("layer", HelpText = "Hidden-state index(es) the head(s) read, overriding the preset.")]
    public IEnumerable<int> Layers { get; set; } = [];

    [Option("memory-gib", Default = 80.0, HelpText = "The device's memory in GiB.")]
    public double MemoryGib { get; set; } = 80;

    [Option("micro-batch", HelpText = "Rows per micro-batch of the training steps (default: the preset's micro_batch, else the whole batch).")]
    public int? MicroBatch { get; set; }

    [Option("alignment-rows", Default = 400, HelpText = "Rows of the alignment corpus whose hidden states are cached.")]
    public int AlignmentRows { get; set; } = 400;

    [Option("json", HelpText = "Also write the plan as JSON to this file.")]
    public string? Json { get; set; }
}

public static class PlanCommand
{
    public static int Run(PlanOptions o)
    {
        if ((o.Artifacts is null) == (o.Config is null)) throw new ArgumentException("give either --artifacts or --config");
        if (o.MemoryGib <= 0) throw new ArgumentException($"--memory-gib {o.MemoryGib}: expected a positive size");
        if (o.MicroBatch is < 1) throw new ArgumentException($"--micro-batch {o.MicroBatch}: expected 1 or more");
        var options = new MemoryPlanOptions { DeviceBytes = (long)(o.MemoryGib * (1L << 30)), AlignmentRows = o.AlignmentRows, MicroBatch = o.MicroBatch };
        MemoryPlanModel Model(string? encoder) => o.Artifacts is { } a ? MemoryPlanModels.FromArtifacts(a, encoder) : MemoryPlanModels.FromConfig(o.Config!, encoder);
        MemoryPlan plan;
        if (MethodPreset.Builtin.Contains(o.Preset) || (File.Exists(o.Preset) && File.ReadAllText(o.Preset).Contains("\"method\"")))
            plan = MemoryPlan.ForMethod(Model(null), MethodPreset.Load(o.Preset), options);
        else
        {
            var preset = AtuPreset.Load(o.Preset);
            if (o.Layers.Any()) preset = preset with { Layers = o.Layers.ToArray() };
            plan = MemoryPlan.ForAtu(Model(preset.Encoder), preset, options);
        }
        Console.Write(plan.Describe());
        if (o.Json is not null) File.WriteAllText(o.Json, plan.ToJsonString());
        return 0;
    }
}
