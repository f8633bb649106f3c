using AlignThenUnlearn.Evaluation.Comparison;
using AlignThenUnlearn.Unlearning;

namespace AlignThenUnlearn.Tests.Evaluation;

/// <summary>The equal-forgetting comparison on hand-worked trajectories: the level crossing (between two points, exactly at
/// a point, never reached, already below before), the area summary, the bootstrap against an independent implementation,
/// the paired differences and the comparison line's three outcomes.</summary>
public sealed class EqualForgettingTests
{
    /// <summary>Points 0.. with the given forget All and neighbour All (and retain QA where given).</summary>
    static IReadOnlyList<TrajectoryPoint> T(double[] forget, double[] neighbour, double?[]? retain = null) =>
        [.. forget.Select((f, i) => new TrajectoryPoint(i, $"point {i}", null, null, null, f, null, null, neighbour[i], retain?[i]))];

    // forget 80 -> 60 -> 40 -> 10, neighbour 70 -> 66 -> 50 -> 30.
    static readonly IReadOnlyList<TrajectoryPoint> Falling = T([80, 60, 40, 10], [70, 66, 50, 30]);

    [Fact]
    public void A_level_between_two_points_is_interpolated_linearly_in_forget_at_the_first_crossing()
    {
        // 50 lies halfway from 60 to 40: halfway from 66 to 50.
        Assert.Equal(58, EqualForgetting.At(Falling, KeptFigure.NeighbourAll, 50)!.Value, 12);
        // 35 lies 5/30 of the way from 40 to 10: 50 - 20/6; 20 lies 20/30 of the way: 50 - 40/3.
        Assert.Equal(50 - 20.0 / 6, EqualForgetting.At(Falling, KeptFigure.NeighbourAll, 35)!.Value, 12);
        Assert.Equal(50 - 40.0 / 3, EqualForgetting.At(Falling, KeptFigure.NeighbourAll, 20)!.Value, 12);
        // Forget rises again after crossing 50 (45 -> 60 -> 30): the first crossing (80 -> 45) counts, 6/7 of the way.
        var bouncing = T([80, 45, 60, 30], [70, 63, 40, 20]);
        Assert.Equal(70 - 7 * 30.0 / 35, EqualForgetting.At(bouncing, KeptFigure.NeighbourAll, 50)!.Value, 12);
    }

    [Fact]
    public void A_point_exactly_at_the_level_gives_its_own_value()
    {
        var exact = T([80, 35, 20], [70, 61, 55]);
        Assert.Equal(61, EqualForgetting.At(exact, KeptFigure.NeighbourAll, 35));
        Assert.Equal(55, EqualForgetting.At(exact, KeptFigure.NeighbourAll, 20));
        Assert.Equal(70 - 9 * 30.0 / 45, EqualForgetting.At(exact, KeptFigure.NeighbourAll, 50)!.Value, 12);
    }

    [Fact]
    public void A_level_never_reached_is_missing_and_a_model_already_below_it_keeps_its_value()
    {
        var shallow = T([80, 60, 40], [70, 66, 50]);
        Assert.Null(EqualForgetting.At(shallow, KeptFigure.NeighbourAll, 35));
        Assert.Null(EqualForgetting.At(shallow, KeptFigure.NeighbourAll, 20));
        Assert.Null(EqualForgetting.At([], KeptFigure.NeighbourAll, 50));
        var already = T([30, 10], [60, 40]);
        Assert.Equal(60, EqualForgetting.At(already, KeptFigure.NeighbourAll, 50));
        Assert.Equal(60, EqualForgetting.At(already, KeptFigure.NeighbourAll, 35));
        Assert.Equal(60 - 20 * 10.0 / 20, EqualForgetting.At(already, KeptFigure.NeighbourAll, 20)!.Value, 12);
    }

    [Fact]
    public void A_figure_measured_at_some_points_only_is_interpolated_between_those()
    {
        // Retain QA at the model before (forget 80) and the last point (forget 10): 50 lies 30/70 of the way.
        var sparse = T([80, 60, 40, 10], [70, 66, 50, 30], [90, null, null, 60]);
        Assert.Equal(90 - 30 * 30.0 / 70, EqualForgetting.At(sparse, KeptFigure.RetainQA, 50)!.Value, 12);
        Assert.Null(EqualForgetting.At(sparse, KeptFigure.MultipleChoice, 50));
    }

    [Fact]
    public void A_non_finite_score_is_refused_naming_the_point()
    {
        var e = Assert.Throws<InvalidDataException>(() => EqualForgetting.At(T([80, double.NaN], [70, 60]), KeptFigure.NeighbourAll, 50));
        Assert.Contains("point 1", e.Message);
    }

