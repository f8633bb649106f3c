using System.Text;
using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.Models;

namespace AlignThenUnlearn.Jobs.Reports;

/// <summary>`atu report`: run folders and results combined into one Table 1 (combined.md) with the forget-vs-neighbour plot,
/// and `atu attack` outputs into the robustness table (robustness.md) with its bar chart, all written to <see cref="Out"/>.</summary>
public sealed record ReportJob(IReadOnlyList<string> Runs, IReadOnlyList<string> Attacks, string Out)
{
    public void Run(IJobReporter reporter)
    {
        if (Runs.Count == 0 && Attacks.Count == 0) throw new ArgumentException("atu report needs --runs (run folders of `atu run` or results of `atu eval`), --attacks (reports of `atu attack`) or both");
        var robustness = Attacks.Count > 0 ? RobustnessTable.Read(Attacks) : null;   // read before anything is written
        if (Runs.Count > 0)
        {
            reporter.Scored(RwkuReports.CombineMethods(Runs, RunReports.ReportFolder, Out));
            reporter.Done($"wrote {RwkuReports.CombinedTableFile} and {TradeoffPlot.FileName} to {Out}");
        }
        if (robustness is not null)
        {
            Directory.CreateDirectory(Out);
            var markdown = robustness.Markdown();
            AtomicFile.WriteAllBytes(Path.Combine(Out, RobustnessTable.TableFile), Encoding.UTF8.GetBytes(markdown));
            AtomicFile.WriteAllBytes(Path.Combine(Out, RobustnessTable.PlotFile), robustness.RenderPng());
            reporter.Info(markdown);
            reporter.Done($"wrote {RobustnessTable.TableFile} and {RobustnessTable.PlotFile} to {Out}");
        }
    }
}
