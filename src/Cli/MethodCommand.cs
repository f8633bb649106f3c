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
    /// <summary>The preset a trained method runs with: <paramref name="preset"/> (--preset) when given, else
    /// <c>rwku-llama3-&lt;method&gt;[-lora]</c>; --lora switches LoRA on in any preset. A preset of another method (an
    /// Align-then-Unlearn one such as paper included) is refused.</summary>
    public static MethodPreset PresetOf(string method, string? preset, bool lora)
    {
        if (preset is not null && AtuPreset.Builtin.Contains(preset))
            throw new ArgumentException($"--preset {preset} is an Align-then-Unlearn preset, not a {method} preset (e.g. {MethodPreset.BuiltinName("rwku-llama3", method, lora)})");
        var loaded = MethodPreset.Load(preset ?? MethodPreset.BuiltinName("rwku-llama3", method, lora));
        if (loaded.Method != method) throw new ArgumentException($"--preset {preset} is a {loaded.Method} preset, not {method}");
        return lora ? loaded with { Lora = true } : loaded;
    }

    /// <summary>The preset of a trained method's command line (--method, --preset, --lora).</summary>
    public static MethodPreset PresetOf(AtuOptions o) => o.MicroBatch is int microBatch
        ? PresetOf(MethodRegistry.GetTrained(o.Method).Name, o.Preset, o.Lora).WithMicroBatch(microBatch, "--micro-batch")
        : PresetOf(MethodRegistry.GetTrained(o.Method).Name, o.Preset, o.Lora);

    public static int Run(AtuOptions o, bool report)
    {
        var method = MethodRegistry.Get(o.Method);
        using var device = o.CreateDevice();
        var artifact = ArtifactModel.Open(o.Artifacts);
        var tokenizer = RwkuScoring.ChatTokenizer(artifact);
        (string, string?)[] inputs = [("--artifacts", o.Artifacts), ("--weights", o.Weights), ("--rwku", o.Rwku), ("--preset", File.Exists(o.Preset) ? o.Preset : null)];
        OutputPaths.RequireApart(("--out", o.Out), inputs);
        var dataset = RwkuDataset.Open(o.Rwku);
        var target = dataset.Target(o.Target);
        var data = dataset.Load(target, includeMmlu: report);
        var options = new RwkuEvaluationOptions { ChatFormat = tokenizer.ChatFormat };
        if (method is PromptingMethod)
        {
            // No training: the model as it is, asked with RWKU's unlearning prompt before every question.
            WriteIcuRecord(o.Out);
            AtuCommand.WriteReports(o.Out, artifact, device, data with { Mmlu = report ? data.Mmlu : [] }, options,
                [.. (report ? new[] { new AtuCommand.ReportModel("before", o.Weights, null) } : []), new(method.Label(false), o.Weights, method.Label(false), Icu: true)]);
            return 0;
        }
        var preset = PresetOf(o);
        options = options with { AllWeights = AtuCommand.AllWeightsOf(preset.AllWeights), PromptBos = preset.PromptLayout };
        var result = Train(artifact, o.Weights, dataset, target, preset, o.Out, o.Resume, evaluate: o is not UnlearnOptions { NoEval: true }, device);
        if (result.Stages.Count > 0) AnsiConsole.Write(AtuCommand.StageTableView(result.Stages));
        if (report)
        {
            var label = method.Label(preset.Lora);
            AtuCommand.WriteReports(o.Out, artifact, device, data, options,
                [new("before", o.Weights, null), .. result.Named.OrderByDescending(kv => kv.Key).Select(kv => new AtuCommand.ReportModel($"{label} {ThresholdCheckpoints.NameOf(kv.Key)}", Path.Combine(kv.Value, RunHarness.ModelFile), label)),
                    new($"{label} final", Path.Combine(result.Final!, RunHarness.ModelFile), label)]);
        }
        return 0;
    }

    /// <summary>ICU trains nothing, so no preset records the method; this record does (`atu report` reads it).</summary>
    public static void WriteIcuRecord(string folder)
    {
        Directory.CreateDirectory(folder);
        AtomicFile.WriteAllBytes(Path.Combine(folder, MethodTable.MethodRecordFile), System.Text.Encoding.UTF8.GetBytes($$"""{ "method": "{{InContextUnlearning.Id}}" }"""));
    }

    /// <summary>A trained baseline's run on one target in <paramref name="folder"/> (`atu unlearn|run --method M` and
    /// `atu toy`), with a progress bar: the forget and neighbour probes (and the preset's stage tasks) scored after every
    /// evaluation point when <paramref name="evaluate"/>, naming the threshold checkpoints; a finished or interrupted run
    /// resumes when <paramref name="resume"/>.</summary>
    public static UnlearningRunResult Train(ArtifactModel artifact, string? weights, RwkuDataset dataset, RwkuTarget target, MethodPreset preset, string folder,
        bool resume, bool evaluate, ExecutionDevice device)
    {
        var tokenizer = RwkuScoring.ChatTokenizer(artifact);
        var examples = preset.TrainedMethod.Examples(preset, new RwkuTargetTexts(dataset, target), new ExampleTokenizer(tokenizer, preset.Cutoff, target.Number));
        var methodInputs = new MethodInputs(artifact.Config, weights ?? artifact.PathOf(ArtifactExporter.WeightsFile), examples, target.Name, tokenizer.EosId ?? 0);
        AnsiConsole.MarkupLineInterpolated($"{preset.Method}{(preset.Lora ? " (LoRA)" : "")} on [bold]{target.Name}[/] (target {target.Number}): {examples.Count} examples, preset {preset.Name}, on {device.Description}");
        var evaluateStage = AtuCommand.StageEvaluator(artifact, device, weights, dataset, target, preset.StageTasks, AtuCommand.AllWeightsOf(preset.AllWeights), preset.PromptLayout);
        UnlearningRunResult result = null!;
        AtuCommand.WithProgress(preset.Method, 1, (task, log) =>
        {
            using var run = new MethodRun(preset, methodInputs, new UnlearningRunOptions
            {
                Device = device,
                Folder = folder,
                Resume = resume,
                Evaluate = evaluate ? evaluateStage : null,
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
        return result;
    }
}
