namespace AlignThenUnlearn.Evaluation.Comparison;

/// <summary>forget_vs_neighbor.png of the equal-forgetting comparison: per method, the mean neighbour All at each level of
/// <see cref="EqualForgetting.Levels"/> that some of its people reach, with its 95% interval (a band, or a bar where the
/// point stands alone). Two neighbouring levels are joined by a line only when the same people reach both, so no line
/// joins means over different people; a level no person reaches is left out.</summary>
public static class EqualForgettingPlot
{
    public const string FileName = "forget_vs_neighbor.png";

    /// <summary>One plotted level: the mean and interval, and whether it joins the next level's point.</summary>
    public sealed record Point(double Level, Estimate Estimate, bool JoinsNext);

    /// <summary>A method's points from the highest level down (see the class for the joining rule).</summary>
    public static IReadOnlyList<Point> Points(IReadOnlyList<PersonTrajectory> runs, string method)
    {
        var levels = EqualForgetting.Levels.Select(l => (Level: l, Values: EqualForgettingReport.Values(runs, method, KeptFigure.NeighbourAll, l)))
            .Where(x => x.Values.Count > 0).ToList();
        var points = new List<Point>();
        for (int i = 0; i < levels.Count; i++)
        {
            var people = levels[i].Values.Select(v => (v.World, v.Person)).ToHashSet();
            bool joins = i + 1 < levels.Count && people.SetEquals(levels[i + 1].Values.Select(v => (v.World, v.Person)));
            points.Add(new Point(levels[i].Level, Bootstrap.Of([.. levels[i].Values.Select(v => (v.World, v.Value))])!, joins));
        }
        return points;
    }

    public static byte[] RenderPng(IReadOnlyList<PersonTrajectory> runs, int width = 900, int height = 600)
    {
        var methods = runs.Select(r => r.Method).Distinct().ToList();
        var plot = new ScottPlot.Plot();
        var palette = new ScottPlot.Palettes.Category10();
        bool any = false;
        for (int m = 0; m < methods.Count; m++)
        {
            var color = palette.GetColor(m);
            // A small sideways offset per method keeps the intervals apart.
            double offset = (m - (methods.Count - 1) / 2.0) * 0.25;
            var points = Points(runs, methods[m]);
            if (points.Count == 0) continue;
            any = true;
            int start = 0;
            while (start < points.Count)
            {
                int end = start;
                while (points[end].JoinsNext) end++;
                var part = points.Skip(start).Take(end - start + 1).ToList();
                double[] xs = [.. part.Select(p => p.Level + offset)];
                if (part.Count > 1)
                {
                    var band = plot.Add.FillY(xs, [.. part.Select(p => p.Estimate.Low)], [.. part.Select(p => p.Estimate.High)]);
                    band.FillColor = color.WithAlpha(0.12);
                    band.LineColor = color.WithAlpha(0);
                }
                else
                {
                    var bar = plot.Add.Line(xs[0], part[0].Estimate.Low, xs[0], part[0].Estimate.High);
                    bar.LineColor = color;
                    bar.LineWidth = 2;
                }
                var line = plot.Add.Scatter(xs, [.. part.Select(p => p.Estimate.Mean)], color);
                line.MarkerSize = 8;
                line.LineWidth = part.Count > 1 ? 2 : 0;
                if (start == 0) line.LegendText = methods[m];
                start = end + 1;
            }
        }
        if (!any) plot.Add.Annotation("no method reaches forget All 50 on any person");
        plot.Title("Neighbour All at equal forgetting (mean, 95% interval)");
        plot.XLabel("Forget All, ROUGE-L recall % (lower is more forgotten)");
        plot.YLabel("Neighbour All, ROUGE-L recall % (higher is better)");
        plot.Axes.SetLimitsX(EqualForgetting.Levels.Min() - 5, EqualForgetting.Levels.Max() + 5);
        plot.ShowLegend(ScottPlot.Alignment.LowerRight);
        return plot.GetImageBytes(width, height, ScottPlot.ImageFormat.Png);
    }
}
