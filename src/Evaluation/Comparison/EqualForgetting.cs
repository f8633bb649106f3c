using AlignThenUnlearn.Unlearning;

namespace AlignThenUnlearn.Evaluation.Comparison;

/// <summary>A figure kept while forgetting, read at equal forgetting.</summary>
public enum KeptFigure { NeighbourAll, RetainQA, MultipleChoice }

/// <summary>One method's run on one person of one world: its evaluation points, the model before first.</summary>
public sealed record PersonTrajectory(string Method, string World, string Person, IReadOnlyList<TrajectoryPoint> Points);

/// <summary>The kept knowledge of a run at a given forget level (forget All, percent), read off its trajectory.
///
/// <b>Level crossing.</b> Over the points that measured both forget All and the figure, in their order: the first point
/// i with forget(i) &lt;= L. None: the run never reaches L and is missing there. i = 0 (the model before is already at or
/// below L) or forget(i) = L: the figure at point i. Otherwise the pair (i-1, i) is the first consecutive pair with
/// forget(i-1) &gt; L &gt;= forget(i), and the figure is interpolated linearly in forget between them. A run that later
/// rises above L again is still read at its first crossing.
///
/// <b>Area.</b> The neighbour-vs-forget path from the model before to the first crossing of <see cref="AreaFloor"/>
/// (the crossing point interpolated as above), integrated by the trapezoid rule over forget (a segment where forget rises
/// counts negatively), divided by the forget range (before - floor): the mean neighbour All over that range, in points.
/// A run that never reaches the floor, or whose model before is already at or below it, is missing for the area.</summary>
public static class EqualForgetting
{
    public static readonly IReadOnlyList<double> Levels = [50, 35, 20];
    public const double AreaFloor = 20;

    public static double? Figure(TrajectoryPoint point, KeptFigure figure) => figure switch
    {
        KeptFigure.NeighbourAll => point.NeighbourAll,
        KeptFigure.RetainQA => point.RetainQA,
        KeptFigure.MultipleChoice => point.MultipleChoice,
        _ => throw new ArgumentOutOfRangeException(nameof(figure), figure, null),
    };

    public static string Name(KeptFigure figure) => figure switch
    {
        KeptFigure.NeighbourAll => "neighbour All",
        KeptFigure.RetainQA => "retain QA",
        KeptFigure.MultipleChoice => "multiple choice",
        _ => throw new ArgumentOutOfRangeException(nameof(figure), figure, null),
    };

    /// <summary>(forget All, figure) of the points that measured both, in order; a non-finite value is refused.</summary>
    public static IReadOnlyList<(double Forget, double Value)> Curve(IReadOnlyList<TrajectoryPoint> points, KeptFigure figure)
    {
        var curve = new List<(double, double)>();
        foreach (var p in points)
        {
            if (p.ForgetAll is not double forget || Figure(p, figure) is not double value) continue;
            if (!double.IsFinite(forget) || !double.IsFinite(value))
                throw new InvalidDataException($"evaluation point {p.Point} ({p.Where}): forget All {forget}, {Name(figure)} {value}; expected finite scores");
            curve.Add((forget, value));
        }
        return curve;
    }

    /// <summary>The figure at forget All = <paramref name="level"/> (the class's crossing rule); null when never reached.</summary>
    public static double? At(IReadOnlyList<TrajectoryPoint> points, KeptFigure figure, double level) => At(Curve(points, figure), level);

    public static double? At(IReadOnlyList<(double Forget, double Value)> curve, double level)
    {
        for (int i = 0; i < curve.Count; i++)
        {
            var (forget, value) = curve[i];
            if (forget > level) continue;
            if (i == 0 || forget == level) return value;
            var (aForget, aValue) = curve[i - 1];
            return aValue + (aForget - level) / (aForget - forget) * (value - aValue);
        }
        return null;
    }

    /// <summary>The normalised area of neighbour All over forget All from the model before down to <paramref name="floor"/>
    /// (the class's rule); null when missing.</summary>
    public static double? Area(IReadOnlyList<TrajectoryPoint> points, double floor = AreaFloor)
    {
        var curve = Curve(points, KeptFigure.NeighbourAll);
        if (curve.Count == 0 || curve[0].Forget <= floor) return null;
        int crossing = -1;
        for (int i = 0; i < curve.Count && crossing < 0; i++) if (curve[i].Forget <= floor) crossing = i;
        if (crossing < 0) return null;
        var path = curve.Take(crossing).Append((floor, At(curve, floor)!.Value)).ToList();
        double area = 0;
        for (int i = 1; i < path.Count; i++) area += (path[i - 1].Item1 - path[i].Item1) * (path[i - 1].Item2 + path[i].Item2) / 2;
        return area / (curve[0].Forget - floor);
    }
}
