using System.Globalization;
using System.Text;
using System.Text.Json;

namespace AlignThenUnlearn.Evaluation;

/// <summary>One model under attack: its method (the attack's --series), its checkpoint (the attacked weights, with the
/// LoRA adapters merged into them when the attack had --adapters: "WEIGHTS + ADAPTERS"), forget All
/// before and after unlearning (from the first of its attack.json files that has them) and, per attack column, forget
/// All after the attack and the recovery.</summary>
public sealed record RobustnessRow(string Method, string Checkpoint, double? Before, double? Unlearned,
    IReadOnlyDictionary<string, (double? ForgetAll, double? Recovery)> Attacks);

/// <summary>The robustness table of `atu report --attacks`: rows method x checkpoint, columns the attacks, from the
/// attack.json files of `atu attack`. Each file gives one column per scored run: its <c>label</c> plus the key suffix of
/// its <c>forget_all*</c> figures (<c>_mean</c> of the sampling attack, <c>_k4</c> of relearning on 4 texts ...).</summary>
public sealed record RobustnessTable(IReadOnlyList<string> Attacks, IReadOnlyList<RobustnessRow> Rows)
{
    public const string TableFile = "robustness.md", PlotFile = "robustness.png", ReportFile = "attack.json";

    /// <summary>Reads attack.json files (or folders holding one), rows and columns in the order first met.</summary>
    public static RobustnessTable Read(IEnumerable<string> paths)
    {
        var attacks = new List<string>();
        var rows = new List<(string Method, string Checkpoint, double? Before, double? Unlearned, Dictionary<string, (double?, double?)> Cells, Dictionary<string, string> From)>();
        foreach (var given in paths)
        {
            var path = Directory.Exists(given) ? Path.Combine(given, ReportFile) : given;
            if (!File.Exists(path)) throw new FileNotFoundException($"attack report '{path}' does not exist (write it with `atu attack`)", path);
            using var json = JsonDocument.Parse(File.ReadAllBytes(path));
            var root = json.RootElement;
            string Text(string key) => root.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString()!
                : throw new InvalidDataException($"'{path}': '{key}' is missing or not a string (expected an attack.json of `atu attack`)");
            double? Number(string key) => !root.TryGetProperty(key, out var v) || v.ValueKind == JsonValueKind.Null ? null
                : v.ValueKind == JsonValueKind.Number ? v.GetDouble() : throw new InvalidDataException($"'{path}': '{key}' is not a number");
            var label = Text("label");
            var method = root.TryGetProperty("series", out var series) && series.ValueKind == JsonValueKind.String ? series.GetString()! : "";
            // LoRA checkpoints of one run share their base weights: the adapters tell them apart.
            var checkpoint = root.TryGetProperty("adapters", out var adapters) && adapters.ValueKind == JsonValueKind.String
                ? $"{Text("weights")} + {adapters.GetString()}" : Text("weights");
            int index = rows.FindIndex(r => r.Method == method && r.Checkpoint == checkpoint);
            if (index < 0)
            {
                rows.Add((method, checkpoint, null, null, [], []));
                index = rows.Count - 1;
            }
            var row = rows[index];
            rows[index] = row with { Before = row.Before ?? Number("forget_all_before"), Unlearned = row.Unlearned ?? Number("forget_all_unlearned") };
            const string prefix = "forget_all";
            var suffixes = root.EnumerateObject().Select(p => p.Name)
                .Where(n => n.StartsWith(prefix, StringComparison.Ordinal) && n is not "forget_all_before" and not "forget_all_unlearned")
                .Select(n => n[prefix.Length..]).ToList();
            if (suffixes.Count == 0) throw new InvalidDataException($"'{path}' has no forget_all figures");
            foreach (var suffix in suffixes)
            {
                var column = label + suffix.Replace('_', ' ');
                if (row.From.TryGetValue(column, out var earlier))
                    throw new InvalidDataException($"'{path}' and '{earlier}' both hold attack '{column}' on {checkpoint}");
                row.From[column] = path;
                row.Cells[column] = (Number(prefix + suffix), Number("recovery" + suffix));
                if (!attacks.Contains(column)) attacks.Add(column);
            }
        }
        return new RobustnessTable(attacks, [.. rows.Select(r => new RobustnessRow(r.Method, r.Checkpoint, r.Before, r.Unlearned, r.Cells))]);
    }