    [Fact]
    public void The_area_is_the_mean_neighbour_over_forget_from_before_to_20()
    {
        // Trapezoids 80->60 (70, 66), 60->40 (66, 50), 40->20 (50, 50 - 40/3): (1360 + 1160 + 2600/3) / 60 = 508/9.
        Assert.Equal(508.0 / 9, EqualForgetting.Area(Falling)!.Value, 12);
        // A flat neighbour curve has its own value as the area, however the points lie.
        Assert.Equal(55, EqualForgetting.Area(T([90, 85, 31, 12], [55, 55, 55, 55]))!.Value, 12);
        // A segment where forget rises counts negatively: 80 -> 40 at neighbour 60 -> 60, back 40 -> 60 at 60 -> 20, down
        // 60 -> 20 at 20 -> 60: (40 * 60 - 20 * 40 + 40 * 40) / 60 = 3200 / 60.
        Assert.Equal(3200.0 / 60, EqualForgetting.Area(T([80, 40, 60, 20], [60, 60, 20, 60]))!.Value, 12);
        Assert.Null(EqualForgetting.Area(T([80, 60, 40], [70, 66, 50])));   // never reaches 20
        Assert.Null(EqualForgetting.Area(T([20, 10], [70, 66])));           // already at 20 before
    }

    // ---- the bootstrap ----

    [Fact]
    public void SplitMix64_gives_the_published_sequence()
    {
        // The reference outputs of SplitMix64 from seed 0 (Vigna's splitmix64.c; also /tmp boot.py, see below).
        var random = new SplitMix64(0);
        Assert.Equal([16294208416658607535UL, 7960286522194355700UL, 487617019471545679UL], new[] { random.Next(), random.Next(), random.Next() });
    }

    [Fact]
    public void The_bootstrap_interval_of_a_known_sample_matches_an_independent_implementation()
    {
        // Expected values from a 25-line Python script written for this test (SplitMix64, index = (next * n) >> 64 with
        // Python's big integers, the two-stage draw and the percentile indices floor(0.025 B), ceil(0.975 B) - 1).
        var one = Bootstrap.Of([.. new double[] { 1, 2, 3, 4, 10 }.Select(v => ("a", v))])!;
        Assert.Equal(new Estimate(4.0, 1.8, 7.0, 5), one);
        var two = Bootstrap.Of([("a", 1), ("a", 2), ("b", 5), ("b", 7), ("b", 9)])!;
        Assert.Equal(new Estimate(4.8, 1.25, 8.0, 5), two);
        Assert.Equal(new Estimate(4.0, 2.4, 7.0, 5), Bootstrap.Of([.. new double[] { 1, 2, 3, 4, 10 }.Select(v => ("a", v))], replicates: 10, seed: 7));
    }

    [Fact]
    public void The_bootstrap_is_degenerate_for_a_constant_sample_and_lies_within_the_values()
    {
        Assert.Equal(new Estimate(3, 3, 3, 4), Bootstrap.Of([("a", 3), ("a", 3), ("b", 3), ("b", 3)]));
        Assert.Null(Bootstrap.Of([]));
        var values = Enumerable.Range(0, 12).Select(i => ("w" + (i % 3), (double)(i * i % 7))).ToList();
        var e = Bootstrap.Of(values)!;
        Assert.InRange(e.Low, values.Min(v => v.Item2), e.High);
        Assert.InRange(e.High, e.Low, values.Max(v => v.Item2));
        Assert.Equal(e, Bootstrap.Of(values));   // the same seed, the same interval
    }

    [Fact]
    public void Paired_differences_use_only_the_people_both_have()
    {
        // p1: 60 - 55 = 5, p2: 50 - 52 = -2; p3 and p4 have one method only. Interval from the same Python script.
        var d = Bootstrap.Paired([("w", "p1", 60), ("w", "p2", 50), ("w", "p3", 40)], [("w", "p1", 55), ("w", "p2", 52), ("w", "p4", 10)])!;
        Assert.Equal(new Estimate(1.5, -2, 5, 2), d);
        // The same person in another world is another person.
        Assert.Null(Bootstrap.Paired([("w1", "p1", 60)], [("w2", "p1", 55)]));
        // A method that keeps 3 points more on everyone: a degenerate interval at 3.
        Assert.Equal(new Estimate(3, 3, 3, 3), Bootstrap.Paired([("w", "p1", 13), ("w", "p2", 23), ("v", "p1", 33)], [("w", "p1", 10), ("w", "p2", 20), ("v", "p1", 30)]));
    }

