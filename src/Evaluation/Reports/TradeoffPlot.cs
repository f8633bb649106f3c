namespace AlignThenUnlearn.Evaluation;

/// <summary>The paper's Figure 4: each run as a point at (forget average, neighbour average) in percent; runs of one
/// series (the checkpoints of one method) are joined in the order given. Good unlearning sits at the upper left:
/// little of the target recalled, the neighbours kept.</summary>
public static class TradeoffPlot
{
    public const string FileName = "forget_vs_neighbor.png";

    /// <summary>One curve of the plot: its legend name, and its points' labels, forget and neighbour averages in percent.</summary>
    public sealed record Curve(string Name, IReadOnlyList<string> Labels, double[] Forget, double[] Neighbor);

    /// <summary>The curves the plot draws: runs grouped by their series (else their name), in order of first appearance,
    /// each curve's points in the order given; runs lacking either average are left out.</summary>
    public static IReadOnlyList<Curve> Curves(IEnumerable<RunSummary> runs) =>
        [.. runs.Select(r => (Run: r, Mean: r.Mean)).Where(r => r.Mean.ForgetAll.HasValue && r.Mean.NeighborAll.HasValue)
            .GroupBy(r => r.Run.Series ?? r.Run.Name)
            .Select(g => new Curve(g.Key, [.. g.Select(p => p.Run.Name)],
                [.. g.Select(p => 100 * p.Mean.ForgetAll!.Value)], [.. g.Select(p => 100 * p.Mean.NeighborAll!.Value)]))];

    public static byte[] RenderPng(IEnumerable<RunSummary> runs, int width = 800, int height = 600)
    {
        var curves = Curves(runs);
        if (curves.Count == 0) throw new InvalidOperationException("No run has both a forget and a neighbour average to plot");

        var plot = new ScottPlot.Plot();
        var palette = new ScottPlot.Palettes.Category10();
        int seriesIndex = 0;
        foreach (var curve in curves)
        {
            var (forget, neighbor) = (curve.Forget, curve.Neighbor);
            var color = palette.GetColor(seriesIndex++);
            var scatter = plot.Add.Scatter(forget, neighbor, color);
            scatter.LegendText = curve.Name;
            scatter.MarkerSize = 9;
            scatter.LineWidth = forget.Length > 1 ? 1.5f : 0;
            for (int i = 0; i < forget.Length; i++)
            {
                if (forget.Length == 1 && curve.Labels[i] == curve.Name) continue; // the legend names it already
                var label = plot.Add.Text(curve.Labels[i], forget[i], neighbor[i]);
                label.LabelFontSize = 11;
                label.LabelFontColor = color;
                label.OffsetX = 6;
                label.OffsetY = -6;
            }
        }
        plot.Title("RWKU: forget vs neighbour");
        plot.XLabel("Forget average, ROUGE-L recall % (lower is better)");
        plot.YLabel("Neighbour average, ROUGE-L recall % (higher is better)");
        // Room around the points, more on the right where the labels run.
        var xs = curves.SelectMany(c => c.Forget).ToList();
        var ys = curves.SelectMany(c => c.Neighbor).ToList();
        double padX = Math.Max(5, 0.1 * (xs.Max() - xs.Min())), padY = Math.Max(5, 0.1 * (ys.Max() - ys.Min()));
        plot.Axes.SetLimits(Math.Max(0, xs.Min() - padX), xs.Max() + 2 * padX, Math.Max(0, ys.Min() - padY), ys.Max() + padY);
        plot.ShowLegend(ScottPlot.Alignment.LowerRight);
        return plot.GetImageBytes(width, height, ScottPlot.ImageFormat.Png);
    }
}
