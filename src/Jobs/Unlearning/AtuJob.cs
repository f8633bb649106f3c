using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.Jobs.Reports;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Unlearning;

namespace AlignThenUnlearn.Jobs.Unlearning;

/// <summary>What one Align-then-Unlearn run needs, whoever starts it (`atu align`, `atu unlearn`, `atu run`, `atu toy`).
/// <see cref="AlignTargets"/> names the alignment corpus's other targets (null: the preset's seeded draw).</summary>
public sealed record AtuJob(string Artifacts, string? Weights, string Rwku, int Target, AtuPreset Preset, string Out, string Cache,
    bool Resume, bool AlignmentOnly, bool ScoreStages, bool Report, IReadOnlyList<int>? AlignTargets = null, HiddenStateCacheSettings? HiddenStates = null)
{
    /// <summary>Runs the job: window embeddings (cached), the staged run, and the final report.</summary>
    public UnlearningRunResult Run(ExecutionDevice device, IJobReporter reporter)
    {
        var artifact = ArtifactModel.Open(Artifacts);
        var tokenizer = artifact.Tokenizer ?? throw new InvalidOperationException($"'{Artifacts}' has no tokenizer files; the corpora are text");
        var encoderFolder = Path.Combine(Artifacts, EncoderInstaller.Folder);
        if (!Directory.Exists(encoderFolder))
            throw new InvalidOperationException($"'{Artifacts}' has no sentence encoder; add one with `atu export --encoder minilm --out {Artifacts}`");
        var dataset = RwkuDataset.Open(Rwku);
        var target = dataset.Target(Target);
        var data = dataset.Load(target, includeMmlu: Report);
        var evaluateStage = StageEvaluation.Evaluator(artifact, device, Weights, dataset, target, Preset.StageTasks, StageEvaluation.AllWeightsOf(Preset));   // before training: a missing file stops the run before it starts
        var others = AlignTargets is { } chosen ? ChosenTargets(dataset, target, chosen) : OtherTargets(dataset, target, Preset);
        var forgetTexts = dataset.ForgetTexts(target, Preset.ForgetCorpus).ToList();
        var alignmentTexts = forgetTexts.Concat(others.SelectMany(t => dataset.ForgetTexts(t, Preset.ForgetCorpus))).ToList();
        var tokenizerFiles = ArtifactExporter.TokenizerFiles.Select(artifact.PathOf).Where(File.Exists).ToList();
        reporter.Info($"unlearning {target.Name} (target {target.Number}) from {Artifacts} on {device.Description}; alignment corpus: {(others.Count == 0 ? "the target's" : "the target's and " + string.Join(", ", others.Select(t => t.Name)) + "'s")}");

        using var encoder = SentenceEncoder.Open(encoderFolder, device);
        CorpusWindows forget = null!, alignment = null!;
        reporter.Track("window embeddings", 1, (task, _) =>
        {
            alignment = WindowEmbeddingCache.Compute(alignmentTexts, tokenizer, encoder, Preset.WindowTokens, Cache, tokenizerFiles, f => task.Report(new WorkProgress(f)));
            forget = alignment.First(forgetTexts.Count);   // the forget corpus leads the alignment corpus: no second encoding
        });
        var inputs = new AtuInputs(artifact.Config, Weights ?? artifact.PathOf(ArtifactExporter.WeightsFile), alignment, forget,
            encoder.Embed([target.Name])[0], target.Name, tokenizer.EosId, EncoderName(artifact),
            string.Join(", ", others.Select(t => $"{t.Number} ({t.Name})")) is { Length: > 0 } names ? names : null);

        UnlearningRunResult result = null!;
        long total = Preset.Alignment.Steps + Preset.Stages.Sum(s => (long)s.UnlearnSteps + s.RealignSteps);
        reporter.Track("Align-then-Unlearn", total, (task, log) =>
        {
            using var run = new AtuRun(Preset, inputs, new UnlearningRunOptions
            {
                Device = device,
                Folder = Out,
                Resume = Resume,
                Evaluate = ScoreStages ? evaluateStage : null,
                Progress = p =>
                {
                    var tau = p.Phase.StartsWith("unlearn", StringComparison.Ordinal) ? $" tau {p.Tau:0.00}" : "";
                    task.Report(new WorkProgress(total - p.StepsLeftInRun, null, $"{p.Phase} step {p.Step}/{p.Steps}{tau} loss {p.Loss:0.0000} cos {p.MeanCosine:0.000} {p.StepsPerSecond:0.0} steps/s"));
                },
                Log = line => log.Report(new JobLine(line)),
            }, new AtuRunOptions { AlignmentOnly = AlignmentOnly, HiddenStates = HiddenStates ?? new HiddenStateCacheSettings { Folder = Cache } });
            result = run.Run();
        });
        if (Report && result.Final is not null) WriteReport(artifact, device, data, result, reporter);
        return result;
    }

    /// <summary>The encoder's name as installed (`atu export --encoder`): all-MiniLM-L6-v2 for the embedded one, else the
    /// name of the folder it came from (e.g. all-mpnet-base-v2); null when the manifest does not say.</summary>
    static string? EncoderName(ArtifactModel artifact)
    {
        var source = artifact.Manifest.Extra?["encoder"]?["source"]?.GetValue<string>();
        return source is null ? null : source == EncoderInstaller.MiniLm ? "all-MiniLM-L6-v2" : Path.GetFileName(Path.TrimEndingDirectorySeparator(source));
    }

    /// <summary>The targets named by --align-targets, refusing the target itself and numbers the dataset lacks.</summary>
    static List<RwkuTarget> ChosenTargets(RwkuDataset dataset, RwkuTarget target, IReadOnlyList<int> numbers)
    {
        if (numbers.Contains(target.Number)) throw new ArgumentException($"--align-targets names the target {target.Number} itself; its corpus is in the alignment corpus already");
        if (numbers.Distinct().Count() != numbers.Count) throw new ArgumentException($"--align-targets {string.Join(",", numbers)} names a target twice");
        return [.. numbers.Select(dataset.Target)];
    }

    /// <summary>The targets whose corpora join the target's for alignment: the preset's number of them, drawn by its seed.</summary>
    static List<RwkuTarget> OtherTargets(RwkuDataset dataset, RwkuTarget target, AtuPreset preset) =>
        [.. dataset.Draw(preset.AlignmentExtraTargets, preset.Seed, except: target).OrderBy(t => t.Number)];

    /// <summary>RWKU with MMLU on the model before, at each named checkpoint and at the end; one table and the plot.</summary>
    void WriteReport(ArtifactModel artifact, ExecutionDevice device, RwkuTargetData data, UnlearningRunResult result, IJobReporter reporter)
    {
        var tokenizer = RwkuScoring.ChatTokenizer(artifact);
        var options = new RwkuEvaluationOptions { ChatFormat = tokenizer.ChatFormat, AllWeights = StageEvaluation.AllWeightsOf(Preset) };
        var models = new List<RunReports.Model> { new("before", Weights, null) };
        models.AddRange(result.Named.OrderByDescending(kv => kv.Key).Select(kv => new RunReports.Model($"ATU {ThresholdCheckpoints.NameOf(kv.Key)}", Path.Combine(kv.Value, RunHarness.ModelFile), "ATU")));
        models.Add(new("ATU final", Path.Combine(result.Final!, RunHarness.ModelFile), "ATU"));
        RunReports.Write(Out, artifact, device, data, options, models, reporter);
    }
}
