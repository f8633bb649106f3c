using System.Globalization;
using System.Text;
using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.Models;

namespace AlignThenUnlearn.Sweeps;

/// <summary>`atu sweep report`: the cells' RWKU results (run/report/CHECKPOINT/results.json, as `atu run` writes them
/// for ATU, e.g. ATU-final, and with --method for the baselines, e.g. GA-F-forget-below-50, GA-L-final, ICU)
/// grouped by method, preset, layer, seed and checkpoint; each group's targets make one run summary (so its mean is
/// the mean over targets), written as results.json/results.md (mean row and a row per target), and all groups go
/// through the same combining code as `atu report` (combined.md, the trade-off plot with a series per
/// method/preset/layer/seed joining its checkpoints).</summary>
public static class SweepReport
{
    public const string Folder = "report", GroupsFolder = "groups", ReportFolderOfRun = "report", LayersFile = "layers.md";

    /// <summary>The cells of one method, preset, layer and seed at one checkpoint: their targets as one run.</summary>
    public sealed record Group(string Name, string Series, string FolderName, SweepCell First, string Checkpoint, RunSummary Summary);

    /// <summary>The groups, in the order of the cells, checkpoints in order before, thresholds high to low, final.</summary>
    public static IReadOnlyList<Group> Groups(string sweepFolder, SweepManifest manifest)
    {
        var members = new Dictionary<string, (string Series, string FolderName, string Checkpoint, SweepCell First, List<TargetScores> Targets)>();
        foreach (var cell in manifest.Cells)
        {
            var reports = Path.Combine(cell.Run, ReportFolderOfRun);
            if (!File.Exists(Path.Combine(sweepFolder, cell.Folder, CellState.DoneFile)) || !Directory.Exists(reports)) continue;
            var series = cell.Method + (cell.Preset.Length > 0 ? $" {SweepPlanner.PresetLabel(cell.Preset)}" : "") + (cell.Layer is int l ? $" L{l}" : "") + (cell.Seed is int s ? $" s{s}" : "");
            foreach (var checkpoint in Directory.GetDirectories(reports).Select(Path.GetFileName).OfType<string>().OrderBy(CheckpointOrder).ThenBy(c => c, StringComparer.Ordinal))
            {
                var results = Path.Combine(reports, checkpoint, RwkuReports.ResultsFile);
                if (!File.Exists(results)) continue;
                var name = $"{series} {checkpoint}";
                if (!members.TryGetValue(name, out var group))
                    members[name] = group = (series, series.Replace(' ', '_') + "_" + checkpoint, checkpoint, cell, []);
                group.Targets.AddRange(ResultsJson.Read(results).Targets);
            }
        }
        // Groups of one series stay together (their checkpoints in order), series in the order of the cells.
        var seriesOrder = members.Values.GroupBy(g => g.Series).Select((g, i) => (g.Key, i)).ToDictionary(x => x.Key, x => x.i);
        return members.OrderBy(kv => seriesOrder[kv.Value.Series]).ThenBy(kv => CheckpointOrder(kv.Value.Checkpoint)).ThenBy(kv => kv.Value.Checkpoint, StringComparer.Ordinal)
            .Select(kv => new Group(kv.Key, kv.Value.Series, kv.Value.FolderName, kv.Value.First, kv.Value.Checkpoint,
                new RunSummary(kv.Key, kv.Value.Targets.OrderBy(t => t.Number).ToList(), kv.Value.Series)))
            .ToList();
    }

    /// <summary>before first, then forget-below-T for falling T, then final (and anything else after).</summary>
    static double CheckpointOrder(string checkpoint)
    {
        if (checkpoint == "before") return double.NegativeInfinity;
        var at = checkpoint.LastIndexOf("forget-below-", StringComparison.Ordinal);
        if (at >= 0 && double.TryParse(checkpoint[(at + "forget-below-".Length)..], NumberStyles.Float, CultureInfo.InvariantCulture, out var threshold)) return -threshold;
        return checkpoint.EndsWith("final", StringComparison.Ordinal) ? 1e9 : 2e9;
    }

