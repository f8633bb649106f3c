using System.Text;
using AlignThenUnlearn.Evaluation.Comparison;
using AlignThenUnlearn.Models;

namespace AlignThenUnlearn.ToyWorld;

/// <summary>`atu toy --seeds`: each world's run in ROOT/seed-N/, and the pooled comparison in ROOT/report/.</summary>
public static class ToyPooledReport
{
    public const string ReportFolderName = "report";

    public static string SeedFolder(string root, int seed) => Path.Combine(root, $"seed-{seed.ToString(System.Globalization.CultureInfo.InvariantCulture)}");

    /// <summary>Reads every world's trajectories.json and writes the pooled table.md and forget_vs_neighbor.png; returns the table's path.</summary>
    public static string Write(string root, IReadOnlyList<int> seeds)
    {
        var runs = seeds.SelectMany(seed => ToyTrajectories.Read(Path.Combine(SeedFolder(root, seed), ReportFolderName, ToyTrajectories.FileName))).ToList();
        var report = Path.Combine(root, ReportFolderName);
        Directory.CreateDirectory(report);
        var table = Path.Combine(report, ToyReport.TableFile);
        AtomicFile.WriteAllBytes(table, Encoding.UTF8.GetBytes(ToyReport.PooledMarkdown(seeds, runs)));
        AtomicFile.WriteAllBytes(Path.Combine(report, EqualForgettingPlot.FileName), EqualForgettingPlot.RenderPng(runs));
        return table;
    }
}
