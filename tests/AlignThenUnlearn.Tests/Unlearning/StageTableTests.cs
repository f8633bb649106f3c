using AlignThenUnlearn.Unlearning;

namespace AlignThenUnlearn.Tests.Unlearning;

public class StageTableTests
{
    [Fact]
    public void Each_threshold_names_the_first_stage_below_it_only()
    {
        var t = new ThresholdCheckpoints([50, 35, 20]);
        Assert.Empty(t.Observe(0, 61.0));
        Assert.Equal([50.0], t.Observe(1, 49.9));
        Assert.Empty(t.Observe(2, 52.0));              // rising again does not re-arm a threshold
        Assert.Empty(t.Observe(3, 40.0));
        Assert.Equal([35.0, 20.0], t.Observe(4, 12.5)); // one stage may cross several
        Assert.Empty(t.Observe(5, 5.0));
        Assert.Equal(new Dictionary<double, int> { [50] = 1, [35] = 4, [20] = 4 }, t.Crossed);
        Assert.Equal("forget-below-35", ThresholdCheckpoints.NameOf(35));
    }

    [Fact]
    public void Stage_table_round_trips_and_renders_one_row_per_stage()
    {
        StageRecord[] rows = [new(1, 0.9, 0.0123, -0.81, 0.42, 48.25, 70.5, "forget-below-50"), new(2, 0.8, 0, -0.8, 0.31, 30, 69, null)];
        Assert.Equal(rows, StageTable.FromJson(StageTable.ToJson(rows)));
        var md = StageTable.ToMarkdown(rows).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(4, md.Length);
        Assert.Equal("| 1 | 0.9 | 0.0123 | -0.8100 | 0.420 | 48.3 | 70.5 | forget-below-50 |", md[2]);
    }
}
