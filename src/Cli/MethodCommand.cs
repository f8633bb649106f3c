using System.Globalization;
using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Unlearning;
using Spectre.Console;

namespace AlignThenUnlearn.Cli;

/// <summary>`atu unlearn|run --method ga|ga-star|graddiff|npo|dpo|rt|icu [--lora]`: the token-level baselines in
/// Align-then-Unlearn's harness (<see cref="MethodRun"/>), and ICU (no training: RWKU scored with its unlearning prompt).</summary>
public static class MethodCommand
{
    /// <summary>The preset a method runs with: --preset when given, else <c>rwku-llama3-&lt;method&gt;[-lora]</c>; --lora
    /// switches LoRA on in any preset.</summary>
    public static MethodPreset PresetOf(string method, string preset, bool presetGiven, bool lora)
    {
        var loaded = MethodPreset.Load(presetGiven ? preset : MethodPreset.BuiltinName("rwku-llama3", method, lora));
        if (loaded.Method != method) throw new ArgumentException($"--preset {preset} is a {loaded.Method} preset, not {method}");
        return lora ? loaded with { Lora = true } : loaded;
    }

    public static int Run(AtuOptions o, bool report)
    {
        var method = Methods.Check(o.Method);
        var device = o.CreateDevice();
        var artifact = ArtifactModel.Open(o.Artifacts);
        var tokenizer = RwkuScoring.ChatTokenizer(artifact);
        (string, string?)[] inputs = [("--artifacts", o.Artifacts), ("--weights", o.Weights), ("--rwku", o.Rwku), ("--preset", File.Exists(o.Preset) ? o.Preset : null)];
        OutputPaths.RequireApart(("--out", o.Out), inputs);
        var dataset = RwkuDataset.Open(o.Rwku);
        var target = dataset.Target(o.Target);
        var data = dataset.Load(target, includeMmlu: report);
        var options = new RwkuEvaluationOptions { ChatFormat = tokenizer.ChatFormat };
        if (method == Methods.Icu)
        {
            // No training: the model as it is, asked with RWKU's unlearning prompt before every question. No preset records
            // the method, so a record of its own does (`atu report` reads it).
            Directory.CreateDirectory(o.Out);
            AtomicFile.WriteAllBytes(Path.Combine(o.Out, MethodTable.MethodRecordFile), """{ "method": "icu" }"""u8.ToArray());
            AtuCommand.WriteReports(o.Out, artifact, device, data with { Mmlu = report ? data.Mmlu : [] }, options,
                [.. (report ? new[] { new AtuCommand.ReportModel("before", o.Weights, null) } : []), new("ICU", o.Weights, "ICU", Icu: true)]);
            return 0;
        }
        var preset = PresetOf(method, o.Preset, o.PresetGiven, o.Lora);
        options = options with { AllWeights = AtuCommand.AllWeightsOf(preset.AllWeights) };
        var examples = MethodData.Examples(preset, dataset, target, tokenizer);
        var methodInputs = new MethodInputs(artifact.Config, o.Weights ?? artifact.PathOf(ArtifactExporter.WeightsFile), examples, target.Name, tokenizer.EosId ?? 0);
        AnsiConsole.MarkupLineInterpolated($"{method}{(preset.Lora ? " (LoRA)" : "")} on [bold]{target.Name}[/] (target {target.Number}): {examples.Count} examples, preset {preset.Name}, on {device.Description}");
        var evaluateStage = AtuCommand.StageEvaluator(artifact, device, o.Weights, dataset, target, preset.StageTasks, options.AllWeights);
        AtuRunResult result = null!;
        AtuCommand.WithProgress(method, 1, (task, log) =>
        {
            using var run = new MethodRun(preset, methodInputs, new AtuRunOptions
            {
                Device = device,
                Folder = o.Out,
                Resume = o.Resume,
                Evaluate = o is UnlearnOptions { NoEval: true } ? null : evaluateStage,
                Progress = p =>
                {
                    task.MaxValue = Math.Max(p.Steps, 1);
                    task.Value = p.Step;
                    task.Description = Markup.Escape(string.Create(CultureInfo.InvariantCulture, $"{p.Phase} step {p.Step}/{p.Steps} loss {p.Loss:0.0000} {p.StepsPerSecond:0.0} steps/s"));
                },
                Log = log,
            });
            result = run.Run();
        });
        if (result.Stages.Count > 0) AnsiConsole.Write(AtuCommand.StageTableView(result.Stages));
        if (report)
        {
            var label = method.ToUpperInvariant() + (preset.Lora ? " (L)" : " (F)");
            AtuCommand.WriteReports(o.Out, artifact, device, data, options,
                [new("before", o.Weights, null), .. result.Named.OrderByDescending(kv => kv.Key).Select(kv => new AtuCommand.ReportModel($"{label} {ThresholdCheckpoints.NameOf(kv.Key)}", Path.Combine(kv.Value, AtuRun.ModelFile), label)),
                    new($"{label} final", Path.Combine(result.Final!, AtuRun.ModelFile), label)]);
        }
        return 0;
    }
}
