using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.Tests.Support;

namespace AlignThenUnlearn.Tests.Evaluation;

/// <summary>`atu report` over run folders of two methods with hand-written scores: one Table 1 with a Method column
/// (method from the folders' preset.json, not their names), rows in order, and one plot curve per method.</summary>
public class MethodTableTests
{
    /// <summary>One target whose forget probes score fb/qa/aa and neighbour probes nfb/nqa, one probe each (so the
    /// "All" averages are plain means).</summary>
    static RunSummary Summary(string name, string? series, double fb, double qa, double aa, double nfb, double nqa) =>
        new(name, [new TargetScores(1, "Ada Quill", new RwkuScores(fb, qa, aa, nfb, nqa, null), new RwkuCounts(1, 1, 1, 1, 1, 0))], series);

    /// <summary>A run folder as `atu run --method` leaves it: preset.json and report/&lt;checkpoint&gt;/results.json.</summary>
    static string RunFolder(TempFolder root, string folderName, string presetJson, params RunSummary[] checkpoints)
    {
        var folder = Path.Combine(root.Path, folderName);
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "preset.json"), presetJson);
        int index = 0;
        foreach (var checkpoint in checkpoints)
        {
            // Folder names in scrambled order: the row order must come from the checkpoints, not the listing.
            var checkpointFolder = Path.Combine(folder, "report", $"z{9 - index++}");
            Directory.CreateDirectory(checkpointFolder);
            File.WriteAllBytes(Path.Combine(checkpointFolder, "results.json"), ResultsJson.Serialize(checkpoint));
        }
        return folder;
    }

    [Fact]
    public void Two_methods_give_one_table_with_a_method_column_and_one_curve_per_method()
    {
        using var root = new TempFolder();
        // Folder names deliberately name other methods: the label must come from preset.json.
        var ga = RunFolder(root, "npo-run", """{ "name": "toy-ga", "method": "ga", "lora": false }""",
            Summary("GA (F) final", "GA (F)", 0.0, 0.3, 0.0, 0.4, 0.2),
            Summary("GA (F) forget-below-20", "GA (F)", 0.3, 0.0, 0.0, 0.5, 0.3),
            Summary("before", null, 0.9, 0.6, 0.6, 0.8, 0.6),
            Summary("GA (F) forget-below-50", "GA (F)", 0.6, 0.3, 0.3, 0.5, 0.7));
        var npo = RunFolder(root, "ga-run", """{ "name": "toy-npo", "method": "npo", "lora": true }""",
            Summary("before", null, 0.9, 0.6, 0.6, 0.8, 0.6),
            Summary("NPO (L) final", "NPO (L)", 0.3, 0.3, 0.0, 0.7, 0.5));
        var report = Path.Combine(root.Path, "table");

        var rows = RwkuReports.CombineMethods([ga, npo], "report", report);

        // The forget "All" is the mean of fb, qa, aa and the neighbour "All" the mean of fb, qa (one probe each):
        // before (0.9+0.6+0.6)/3 = 0.7, (0.8+0.6)/2 = 0.7; GA at 50: (0.6+0.3+0.3)/3 = 0.4, (0.5+0.7)/2 = 0.6;
        // GA at 20: 0.3/3 = 0.1, (0.5+0.3)/2 = 0.4; GA final: 0.3/3 = 0.1, (0.4+0.2)/2 = 0.3;
        // NPO final: 0.6/3 = 0.2, (0.7+0.5)/2 = 0.6. Before once, first; then each folder's checkpoints 50, 20, final.
        Assert.Equal("""
            # RWKU results

            ROUGE-L recall and MMLU accuracy in percent, each row averaged over its targets; a row per method (F: full fine-tuning, L: LoRA) and checkpoint.

            | Method | Forget FB ↓ | Forget QA ↓ | Forget AA ↓ | Forget All ↓ | Neighbor FB ↑ | Neighbor QA ↑ | Neighbor All ↑ | MMLU ↑ |
            | :-- | --: | --: | --: | --: | --: | --: | --: | --: |
            | Before | 90.0 | 60.0 | 60.0 | 70.0 | 80.0 | 60.0 | 70.0 | – |
            | GA (F) forget-below-50 | 60.0 | 30.0 | 30.0 | 40.0 | 50.0 | 70.0 | 60.0 | – |
            | GA (F) forget-below-20 | 30.0 | 0.0 | 0.0 | 10.0 | 50.0 | 30.0 | 40.0 | – |
            | GA (F) final | 0.0 | 30.0 | 0.0 | 10.0 | 40.0 | 20.0 | 30.0 | – |
            | NPO (L) final | 30.0 | 30.0 | 0.0 | 20.0 | 70.0 | 50.0 | 60.0 | – |

            """.ReplaceLineEndings("\n"), File.ReadAllText(Path.Combine(report, "combined.md")));

        // The plot's input: the model before as a point of its own, then one curve per method, checkpoints in row order.
        var curves = TradeoffPlot.Curves(rows);
        Assert.Equal(["Before", "GA (F)", "NPO (L)"], curves.Select(c => c.Name));
        var gaCurve = curves[1];
        Assert.Equal(["GA (F) forget-below-50", "GA (F) forget-below-20", "GA (F) final"], gaCurve.Labels);
        Assert.Equal([40.0, 10.0, 10.0], gaCurve.Forget.Select(x => Math.Round(x, 9)));
        Assert.Equal([60.0, 40.0, 30.0], gaCurve.Neighbor.Select(x => Math.Round(x, 9)));
        Assert.Equal([20.0], curves[2].Forget.Select(x => Math.Round(x, 9)));
        Assert.Equal([60.0], curves[2].Neighbor.Select(x => Math.Round(x, 9)));
        Assert.True(new FileInfo(Path.Combine(report, "forget_vs_neighbor.png")).Length > 0);
    }

    [Fact]
    public void Icu_is_named_by_its_record_and_a_folder_without_one_is_refused()
    {
        using var root = new TempFolder();
        var icu = Path.Combine(root.Path, "run");
        Directory.CreateDirectory(Path.Combine(icu, "report"));
        Assert.Throws<FileNotFoundException>(() => MethodTable.MethodLabel(icu));
        File.WriteAllText(Path.Combine(icu, MethodTable.MethodRecordFile), """{ "method": "icu" }""");
        Assert.Equal("ICU", MethodTable.MethodLabel(icu));
        // Align-then-Unlearn's preset has no "method" key.
        var atu = Path.Combine(root.Path, "atu");
        Directory.CreateDirectory(atu);
        File.WriteAllText(Path.Combine(atu, "preset.json"), """{ "name": "toy", "layers": [2] }""");
        Assert.Equal("ATU", MethodTable.MethodLabel(atu));
        // The paper's spelling of two methods whose names are not plain upper case.
        File.WriteAllText(Path.Combine(atu, "preset.json"), """{ "name": "toy-graddiff", "method": "graddiff", "lora": true }""");
        Assert.Equal("GradDiff (L)", MethodTable.MethodLabel(atu));
        File.WriteAllText(Path.Combine(atu, "preset.json"), """{ "name": "toy-ga-star", "method": "ga-star", "lora": false }""");
        Assert.Equal("GA* (F)", MethodTable.MethodLabel(atu));
    }
}