    [Fact]
    public void The_comparison_line_says_who_keeps_more_or_that_there_is_no_clear_difference()
    {
        Assert.Equal("ATU keeps 2.5 more neighbour All than GA at forget 35 [0.4, 4.1] (n=5)",
            EqualForgettingReport.Verdict("ATU", "GA", "neighbour All", "at forget 35", new Estimate(2.5, 0.4, 4.1, 5)));
        Assert.Equal("GA keeps 2.5 more neighbour All than ATU at forget 35 [0.4, 4.1] (n=5)",
            EqualForgettingReport.Verdict("ATU", "GA", "neighbour All", "at forget 35", new Estimate(-2.5, -4.1, -0.4, 5)));
        Assert.Equal("no clear difference between ATU and GA in neighbour All at forget 35 (ATU minus GA 1.0 [-0.5, 2.5], n=5)",
            EqualForgettingReport.Verdict("ATU", "GA", "neighbour All", "at forget 35", new Estimate(1, -0.5, 2.5, 5)));
        // An interval that ends at 0 covers it.
        Assert.StartsWith("no clear difference", EqualForgettingReport.Verdict("A", "B", "x", "at forget 35", new Estimate(1, 0, 2.5, 5)));
        Assert.Contains("n=0", EqualForgettingReport.Verdict("A", "B", "x", "at forget 35", null));
    }

    [Fact]
    public void The_report_gives_every_cell_its_n_and_the_verdicts_from_the_trajectories()
    {
        // Two people; A keeps 10 points more neighbour than B at every forget level on both; only p1's B run reaches 35.
        PersonTrajectory Run(string method, string person, double[] forget, double[] neighbour) => new(method, "seed 1", person, T(forget, neighbour));
        var runs = new List<PersonTrajectory>
        {
            Run("A", "p1", [80, 40, 10], [70, 70, 70]), Run("A", "p2", [80, 40, 10], [60, 60, 60]),
            Run("B", "p1", [80, 40, 10], [60, 60, 60]), Run("B", "p2", [80, 40], [50, 50]),
        };
        var text = EqualForgettingReport.Markdown(runs, "A");
        Assert.Contains("| A | 65.0 [60.0, 70.0] (n=2) | 65.0 [60.0, 70.0] (n=2) | 65.0 [60.0, 70.0] (n=2) | 65.0 [60.0, 70.0] (n=2) |", text);
        Assert.Contains("| B | 55.0 [50.0, 60.0] (n=2) | 60.0 [60.0, 60.0] (n=1) | 60.0 [60.0, 60.0] (n=1) | 60.0 [60.0, 60.0] (n=1) |", text);
        Assert.Contains("| B | 10.0 [10.0, 10.0] (n=2) | 10.0 [10.0, 10.0] (n=1) | 10.0 [10.0, 10.0] (n=1) | 10.0 [10.0, 10.0] (n=1) |", text);
        Assert.Contains("| A | – (n=0) | – (n=0) | – (n=0) |", text);   // retain QA: not measured
        Assert.Contains("A keeps 10.0 more neighbour All than B at forget 35 [10.0, 10.0] (n=1)", text);
        // The plot joins B's 50 (p1, p2) and 35 (p1) points? No: different people. 35 and 20 (p1 both): yes.
        var b = EqualForgettingPlot.Points(runs, "B");
        Assert.Equal([false, true, false], b.Select(p => p.JoinsNext));
        Assert.All(EqualForgettingPlot.Points(runs, "A").SkipLast(1), p => Assert.True(p.JoinsNext));
        Assert.True(EqualForgettingPlot.RenderPng(runs).Length > 0);
    }

    [Fact]
    public void The_trajectory_of_a_run_holds_the_model_before_and_every_scored_row()
    {
        var before = new ProbeScores(80, 70, new Dictionary<string, double> { ["Gen"] = 55 }, new Dictionary<string, double> { [Trajectory.ForgetFB] = 85, [Trajectory.NeighbourQA] = 66 });
        StageRecord Row(int stage, double? forget) => new(stage, 0, 1, 0, 0, forget, forget is null ? null : forget - 5);
        var points = Trajectory.Of(before, [Row(1, 60), Row(2, null), Row(3, 30)]);
        Assert.Equal([0, 1, 3], points.Select(p => p.Point));
        Assert.Equal((85.0, 66.0, 55.0), (points[0].ForgetFB!.Value, points[0].NeighbourQA!.Value, points[0].MultipleChoice!.Value));
        Assert.Equal([80.0, 60, 30], points.Select(p => p.ForgetAll!.Value));
        Assert.Equal([70.0, 55, 25], points.Select(p => p.NeighbourAll!.Value));
        Assert.Equal(points, Trajectory.FromJson(Trajectory.ToJson(points), "test"));
        Assert.Throws<InvalidDataException>(() => Trajectory.FromJson("{", "bad.json"));
    }
}
