using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.Runtime;

namespace AlignThenUnlearn.Jobs.Evaluation;

/// <summary>`atu eval`: one model (an artifact folder with optional weights, or a shipped folder) scored on RWKU targets,
/// its reports written to <see cref="Out"/>: the probes (results.json, results.md, probes.jsonl) or RWKU's whole suite
/// (utility.json too, results.md in Table 2's layout).</summary>
public sealed record EvalJob(IModelFolder Model, string? Weights, string Name, string? Series, string Out)
{
    /// <summary>The probes of <paramref name="targets"/>.</summary>
    public RunEvaluation Probes(IReadOnlyList<RwkuTargetData> targets, RwkuEvaluationOptions options, ExecutionDevice device, IJobReporter reporter)
    {
        RunEvaluation run = null!;
        reporter.Track($"RWKU on {device.Description}", 1, (task, _) =>
            run = RwkuScoring.Evaluate(Model, device, Weights, targets, options, Name, Series, Progress(task, "")));
        RwkuReports.WriteRun(Out, run);
        reporter.Scored([run.Summary]);
        reporter.Done($"wrote {RwkuReports.ResultsFile}, {RwkuReports.TableFile}, {RwkuReports.ProbesFile} to {Out} ({run.Summary.Targets.Count} targets)");
        return run;
    }

    /// <summary>RWKU's suite: the probes of <paramref name="targets"/>, then the utility and MIA tasks of <paramref name="utility"/>.</summary>
    public SuiteEvaluation Suite(IReadOnlyList<RwkuTargetData> targets, RwkuEvaluationOptions options, IReadOnlyList<RwkuUtilityData> utility,
        RwkuUtilityOptions utilityOptions, RwkuTasks tasks, ExecutionDevice device, IJobReporter reporter)
    {
        SuiteEvaluation run = null!;
        reporter.Track($"RWKU suite on {device.Description}", 1, (task, _) =>
            run = RwkuScoring.EvaluateSuite(Model, device, Weights, targets, options, utility, utilityOptions, Name, Series,
                Progress(task, "probes: "), Progress(task, "utility: ")));
        RwkuSuiteReports.Write(Out, run);
        reporter.Info(RwkuSuiteReports.Table(run));
        reporter.Done($"wrote {RwkuReports.ResultsFile}, {RwkuSuiteReports.UtilityFile}, {RwkuReports.TableFile}, {RwkuReports.ProbesFile} to {Out} ({targets.Count} targets; {RwkuTaskNames.Format(tasks)})");
        return run;
    }

    static Callback<EvaluationProgress> Progress(IProgress<WorkProgress> task, string what) =>
        new(p => task.Report(new WorkProgress(p.Done, p.Total, $"{what}target {p.Target.Number} {p.Target.Name}")));
}
