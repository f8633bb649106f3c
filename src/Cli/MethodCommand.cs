using AlignThenUnlearn.Jobs;
using AlignThenUnlearn.Jobs.Unlearning;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Unlearning;
using Spectre.Console;

namespace AlignThenUnlearn.Cli;

/// <summary>`atu unlearn|run --method M [--lora]` for every method but Align-then-Unlearn: the preset of the command line,
/// then the method's job (<see cref="MethodJob"/>).</summary>
public static class MethodCommand
{
    /// <summary>The preset of a trained method's command line (--method, --preset, --lora).</summary>
    public static MethodPreset PresetOf(AtuOptions o)
    {
        var preset = MethodJob.PresetOf(MethodRegistry.GetTrained(o.Method).Name, o.Preset, o.Lora);
        return o.MicroBatch is int microBatch ? preset.WithMicroBatch(microBatch, "--micro-batch") : preset;
    }

    public static int Run(AtuOptions o, bool report)
    {
        var method = MethodRegistry.Get(o.Method);
        (string, string?)[] inputs = [("--artifacts", o.Artifacts), ("--weights", o.Weights), ("--rwku", o.Rwku), ("--preset", File.Exists(o.Preset) ? o.Preset : null)];
        OutputPaths.RequireApart(("--out", o.Out), inputs);
        var preset = method is PromptingMethod ? null : PresetOf(o);
        using var device = o.CreateDevice();
        var result = new MethodJob(o.Artifacts, o.Weights, o.Rwku, o.Target, method, preset, o.Out, o.Resume, Evaluate: o is not UnlearnOptions { NoEval: true }, report)
            .Run(device, new ConsoleReporter());
        if (result is { Stages.Count: > 0 }) AnsiConsole.Write(AtuCommand.StageTableView(result.Stages));
        return 0;
    }
}
