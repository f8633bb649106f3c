using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Sweeps;
using AlignThenUnlearn.Tests.Support;

namespace AlignThenUnlearn.Tests.Sweeps;

/// <summary>`atu sweep report` over fabricated results.json files as `atu run` writes them (run/report/CHECKPOINT/):
/// the sweep's table must equal what the same runs give one by one through `atu report`'s code.</summary>
public sealed class SweepReportTests : IDisposable
{
    readonly TempFolder _temp = new();
    public void Dispose() => _temp.Dispose();

    static RwkuScores S(double ffb, double fqa, double faa, double nfb, double nqa, double mmlu) => new(ffb, fqa, faa, nfb, nqa, mmlu);

    /// <summary>Targets 1 and 2, layers 1 and 2: 4 cells, each with before, forget-below-50 and final (the cell of
    /// target 2, layer 2 never crossed 50).</summary>
    (string Sweep, SweepManifest Manifest) Fabricate()
    {
        File.WriteAllText(_temp.File("sweep.json"), """{ "artifacts": "/m", "rwku": "/r", "targets": "1-2", "presets": ["toy"], "layers": [1, 2] }""");
        var sweep = _temp.File("sweep");
        var manifest = SweepPlanner.Plan(_temp.File("sweep.json"), sweep, ["atu"]);
        foreach (var cell in manifest.Cells)
        {
            double t = cell.Target, l = cell.Layer!.Value;
            var checkpoints = new List<(string Folder, RwkuScores Scores)>
            {
                ("before", S(0.8, 0.7, 0.6, 0.9, 0.8, 0.5)),
                ("ATU-final", S(0.1 * t, 0.05 * l, 0.1, 0.5 + 0.1 * t, 0.6, 0.45)),
            };
            if (cell.Target == 1 || cell.Layer == 1) checkpoints.Insert(1, ("ATU-forget-below-50", S(0.2 * t, 0.1 * l, 0.3, 0.7, 0.7 - 0.1 * t, 0.48)));
            WriteResults(sweep, cell, checkpoints);
        }
        return (sweep, manifest);
    }

    /// <summary>A done cell's run/report/CHECKPOINT/results.json files, one target each.</summary>
    static void WriteResults(string sweep, SweepCell cell, IEnumerable<(string Folder, RwkuScores Scores)> checkpoints)
    {
        foreach (var (folder, scores) in checkpoints)
        {
            var summary = new RunSummary(folder.Replace('-', ' '), [new TargetScores(cell.Target, $"Person {cell.Target}", scores, new RwkuCounts(2, 2, 2, 2, 2, 4))], cell.Method);
            var path = Path.Combine(cell.Run, "report", folder);
            Directory.CreateDirectory(path);
            AtomicFile.WriteAllBytes(Path.Combine(path, RwkuReports.ResultsFile), ResultsJson.Serialize(summary));
        }
        AtomicFile.WriteAllBytes(Path.Combine(sweep, cell.Folder, CellState.DoneFile), "x"u8);
    }

    [Fact]
    public void Baseline_cells_are_found_under_the_report_folders_atu_run_method_writes_and_grouped_by_method()
    {
        // `atu run --method ga --lora` writes run/report/{before, GA-L-forget-below-50, GA-L-final} (MethodCommand's
        // names with spaces as '-' and no parentheses), icu run/report/{before, ICU}; ATU run/report/{before, ATU-final}.
        File.WriteAllText(_temp.File("methods.json"), """{ "artifacts": "/m", "rwku": "/r", "targets": "1-2", "methods": ["atu", "ga-lora", "icu"], "presets": ["toy"] }""");
        var sweep = _temp.File("methods");
        var manifest = SweepPlanner.Plan(_temp.File("methods.json"), sweep, ["atu"]);
        var before = S(0.8, 0.7, 0.6, 0.9, 0.8, 0.5);
        foreach (var cell in manifest.Cells)
        {
            double t = cell.Target;
            string[] folders = cell.Method switch
            {
                "atu" => ["before", "ATU-final"],
                "ga-lora" => ["before", "GA-L-forget-below-50", "GA-L-final"],
                _ => ["before", "ICU"],
            };
            WriteResults(sweep, cell, folders.Select(f => (f, f == "before" ? before : S(0.1 * t, 0.2, 0.3, 0.6, 0.7, 0.4))));
        }
        var runs = SweepReport.Write(sweep);
        Assert.Equal(
        [
            "atu toy before", "atu toy ATU-final",
            "ga-lora rwku-llama3-ga-lora before", "ga-lora rwku-llama3-ga-lora GA-L-forget-below-50", "ga-lora rwku-llama3-ga-lora GA-L-final",
            "icu before", "icu ICU",
        ], runs.Select(r => r.Name));
        // Every group holds both targets; GA-L final's forget FB is the mean of 0.1 x 1 and 0.1 x 2 = 0.15.
        Assert.All(runs, r => Assert.Equal([1, 2], r.Targets.Select(x => x.Number)));
        Assert.Equal(0.15, runs[4].Mean.ForgetFB!.Value, 12);
        Assert.True(File.Exists(Path.Combine(sweep, "report", "groups", "ga-lora_rwku-llama3-ga-lora_GA-L-final", RwkuReports.ResultsFile)));
        Assert.True(File.Exists(Path.Combine(sweep, "report", "groups", "icu_ICU", RwkuReports.ResultsFile)));
    }