    /// <summary>Two Markdown tables: forget All (percent) before and after unlearning and after each attack; the recovery
    /// after each attack. A cell without a figure is a dash. <paramref name="title"/> is a heading of
    /// <paramref name="level"/>, the recovery's one level below (a table inside a longer report).</summary>
    public string Markdown(string title = "Robustness", int level = 1)
    {
        var text = new StringBuilder().Append('#', level).Append(' ').Append(title).Append("\n\n");
        text.Append("Forget All (ROUGE-L recall %, averaged over the attacked targets; lower is better) before unlearning, after it, and after each attack.\n\n");
        Table(text, ["Before", "Unlearned", .. Attacks], r => [ResultsTable.Percent(r.Before), ResultsTable.Percent(r.Unlearned),
            .. Attacks.Select(a => ResultsTable.Percent(r.Attacks.TryGetValue(a, out var c) ? c.ForgetAll : null))]);
        text.Append('\n').Append('#', level + 1).Append(" Recovery\n\n");
        text.Append("(after attack - after unlearning) / (before - after unlearning): 0 when the attack brings nothing back, 1 when it undoes the unlearning.\n\n");
        Table(text, Attacks, r => [.. Attacks.Select(a => r.Attacks.TryGetValue(a, out var c) && c.Recovery is double v ? v.ToString("F3", CultureInfo.InvariantCulture) : "–")]);
        return text.ToString();
    }

    void Table(StringBuilder text, IReadOnlyList<string> columns, Func<RobustnessRow, IEnumerable<string>> cells)
    {
        text.Append("| Method | Checkpoint | ").AppendJoin(" | ", columns.Select(ResultsTable.Escape)).Append(" |\n");
        text.Append("| :-- | :-- |").Append(string.Concat(Enumerable.Repeat(" --: |", columns.Count))).Append('\n');
        foreach (var row in Rows)
            text.Append("| ").Append(ResultsTable.Escape(row.Method.Length == 0 ? "–" : row.Method)).Append(" | ").Append(ResultsTable.Escape(row.Checkpoint))
                .Append(" | ").AppendJoin(" | ", cells(row)).Append(" |\n");
    }

    /// <summary>A grouped bar chart: per row, forget All after unlearning and after each attack, in percent.</summary>
    public byte[] RenderPng(int width = 1000, int height = 600)
    {
        string[] series = ["Unlearned", .. Attacks];
        var plot = new ScottPlot.Plot();
        var palette = new ScottPlot.Palettes.Category10();
        var bars = new List<ScottPlot.Bar>();
        double groupWidth = series.Length + 1;   // one empty slot between rows
        for (int r = 0; r < Rows.Count; r++)
            for (int s = 0; s < series.Length; s++)
            {
                double? value = s == 0 ? Rows[r].Unlearned : Rows[r].Attacks.TryGetValue(series[s], out var c) ? c.ForgetAll : null;
                if (value is double v) bars.Add(new ScottPlot.Bar { Position = r * groupWidth + s, Value = 100 * v, FillColor = palette.GetColor(s) });
            }
        if (bars.Count == 0) throw new InvalidOperationException("No attack report has a forget All figure to plot");
        plot.Add.Bars(bars);
        for (int s = 0; s < series.Length; s++)
            plot.Legend.ManualItems.Add(new ScottPlot.LegendItem { LabelText = series[s], FillColor = palette.GetColor(s) });
        plot.Axes.Bottom.SetTicks([.. Rows.Select((_, r) => r * groupWidth + (series.Length - 1) / 2.0)],
            [.. Rows.Select(r => r.Method.Length == 0 ? ShortName(r.Checkpoint) : $"{r.Method}\n{ShortName(r.Checkpoint)}")]);
        plot.Axes.Margins(bottom: 0);
        plot.Title("RWKU: forget All after each attack");
        plot.YLabel("Forget All, ROUGE-L recall % (lower is better)");
        plot.ShowLegend(ScottPlot.Alignment.UpperRight);
        return plot.GetImageBytes(width, height, ScottPlot.ImageFormat.Png);
    }

    /// <summary>The weights' folder and file name (checkpoints are mostly model.safetensors in a folder per checkpoint).</summary>
    static string ShortName(string weights) => string.Join('/', weights.Split('/', '\\').TakeLast(2));
}
