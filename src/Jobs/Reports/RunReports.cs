using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Runtime;

namespace AlignThenUnlearn.Jobs.Reports;

/// <summary>A run folder's report (`atu run`, a method's run with its report): RWKU on the model before and at each kept
/// checkpoint, each in its own folder under report/, then the combined table (combined.md) and the trade-off plot.</summary>
public static class RunReports
{
    public const string ReportFolder = "report";

    /// <summary>One model of a run's report: its row name, weights (null: the artifact's), series of the plot, and whether
    /// RWKU's unlearning prompt is put before every question (ICU).</summary>
    public sealed record Model(string Name, string? Weights, string? Series, bool Icu = false);

    /// <summary>RWKU on each model, one report folder each under the run's report folder, then the combined table and plot.</summary>
    public static IReadOnlyList<RunSummary> Write(string runFolder, ArtifactModel artifact, ExecutionDevice device, RwkuTargetData data, RwkuEvaluationOptions options,
        IReadOnlyList<Model> models, IJobReporter reporter)
    {
        var folders = new List<string>();
        reporter.Track("RWKU report", models.Count, (task, _) =>
        {
            foreach (var model in models)
            {
                var folder = Path.Combine(runFolder, ReportFolder, OutputPaths.Slug(model.Name));
                RwkuReports.WriteRun(folder, RwkuScoring.Evaluate(artifact, device, model.Weights, [data], options with { Icu = model.Icu }, model.Name, model.Series));
                folders.Add(folder);
                task.Report(new WorkProgress(folders.Count));
            }
        });
        var runs = RwkuReports.Combine(folders, Path.Combine(runFolder, ReportFolder));
        reporter.Scored(runs);
        reporter.Done($"wrote {Path.Combine(runFolder, ReportFolder, RwkuReports.CombinedTableFile)} and {TradeoffPlot.FileName}");
        return runs;
    }
}