    /// <summary>Writes the report into <paramref name="folder"/> (default SWEEP/report); returns the groups' summaries.</summary>
    public static IReadOnlyList<RunSummary> Write(string sweepFolder, string? folder = null)
    {
        var manifest = SweepManifest.Read(sweepFolder);
        folder ??= Path.Combine(sweepFolder, Folder);
        var groups = Groups(sweepFolder, manifest);
        if (groups.Count == 0) throw new InvalidOperationException($"no cell of the sweep in '{sweepFolder}' is done with RWKU results yet (see `atu sweep status {sweepFolder}`)");
        var paths = new List<string>();
        foreach (var group in groups)
        {
            var groupFolder = Path.Combine(folder, GroupsFolder, group.FolderName);
            Directory.CreateDirectory(groupFolder);
            AtomicFile.WriteAllBytes(Path.Combine(groupFolder, RwkuReports.ResultsFile), ResultsJson.Serialize(group.Summary));
            AtomicFile.WriteAllBytes(Path.Combine(groupFolder, RwkuReports.TableFile), Encoding.UTF8.GetBytes(ResultsTable.Run(group.Summary)));
            paths.Add(groupFolder);
        }
        var layers = LayerComparison(groups);
        if (layers is not null) AtomicFile.WriteAllBytes(Path.Combine(folder, LayersFile), Encoding.UTF8.GetBytes(layers));
        return RwkuReports.Combine(paths, folder);
    }

    /// <summary>The paper's layer comparison (its Figures 5-6) as tables: per method, preset, seed and checkpoint swept
    /// over several layers, a row per target with its forget and neighbour averages at each layer. Null when no
    /// sweep varied the layer.</summary>
    public static string? LayerComparison(IReadOnlyList<Group> groups)
    {
        var sets = groups.Where(g => g.First.Layer is not null)
            .GroupBy(g => (g.First.Method, g.First.Preset, g.First.Seed, g.Checkpoint))
            .Where(s => s.Count() > 1).ToList();
        if (sets.Count == 0) return null;
        static string Percent(double? v) => v is double x ? (100 * x).ToString("F1", CultureInfo.InvariantCulture) : "–";
        var text = new StringBuilder("# Layer comparison\n\nForget and neighbour averages per target at each hook layer (ROUGE-L recall in percent; forget ↓, neighbour ↑).\n");
        foreach (var set in sets)
        {
            var layers = set.OrderBy(g => g.First.Layer).ToList();
            var (method, preset, seed, checkpoint) = set.Key;
            text.Append(CultureInfo.InvariantCulture, $"\n## {method} {SweepPlanner.PresetLabel(preset)}{(seed is int s ? $" s{s}" : "")} {checkpoint}\n\n| Target |");
            foreach (var layer in layers) text.Append(CultureInfo.InvariantCulture, $" L{layer.First.Layer} forget ↓ | L{layer.First.Layer} neighbour ↑ |");
            text.Append("\n| :-- |").Append(string.Concat(Enumerable.Repeat(" --: |", 2 * layers.Count))).Append('\n');
            foreach (var (number, name) in layers.SelectMany(l => l.Summary.Targets).Select(t => (t.Number, t.Name)).Distinct().OrderBy(t => t.Number))
            {
                text.Append(CultureInfo.InvariantCulture, $"| {number} {name} |");
                foreach (var layer in layers)
                {
                    var scores = layer.Summary.Targets.FirstOrDefault(t => t.Number == number)?.Scores;
                    text.Append(' ').Append(Percent(scores?.ForgetAll)).Append(" | ").Append(Percent(scores?.NeighborAll)).Append(" |");
                }
                text.Append('\n');
            }
        }
        return text.ToString();
    }
}