    /// <summary>The numbers of a Markdown table row (after its label).</summary>
    static string Cells(string row) => row[(row.IndexOf(" | ", StringComparison.Ordinal) + 3)..];

    [Fact]
    public void A_sweeps_rows_are_the_means_over_targets_of_the_runs_reported_one_by_one()
    {
        var (sweep, manifest) = Fabricate();
        var runs = SweepReport.Write(sweep);
        Assert.Equal(
        [
            "atu toy L1 before", "atu toy L1 ATU-forget-below-50", "atu toy L1 ATU-final",
            "atu toy L2 before", "atu toy L2 ATU-forget-below-50", "atu toy L2 ATU-final",
        ], runs.Select(r => r.Name));

        // Layer 1, final: targets 1 and 2 have forget FB 0.1 and 0.2 -> mean 15.0 %; forget QA 0.05 both -> 5.0 %;
        // neighbour FB 0.6 and 0.7 -> 65.0 %.
        var final1 = runs[2].Mean;
        Assert.Equal((0.15, 0.05, 0.65), (Math.Round(final1.ForgetFB!.Value, 12), Math.Round(final1.ForgetQA!.Value, 12), Math.Round(final1.NeighborFB!.Value, 12)));
        // Layer 2, forget-below-50: only target 1 crossed it, so its row is target 1's own (forget QA 0.1 x 2 = 20 %).
        Assert.Equal([1], runs[4].Targets.Select(t => t.Number));
        Assert.Equal(0.2, runs[4].Mean.ForgetQA!.Value, 12);

        // One by one: `atu report` over each cell's final results gives one row per run; the sweep's per-target rows
        // (results.md of the group) are those rows, and its mean row is their mean, as `atu report` computes a mean.
        var combined = File.ReadAllLines(Path.Combine(sweep, "report", RwkuReports.CombinedTableFile));
        foreach (var layer in new[] { 1, 2 })
        {
            var finals = manifest.Cells.Where(c => c.Layer == layer).Select(c => Path.Combine(c.Run, "report", "ATU-final")).ToList();
            var oneByOne = RwkuReports.Combine(finals, _temp.File($"one-by-one-{layer}"));
            var oneByOneRows = File.ReadAllLines(_temp.File($"one-by-one-{layer}/{RwkuReports.CombinedTableFile}")).Where(l => l.StartsWith("| ATU final", StringComparison.Ordinal)).Select(Cells).ToList();
            var groupTable = File.ReadAllLines(Path.Combine(sweep, "report", "groups", $"atu_toy_L{layer}_ATU-final", RwkuReports.TableFile));
            Assert.Equal(oneByOneRows, groupTable.Where(l => l.StartsWith("| 1 Person 1", StringComparison.Ordinal) || l.StartsWith("| 2 Person 2", StringComparison.Ordinal)).Select(Cells));
            var meanOfRuns = RwkuScores.MeanOf([.. oneByOne.Select(r => r.Mean)]);
            var sweepRow = combined.Single(l => l.StartsWith($"| atu toy L{layer} ATU-final |", StringComparison.Ordinal));
            Assert.Equal(Cells(ResultsTable.Markdown("Run", [("x", meanOfRuns)]).Split('\n')[2]), Cells(sweepRow));
        }
        Assert.True(new FileInfo(Path.Combine(sweep, "report", TradeoffPlot.FileName)).Length > 0);

        // The layer comparison, final checkpoint: target 1 at layer 1 forgets (0.1 + 0.05 + 0.1) / 3 = 8.3 %, at layer 2
        // (0.1 + 0.1 + 0.1) / 3 = 10.0 %; its neighbour average is (0.6 + 0.6) / 2 = 60.0 % at both. At forget-below-50,
        // target 2 at layer 1 forgets (0.4 + 0.1 + 0.3) / 3 = 26.7 % and keeps (0.7 + 0.5) / 2 = 60.0 %; at layer 2 it
        // never crossed 50: dashes.
        var layers = File.ReadAllText(Path.Combine(sweep, "report", SweepReport.LayersFile));
        Assert.Contains("## atu toy ATU-final\n\n| Target | L1 forget ↓ | L1 neighbour ↑ | L2 forget ↓ | L2 neighbour ↑ |\n| :-- | --: | --: | --: | --: |\n| 1 Person 1 | 8.3 | 60.0 | 10.0 | 60.0 |\n", layers);
        Assert.Contains("## atu toy ATU-forget-below-50\n", layers);
        Assert.Contains("| 2 Person 2 | 26.7 | 60.0 | – | – |\n", layers);
    }

    [Fact]
    public void Cells_not_done_are_left_out_and_an_empty_sweep_is_refused()
    {
        var (sweep, manifest) = Fabricate();
        foreach (var cell in manifest.Cells.Where(c => c.Target == 2)) File.Delete(Path.Combine(sweep, cell.Folder, CellState.DoneFile));
        var runs = SweepReport.Write(sweep);
        Assert.All(runs, r => Assert.Equal([1], r.Targets.Select(t => t.Number)));
        foreach (var cell in manifest.Cells) File.Delete(Path.Combine(sweep, cell.Folder, CellState.DoneFile));
        Assert.Contains("no cell", Assert.Throws<InvalidOperationException>(() => SweepReport.Write(sweep)).Message);
    }
}
