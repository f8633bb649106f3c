namespace AlignThenUnlearn.Evaluation;

/// <summary>The parts of RWKU's evaluation (<c>atu eval --suite rwku --tasks ...</c>).</summary>
[Flags]
public enum RwkuTasks
{
    None = 0,
    Forget = 1,
    Neighbor = 2,
    Mmlu = 4,
    Bbh = 8,
    TruthfulQa = 16,
    TriviaQa = 32,
    Fluency = 64,
    Mia = 128,
    All = Forget | Neighbor | Mmlu | Bbh | TruthfulQa | TriviaQa | Fluency | Mia,
    /// <summary>The tasks scored by the utility evaluator (the others by <see cref="RwkuEvaluator"/>).</summary>
    Utility = Bbh | TruthfulQa | TriviaQa | Fluency | Mia,
}

public static class RwkuTaskNames
{
    /// <summary>The names <c>--tasks</c> takes, in RWKU's order.</summary>
    public static readonly IReadOnlyList<(string Name, RwkuTasks Task)> Names =
    [
        ("forget", RwkuTasks.Forget), ("neighbor", RwkuTasks.Neighbor), ("mmlu", RwkuTasks.Mmlu), ("bbh", RwkuTasks.Bbh),
        ("truthfulqa", RwkuTasks.TruthfulQa), ("triviaqa", RwkuTasks.TriviaQa), ("fluency", RwkuTasks.Fluency), ("mia", RwkuTasks.Mia),
    ];

    /// <summary>A comma-separated list such as <c>forget,bbh,mia</c> (or <c>all</c>).</summary>
    public static RwkuTasks Parse(string list)
    {
        var tasks = RwkuTasks.None;
        foreach (var raw in list.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            var name = raw.ToLowerInvariant();
            if (name == "all") { tasks |= RwkuTasks.All; continue; }
            if (name == "neighbour") name = "neighbor";
            var match = Names.FirstOrDefault(n => n.Name == name);
            if (match.Name is null) throw new ArgumentException($"--tasks: unknown task '{raw}'; expected a comma-separated list of {string.Join(", ", Names.Select(n => n.Name))} or all");
            tasks |= match.Task;
        }
        if (tasks == RwkuTasks.None) throw new ArgumentException("--tasks: no task named; expected e.g. forget,neighbor,mmlu");
        return tasks;
    }

    public static string Format(RwkuTasks tasks) => string.Join(",", Names.Where(n => tasks.HasFlag(n.Task)).Select(n => n.Name));
}
