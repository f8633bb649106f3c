using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Unlearning;

namespace AlignThenUnlearn.Jobs.Unlearning;

/// <summary>What every staged run (each method) scores at its evaluation points.</summary>
public static class StageEvaluation
{
    /// <summary>The evaluation after each stage of a staged run (every method): the target's forget and neighbour probes and
    /// the preset's stage tasks, on the given weights (null: <paramref name="startWeights"/>, the model the run started
    /// from). The tasks' files are loaded here, before training, so that a missing one stops the run before it starts.</summary>
    public static Func<string?, ProbeScores> Evaluator(ArtifactModel artifact, ExecutionDevice device, string? startWeights, RwkuDataset dataset,
        RwkuTarget target, string[]? stageTaskNames, AllWeights? allWeights, PromptBos promptBos = PromptBos.Template)
    {
        var format = RwkuScoring.ChatTokenizer(artifact).ChatFormat;
        var stageTasks = stageTaskNames is { Length: > 0 } asked ? RwkuTaskNames.Parse(string.Join(",", asked)) : RwkuTasks.None;
        var options = new RwkuEvaluationOptions { ChatFormat = format, Mmlu = stageTasks.HasFlag(RwkuTasks.Mmlu), AllWeights = allWeights, PromptBos = promptBos };
        var data = dataset.Load(target, includeMmlu: options.Mmlu);
        var utility = dataset.LoadUtility(target, stageTasks);
        var utilityOptions = new RwkuUtilityOptions { ChatFormat = format, Tasks = stageTasks & RwkuTasks.Utility };
        return weights => StageScores(RwkuScoring.EvaluateSuite(artifact, device, weights ?? startWeights, [data], options, [utility], utilityOptions, "stage"), stageTasks);
    }

    /// <summary>The columns of RWKU's Table 2 (<see cref="RwkuSuiteReports.Columns"/>) that each of the preset's stage_tasks fills.</summary>
    static readonly (RwkuTasks Task, string Column)[] StageTaskColumns =
    [
        (RwkuTasks.Mia, "MIA FM ↑"), (RwkuTasks.Mia, "MIA RM ↓"), (RwkuTasks.Mmlu, "Gen ↑"), (RwkuTasks.Bbh, "Rea ↑"),
        (RwkuTasks.TruthfulQa, "Tru ↑"), (RwkuTasks.TriviaQa, "Fac ↑"), (RwkuTasks.Fluency, "Flu ↑"),
    ];

    /// <summary>A stage's forget and neighbour averages and, for the stage tasks asked, their figures as results.md shows
    /// them (x 100, named by the column without its arrow; a figure the data cannot give is left out).</summary>
    static ProbeScores StageScores(SuiteEvaluation suite, RwkuTasks stageTasks)
    {
        var mean = suite.Probes.Summary.Mean;
        var row = RwkuSuiteReports.Row(mean, suite.UtilityMean);
        var figures = RwkuSuiteReports.Columns.Select((column, i) => (Column: column, Value: row[i]))
            .Where(c => c.Value is not null && StageTaskColumns.Any(s => s.Column == c.Column && stageTasks.HasFlag(s.Task)))
            .ToDictionary(c => c.Column.TrimEnd('↑', '↓', ' '), c => 100 * c.Value!.Value);
        var parts = new (string Key, double? Value)[]
        {
            (Trajectory.ForgetFB, mean.ForgetFB), (Trajectory.ForgetQA, mean.ForgetQA), (Trajectory.ForgetAA, mean.ForgetAA),
            (Trajectory.NeighbourFB, mean.NeighborFB), (Trajectory.NeighbourQA, mean.NeighborQA),
        };
        return new ProbeScores(100 * (mean.ForgetAll ?? double.NaN), 100 * (mean.NeighborAll ?? double.NaN), stageTasks == RwkuTasks.None ? null : figures,
            parts.Where(p => p.Value is not null).ToDictionary(p => p.Key, p => 100 * p.Value!.Value));
    }

    /// <summary>The preset's weights of the "All" averages (null: the probe counts of the evaluated set).</summary>
    public static AllWeights? AllWeightsOf(AtuPreset preset) => AllWeightsOf(preset.AllWeights);

    public static AllWeights? AllWeightsOf(AllWeightSettings? weights) => weights is { } w
        ? new AllWeights(w.Forget[0], w.Forget[1], w.Forget[2], w.Neighbour[0], w.Neighbour[1]) : null;
}
