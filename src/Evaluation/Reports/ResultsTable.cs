using System.Globalization;
using System.Text;

namespace AlignThenUnlearn.Evaluation;

/// <summary>Markdown tables laid out like the paper's Table 1: forget set FB/QA/AA/All (lower is better),
/// neighbour set FB/QA/All and MMLU (higher is better), in percent with one decimal; one row per run.</summary>
public static class ResultsTable
{
    public static readonly IReadOnlyList<string> Columns =
        ["Forget FB ↓", "Forget QA ↓", "Forget AA ↓", "Forget All ↓", "Neighbor FB ↑", "Neighbor QA ↑", "Neighbor All ↑", "MMLU ↑"];

    /// <summary>A table whose rows are labelled scores (runs, checkpoints or targets).</summary>
    public static string Markdown(string firstColumn, IEnumerable<(string Label, RwkuScores Scores)> rows) =>
        Markdown(firstColumn, [], rows.Select(r => (r.Label, r.Scores, (IReadOnlyList<double?>)[])));

    /// <summary>The same table with <paramref name="extraColumns"/> after MMLU, each row's extra values (fractions, shown
    /// x 100 like the others) in their order.</summary>
    public static string Markdown(string firstColumn, IReadOnlyList<string> extraColumns, IEnumerable<(string Label, RwkuScores Scores, IReadOnlyList<double?> Extra)> rows)
    {
        var text = new StringBuilder();
        text.Append("| ").Append(Escape(firstColumn)).Append(" | ").AppendJoin(" | ", Columns.Concat(extraColumns)).Append(" |\n");
        text.Append("| :-- |").Append(string.Concat(Enumerable.Repeat(" --: |", Columns.Count + extraColumns.Count))).Append('\n');
        foreach (var (label, scores, extra) in rows)
        {
            if (extra.Count != extraColumns.Count) throw new ArgumentException($"row '{label}' has {extra.Count} extra values for {extraColumns.Count} extra columns");
            double?[] values = [scores.ForgetFB, scores.ForgetQA, scores.ForgetAA, scores.ForgetAll,
                scores.NeighborFB, scores.NeighborQA, scores.NeighborAll, scores.Mmlu, .. extra];
            text.Append("| ").Append(Escape(label)).Append(" | ").AppendJoin(" | ", values.Select(Percent)).Append(" |\n");
        }
        return text.ToString();
    }

    /// <summary>Several runs in one table, each row the run's mean over its targets.</summary>
    public static string Runs(IEnumerable<RunSummary> runs) => Markdown("Run", runs.Select(r => (r.Name, r.Mean)));

    /// <summary>Table 1 across methods: a row per checkpoint, the Method cell naming method, F/L and checkpoint.</summary>
    public static string Methods(IEnumerable<RunSummary> rows) => Markdown("Method", rows.Select(r => (r.Name, r.Mean)));

    /// <summary>A run's report: its mean row, then one row per target.</summary>
    public static string Run(RunSummary run)
    {
        var text = new StringBuilder();
        text.Append($"# RWKU: {run.Name}\n\n");
        text.Append($"Mean over {run.Targets.Count} target{(run.Targets.Count == 1 ? "" : "s")}; ROUGE-L recall and MMLU accuracy in percent.\n\n");
        text.Append(Runs([run]));
        text.Append("\n## Per target\n\n");
        text.Append(Markdown("Target", run.Targets.Select(t => ($"{t.Number} {t.Name}", t.Scores))));
        return text.ToString();
    }

    /// <summary>Forget AA per RWKU attack type (<see cref="Attacks.AdversarialTypes"/>) as a section of a run's report;
    /// empty when the run has no AA probes.</summary>
    public static string AdversarialByType(IReadOnlyDictionary<string, double> byType)
    {
        if (byType.Count == 0) return "";
        var text = new StringBuilder("\n## Forget AA by attack type\n\n");
        text.Append("Per target the mean recall of its level-3 probes of the type, then the mean over the targets having it.\n\n");
        text.Append("| Attack type | AA ↓ |\n| :-- | --: |\n");
        foreach (var (type, score) in byType) text.Append("| ").Append(Escape(type)).Append(" | ").Append(Percent(score)).Append(" |\n");
        return text.ToString();
    }

    public static string Percent(double? value) => value is double v ? (100 * v).ToString("F1", CultureInfo.InvariantCulture) : "–";

    public static string Escape(string cell) => cell.Replace("|", "\\|").ReplaceLineEndings(" ");
}
