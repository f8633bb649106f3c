using System.Globalization;
using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.Jobs.Reports;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Unlearning;

namespace AlignThenUnlearn.Jobs.Unlearning;

/// <summary>A method's run other than Align-then-Unlearn's on one target (`atu unlearn|run --method M`, `atu toy`): a
/// trained method in the run harness (<see cref="MethodRun"/>), or ICU (no training: RWKU scored with its unlearning
/// prompt), with the run's report when asked.</summary>
public sealed record MethodJob(string Artifacts, string? Weights, string Rwku, int Target, UnlearningMethod Method, MethodPreset? Preset, string Out,
    bool Resume, bool Evaluate, bool Report)
{
    /// <summary>Runs the job; returns the trained run's result (null for ICU, which trains nothing).</summary>
    public UnlearningRunResult? Run(ExecutionDevice device, IJobReporter reporter)
    {
        var artifact = ArtifactModel.Open(Artifacts);
        var tokenizer = RwkuScoring.ChatTokenizer(artifact);
        var dataset = RwkuDataset.Open(Rwku);
        var target = dataset.Target(Target);
        var data = dataset.Load(target, includeMmlu: Report);
        var options = new RwkuEvaluationOptions { ChatFormat = tokenizer.ChatFormat };
        if (Method is PromptingMethod)
        {
            // No training: the model as it is, asked with RWKU's unlearning prompt before every question.
            WriteIcuRecord(Out);
            RunReports.Write(Out, artifact, device, data with { Mmlu = Report ? data.Mmlu : [] }, options,
                [.. (Report ? new[] { new RunReports.Model("before", Weights, null) } : []), new(Method.Label(false), Weights, Method.Label(false), Icu: true)], reporter);
            return null;
        }
        var preset = Preset ?? throw new ArgumentException($"{Method.Name} trains with a preset");
        options = options with { AllWeights = StageEvaluation.AllWeightsOf(preset.AllWeights), PromptBos = preset.PromptLayout };
        var result = Train(artifact, Weights, dataset, target, preset, Out, Resume, Evaluate, device, reporter);
        if (Report)
        {
            var label = Method.Label(preset.Lora);
            RunReports.Write(Out, artifact, device, data, options,
                [new("before", Weights, null), .. result.Named.OrderByDescending(kv => kv.Key).Select(kv => new RunReports.Model($"{label} {ThresholdCheckpoints.NameOf(kv.Key)}", Path.Combine(kv.Value, RunHarness.ModelFile), label)),
                    new($"{label} final", Path.Combine(result.Final!, RunHarness.ModelFile), label)], reporter);
        }
        return result;
    }

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

    /// <summary>ICU trains nothing, so no preset records the method; this record does (`atu report` reads it).</summary>
    public static void WriteIcuRecord(string folder)
    {
        Directory.CreateDirectory(folder);
        AtomicFile.WriteAllBytes(Path.Combine(folder, MethodTable.MethodRecordFile), System.Text.Encoding.UTF8.GetBytes($$"""{ "method": "{{InContextUnlearning.Id}}" }"""));
    }

    /// <summary>A trained baseline's run on one target in <paramref name="folder"/> (`atu unlearn|run --method M` and
    /// `atu toy`), its progress reported: the forget and neighbour probes (and the preset's stage tasks) scored after every
    /// evaluation point when <paramref name="evaluate"/>, naming the threshold checkpoints; a finished or interrupted run
    /// resumes when <paramref name="resume"/>.</summary>
    public static UnlearningRunResult Train(ArtifactModel artifact, string? weights, RwkuDataset dataset, RwkuTarget target, MethodPreset preset, string folder,
        bool resume, bool evaluate, ExecutionDevice device, IJobReporter reporter)
    {
        var tokenizer = RwkuScoring.ChatTokenizer(artifact);
        var examples = preset.TrainedMethod.Examples(preset, new RwkuTargetTexts(dataset, target), new ExampleTokenizer(tokenizer, preset.Cutoff, target.Number));
        var methodInputs = new MethodInputs(artifact.Config, weights ?? artifact.PathOf(ArtifactExporter.WeightsFile), examples, target.Name, tokenizer.EosId ?? 0);
        reporter.Info($"{preset.Method}{(preset.Lora ? " (LoRA)" : "")} on {target.Name} (target {target.Number}): {examples.Count} examples, preset {preset.Name}, on {device.Description}");
        var evaluateStage = StageEvaluation.Evaluator(artifact, device, weights, dataset, target, preset.StageTasks, StageEvaluation.AllWeightsOf(preset.AllWeights), preset.PromptLayout);
        UnlearningRunResult result = null!;
        reporter.Track(preset.Method, 1, (task, log) =>
        {
            using var run = new MethodRun(preset, methodInputs, new UnlearningRunOptions
            {
                Device = device,
                Folder = folder,
                Resume = resume,
                Evaluate = evaluate ? evaluateStage : null,
                Progress = p => task.Report(new WorkProgress(p.Step, Math.Max(p.Steps, 1),
                    string.Create(CultureInfo.InvariantCulture, $"{p.Phase} step {p.Step}/{p.Steps} loss {p.Loss:0.0000} {p.StepsPerSecond:0.0} steps/s"))),
                Log = line => log.Report(new JobLine(line)),
            });
            result = run.Run();
        });
        return result;
    }
}
