using System.Globalization;
using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.Models;
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
        if (!o.Runs.Any() && !o.Attacks.Any()) throw new ArgumentException("atu report needs --runs (run folders of `atu run` or results of `atu eval`), --attacks (reports of `atu attack`) or both");
        var robustness = o.Attacks.Any() ? RobustnessTable.Read(o.Attacks) : null;   // read before anything is written
        if (o.Runs.Any())
        {
            var runs = RwkuReports.CombineMethods(o.Runs.ToList(), AtuCommand.ReportFolder, o.Out);
            AnsiConsole.Write(Table(runs, "Method"));
            AnsiConsole.MarkupLineInterpolated($"[green]wrote[/] {RwkuReports.CombinedTableFile} and {TradeoffPlot.FileName} to {o.Out}");
        }
        if (robustness is not null)
        {
            Directory.CreateDirectory(o.Out);
            var markdown = robustness.Markdown();
            AtomicFile.WriteAllBytes(Path.Combine(o.Out, RobustnessTable.TableFile), System.Text.Encoding.UTF8.GetBytes(markdown));
            AtomicFile.WriteAllBytes(Path.Combine(o.Out, RobustnessTable.PlotFile), robustness.RenderPng());
            AnsiConsole.WriteLine(markdown);
            AnsiConsole.MarkupLineInterpolated($"[green]wrote[/] {RobustnessTable.TableFile} and {RobustnessTable.PlotFile} to {o.Out}");
        }
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
