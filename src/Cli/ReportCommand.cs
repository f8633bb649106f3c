using System.Globalization;
using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.Jobs.Reports;
using CommandLine;
using Spectre.Console;

namespace AlignThenUnlearn.Cli;

[Verb("report", HelpText = "Combine run folders of `atu run` (every method and checkpoint) and `atu eval` results into one Table 1 (combined.md, a Method column naming method, F/L and checkpoint) and the forget-vs-neighbour plot with one curve per method (forget_vs_neighbor.png).")]
public sealed class ReportOptions
{
    [Option("runs", HelpText = "Run folders of `atu run [--method M]` (their checkpoints, the method read from their preset.json or method.json), output folders of `atu eval` or results.json files, in the order of the rows.")]
    public IEnumerable<string> Runs { get; set; } = [];

    [Option("attacks", HelpText = "Output folders of `atu attack` (or their attack.json files): the robustness table (robustness.md; rows method (--series) x checkpoint (the attacked weights), columns the attacks) and its bar chart (robustness.png).")]
    public IEnumerable<string> Attacks { get; set; } = [];

    [Option("out", Required = true, HelpText = "Folder for combined.md and forget_vs_neighbor.png.")]
    public string Out { get; set; } = "";
}

public static class ReportCommand
{
    public static int Run(ReportOptions o)
    {
        new ReportJob([.. o.Runs], [.. o.Attacks], o.Out).Run(new ConsoleReporter());
        return 0;
    }

    /// <summary>The runs' mean rows as a console table, columns as in <see cref="ResultsTable"/>.</summary>
    public static Table Table(IEnumerable<RunSummary> runs, string firstColumn = "Run")
    {
        var table = new Table().AddColumn(firstColumn);
        foreach (var column in ResultsTable.Columns) table.AddColumn(new TableColumn(column).RightAligned());
        foreach (var run in runs)
        {
            var s = run.Mean;
            double?[] values = [s.ForgetFB, s.ForgetQA, s.ForgetAA, s.ForgetAll, s.NeighborFB, s.NeighborQA, s.NeighborAll, s.Mmlu];
            table.AddRow([Markup.Escape(run.Name), .. values.Select(v => v is double x ? (100 * x).ToString("F1", CultureInfo.InvariantCulture) : "–")]);
        }
        return table;
    }
}
