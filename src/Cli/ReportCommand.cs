using System.Globalization;
using AlignThenUnlearn.Evaluation;
using CommandLine;
using Spectre.Console;

namespace AlignThenUnlearn.Cli;

[Verb("report", HelpText = "Combine several `atu eval` runs into one table (combined.md, a row per run) and the forget-vs-neighbour plot (forget_vs_neighbor.png).")]
public sealed class ReportOptions
{
    [Option("runs", Required = true, Min = 1, HelpText = "Output folders of `atu eval` (or their results.json files), in the order of the rows.")]
    public IEnumerable<string> Runs { get; set; } = [];

    [Option("out", Required = true, HelpText = "Folder for combined.md and forget_vs_neighbor.png.")]
    public string Out { get; set; } = "";
}

public static class ReportCommand
{
    public static int Run(ReportOptions o)
    {
        var runs = RwkuReports.Combine(o.Runs.ToList(), o.Out);
        AnsiConsole.Write(Table(runs));
        AnsiConsole.MarkupLineInterpolated($"[green]wrote[/] {RwkuReports.CombinedTableFile} and {TradeoffPlot.FileName} to {o.Out}");
        return 0;
    }

    /// <summary>The runs' mean rows as a console table, columns as in <see cref="ResultsTable"/>.</summary>
    public static Table Table(IEnumerable<RunSummary> runs)
    {
        var table = new Table().AddColumn("Run");
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
