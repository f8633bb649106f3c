using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.Evaluation.Comparison;
using AlignThenUnlearn.Tests.Support;
using AlignThenUnlearn.ToyWorld;
using AlignThenUnlearn.Unlearning;

namespace AlignThenUnlearn.Tests.ToyWorld;

/// <summary>`atu toy`'s runs as trajectories: the stage table with retain QA and multiple choice merged in from the kept
/// checkpoints, ICU's checkpoints as points, trajectories.json round trip and the pooled report over several worlds.</summary>
public sealed class ToyTrajectoriesTests : IDisposable
{
    readonly TempFolder _temp = new();
    public void Dispose() => _temp.Dispose();

    static readonly RwkuTarget Ada = new(1, "Ada Quill", "1_Ada_Quill");
    static readonly RwkuTarget Bo = new(2, "Bo Lark", "2_Bo_Lark");

    /// <summary>Toy scores (fractions) with every forget part f, every neighbour part n, multiple choice mc, retain QA r.</summary>
    static ToyScores S(double f, double n, double mc, double r) => new(new RwkuScores(f, f, f, n, n, mc), r);

    static StageRecord Row(int stage, double forget, double neighbour, string? checkpoint = null) => new(stage, 0, 1, 0, 0, forget, neighbour, checkpoint);

    /// <summary>A trained run: before 80/70, stages at forget 60, 40 (kept, forget-below-50), 10 (kept, forget-below-35,
    /// -20 and final), neighbour shifted by <paramref name="kept"/>.</summary>
    static ToyMethodRun Trained(string method, RwkuTarget person, double kept) => new(method, person, S(.8, .7, .6, .9),
        [new("forget-below-50", S(.4, .5 + kept / 100, .55, .85), "w", 2), new("forget-below-35", S(.1, .3 + kept / 100, .5, .8), "w", 3), new("final", S(.1, .3 + kept / 100, .5, .8), "w", 3)],
        [Row(1, 60, 66 + kept), Row(2, 40, 50 + kept, "forget-below-50"), Row(3, 10, 30 + kept, "forget-below-35, forget-below-20")]);

    [Fact]
    public void A_trained_run_is_its_stage_table_with_the_kept_checkpoints_utility_merged_in()
    {
        var points = ToyTrajectories.Of(Trained("ATU", Ada, 0));
        Assert.Equal([0, 1, 2, 3], points.Select(p => p.Point));
        Assert.Equal([80.0, 60, 40, 10], points.Select(p => Math.Round(p.ForgetAll!.Value, 9)));
        Assert.Equal([70.0, 66, 50, 30], points.Select(p => Math.Round(p.NeighbourAll!.Value, 9)));
        Assert.Equal([90.0, null, 85, 80], points.Select(p => p.RetainQA is double r ? Math.Round(r, 9) : (double?)null));
        Assert.Equal([60.0, null, 55, 50], points.Select(p => p.MultipleChoice is double m ? Math.Round(m, 9) : (double?)null));
        Assert.Equal(80, points[0].ForgetFB!.Value, 9);
        // Retain QA at forget 50: between before (80, 90) and stage 2 (40, 85), 30/40 of the way.
        Assert.Equal(90 - 5 * 30.0 / 40, EqualForgetting.At(points, KeptFigure.RetainQA, 50)!.Value, 12);
    }

    [Fact]
    public void A_run_without_a_stage_table_has_its_checkpoints_as_points()
    {
        var icu = new ToyMethodRun("ICU", Ada, S(.8, .7, .6, .9), [new("final", S(.3, .6, .6, .9), "w")]);
        var points = ToyTrajectories.Of(icu);
        Assert.Equal([(0, 80.0, 70.0), (1, 30, 60)], points.Select(p => (p.Point, Math.Round(p.ForgetAll!.Value, 9), Math.Round(p.NeighbourAll!.Value, 9))));
    }

    [Fact]
    public void The_toy_report_and_the_pooled_report_of_several_worlds_read_the_trajectories()
    {
        var before = new RunSummary("before", [new TargetScores(1, "Ada Quill", new RwkuScores(.8, .8, .8, .7, .7, .6), new RwkuCounts(1, 1, 1, 1, 1, 1))]);
        IReadOnlyList<ToyMethodRun> World(double lead) => [Trained("ATU", Ada, lead), Trained("GA (F)", Ada, 0), Trained("ATU", Bo, lead), Trained("GA (F)", Bo, 0)];
        var markdown = ToyReport.Markdown(1, before, World(4));
        Assert.Contains("At equal forgetting (2 people, 1 world)", markdown);
        Assert.Contains("ATU keeps 4.0 more neighbour All than GA (F) at forget 35 [4.0, 4.0] (n=2)", markdown);
        Assert.Contains("## Table 1", markdown);   // the checkpoint table stays

        // Two worlds written as `atu toy` writes them, then pooled: four people, the lead 4 in one world and 2 in the other.
        int[] seeds = [1, 2];
        var root = _temp.File("toy");
        foreach (var seed in seeds)
        {
            var report = Path.Combine(ToyPooledReport.SeedFolder(root, seed), ToyPooledReport.ReportFolderName);
            Directory.CreateDirectory(report);
            ToyTrajectories.Write(Path.Combine(report, ToyTrajectories.FileName), ToyTrajectories.Of(seed, World(seed == 1 ? 4 : 2)));
        }
        var read = ToyTrajectories.Read(Path.Combine(ToyPooledReport.SeedFolder(root, 1), "report", ToyTrajectories.FileName));
        Assert.Equal(ToyTrajectories.Of(1, World(4)).SelectMany(r => r.Points), read.SelectMany(r => r.Points));
        Assert.Equal(["seed 1"], read.Select(r => r.World).Distinct());

        var table = File.ReadAllText(ToyPooledReport.Write(root, seeds));
        Assert.Contains("At equal forgetting (4 people, 2 worlds)", table);
        Assert.Contains("ATU keeps 3.0 more neighbour All than GA (F) at forget 35 [2.0, 4.0] (n=4)", table);
        Assert.True(File.Exists(Path.Combine(root, "report", EqualForgettingPlot.FileName)));
        // The same trajectories give the same report, byte for byte.
        Assert.Equal(table, File.ReadAllText(ToyPooledReport.Write(root, seeds)));
        Assert.Throws<FileNotFoundException>(() => ToyPooledReport.Write(root, [1, 3]));
    }
}
