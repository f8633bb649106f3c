using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.Evaluation.Attacks;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Unlearning;

namespace AlignThenUnlearn.Jobs.Attacks;

/// <summary>One attack (<see cref="IAttack"/>) on one model, as `atu attack KIND` and the toy job's attacks run it: the
/// adapters merged in (when given), the attack, every scored run's reports (results.json, results.md, probes.jsonl) in its
/// folder below <see cref="Out"/>, then attack.json (<see cref="RobustnessTable.ReportFile"/>) last, so that a folder
/// holding it is complete. Full weight files are staged beside <see cref="Out"/>, and what killed runs left there is
/// removed first.</summary>
public sealed record AttackJob
{
    public required ArtifactModel Artifact { get; init; }
    /// <summary>The attacked weights; null: the artifact's own.</summary>
    public string? Weights { get; init; }
    /// <summary>LoRA adapters merged into the weights before the attack.</summary>
    public string? Adapters { get; init; }
    public required RwkuDataset Dataset { get; init; }
    public required IReadOnlyList<RwkuTarget> Targets { get; init; }
    public required IReadOnlyList<RwkuTargetData> Data { get; init; }
    public required RwkuEvaluationOptions Options { get; init; }
    /// <summary>The attacked model's name in the reports, the attack's label included.</summary>
    public required string Name { get; init; }
    public string? Series { get; init; }
    public required string Out { get; init; }
    /// <summary>attack.json's keys of the caller after the attacked weights (the toy's "icu").</summary>
    public JsonObject? Extra { get; init; }
    /// <summary>The recovery of a scored run against the model before and after unlearning; null: none recorded.</summary>
    public Func<RunSummary, AttackRecovery>? Recovery { get; init; }

    /// <summary>The result of one scored run: its key suffix in attack.json, its evaluation and its AA per attack type.</summary>
    public sealed record ScoredRun(string Suffix, RunEvaluation Evaluation, IReadOnlyDictionary<string, double> AaByType);

    public IReadOnlyList<ScoredRun> Run(IAttack attack, ExecutionDevice device, IJobReporter reporter)
    {
        var staging = StagingFolder(Out, attack.Kind);
        try
        {
            var record = attack.Settings();
            record["weights"] = Weights ?? Artifact.PathOf(ArtifactExporter.WeightsFile);
            if (Adapters is not null) record["adapters"] = Adapters;
            foreach (var (key, value) in Extra ?? []) record[key] = value?.DeepClone();
            var context = new AttackContext
            {
                Artifact = Artifact, Device = device, Weights = Adapters is null ? Weights : Merged(device, staging, reporter), Dataset = Dataset,
                Targets = Targets, Data = Data, Options = Options, Name = Name, Series = Series, Staging = staging, Record = record, Reporter = reporter,
                Scorer = (weights, folder, name) => Score(device, weights, name, reporter),
            };
            var evaluations = attack.Score(context);
            var runs = new List<ScoredRun>();
            foreach (var ((suffix, folder), evaluation) in attack.Runs.Zip(evaluations, (r, e) => (r, e)))
            {
                RwkuReports.WriteRun(Path.Combine(Out, folder), evaluation);
                runs.Add(new ScoredRun(suffix, evaluation, AdversarialTypes.Of(evaluation)));
            }
            WriteReport(Out, record, attack.Label, Series, runs, Recovery, reporter);
            return runs;
        }
        finally { Directory.Delete(staging, recursive: true); }
    }

    RunEvaluation Score(ExecutionDevice device, string weights, string name, IJobReporter reporter)
    {
        RunEvaluation run = null!;
        reporter.Track($"RWKU: {name}", 1, (progress, _) =>
            run = RwkuScoring.Evaluate(Artifact, device, weights, Data, Options, name, Series,
                new Callback<EvaluationProgress>(p => progress.Report(new WorkProgress(p.Done, p.Total)))));
        return run;
    }

    /// <summary>The attacked weights with the LoRA adapters merged in, written to <paramref name="staging"/>.</summary>
    string Merged(ExecutionDevice device, string staging, IJobReporter reporter)
    {
        var source = Weights ?? Artifact.PathOf(ArtifactExporter.WeightsFile);
        if (!File.Exists(Adapters)) throw new FileNotFoundException($"--adapters '{Adapters}' does not exist (a LoRA run writes {MethodRun.AdaptersFile})", Adapters);
        var merged = Path.Combine(staging, "merged.safetensors");
        LoraAdapters.MergeFiles(device, Artifact.Config, source, Adapters, merged);
        reporter.Done($"merged the LoRA adapters of '{Adapters}' into '{source}'");
        return merged;
    }

    /// <summary>A fresh folder for an attack's full weight files beside <paramref name="output"/> (<see cref="StagingArea"/>:
    /// on the output's file system, never in the system's temporary folder), after removing what killed runs of the same
    /// output left there (a folder whose process is gone; one line each).</summary>
    public static string StagingFolder(string output, string kind)
    {
        var full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(output));
        var (parent, name) = (Path.GetDirectoryName(full)!, Path.GetFileName(full));
        Directory.CreateDirectory(parent);
        StagingArea.RemoveLeftovers(parent, name);
        return Directory.CreateDirectory(StagingArea.NewPath(parent, name, kind)).FullName;
    }

    /// <summary>Adds the figures to <paramref name="report"/> and writes it to <paramref name="folder"/>/attack.json (the
    /// recovery of each run when <paramref name="recovery"/> is given); says each figure.</summary>
    public static void WriteReport(string folder, JsonObject report, string label, string? series, IReadOnlyList<ScoredRun> runs,
        Func<RunSummary, AttackRecovery>? recovery, IJobReporter reporter)
    {
        report["label"] = label;   // the column of `atu report --attacks`; the series (method) and weights name its row
        if (series is not null) report["series"] = series;
        foreach (var (suffix, evaluation, aaByType) in runs)
        {
            var run = evaluation.Summary;
            report["forget_all" + suffix] = run.Mean.ForgetAll;
            report["neighbor_all" + suffix] = run.Mean.NeighborAll;
            report["aa_by_type" + suffix] = new JsonObject(aaByType.Select(t => KeyValuePair.Create(t.Key, (JsonNode?)t.Value)));
            if (aaByType.Count > 0)
                reporter.Info($"AA{suffix.Replace('_', ' ')} by attack type: {string.Join(", ", aaByType.Select(t => $"{t.Key} {Percent(t.Value)}"))}");
            var line = $"forget All{suffix.Replace('_', ' ')} after {label}: {Percent(run.Mean.ForgetAll)}";
            if (recovery?.Invoke(run) is AttackRecovery figures)
            {
                report["forget_all_before"] = figures.Before;
                report["forget_all_unlearned"] = figures.Unlearned;
                report["recovery" + suffix] = figures.Recovery;
                line += $" (before {Percent(figures.Before)}, unlearned {Percent(figures.Unlearned)}); recovery {(figures.Recovery is double r ? r.ToString("0.000") : "n/a: unlearning changed nothing")}";
            }
            reporter.Done(line);
        }
        AtomicFile.WriteAllBytes(Path.Combine(folder, RobustnessTable.ReportFile), Encoding.UTF8.GetBytes(
            report.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n"));
        reporter.Info($"wrote {RobustnessTable.ReportFile} to {folder}");
    }

    static string Percent(double? value) => value is double v ? (100 * v).ToString("0.0") : "n/a";
}
