using System.Text.Json;
using System.Text.Json.Serialization;

namespace AlignThenUnlearn.Unlearning;

/// <summary>One evaluation point of a run, in percent: <see cref="Point"/> 0 is the model before unlearning, then the
/// stage-table rows (ATU's stages, a baseline's evaluations). A figure the point did not measure is null (the stage
/// evaluations of a run measure forget and neighbour probes, multiple choice only when the preset's stage_tasks ask for
/// mmlu, retain QA never; `atu toy` adds retain QA and multiple choice at its kept checkpoints).</summary>
public sealed record TrajectoryPoint(int Point, string Where, double? ForgetFB, double? ForgetQA, double? ForgetAA, double? ForgetAll,
    double? NeighbourFB, double? NeighbourQA, double? NeighbourAll, double? RetainQA = null, double? MultipleChoice = null);

/// <summary>trajectory.json: every evaluation point of one run (the model before, then each stage-table row), written by
/// <see cref="RunHarness"/> beside the stage table so that every method's run has one.</summary>
public static class Trajectory
{
    public const string FileName = "trajectory.json";
    /// <summary>The keys of <see cref="StageRecord.Probes"/> and <see cref="ProbeScores.Probes"/>.</summary>
    public const string ForgetFB = "forget_fb", ForgetQA = "forget_qa", ForgetAA = "forget_aa", NeighbourFB = "neighbour_fb", NeighbourQA = "neighbour_qa";
    /// <summary>The stage-task figure that is the multiple-choice accuracy (RWKU's MMLU column, "Gen").</summary>
    public const string MultipleChoiceFigure = "Gen";

    static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower, WriteIndented = true, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    /// <summary>The points of a run: the model before (when scored), then one per stage-table row that has scores.</summary>
    public static IReadOnlyList<TrajectoryPoint> Of(ProbeScores? before, IReadOnlyList<StageRecord> records)
    {
        var points = new List<TrajectoryPoint>();
        if (before is not null) points.Add(Point(0, "before", before.ForgetAverage, before.NeighbourAverage, before.Probes, before.Utility));
        foreach (var r in records.Where(r => r.ForgetAverage is not null))
            points.Add(Point(r.Stage, $"stage {r.Stage}", r.ForgetAverage, r.NeighbourAverage, r.Probes, r.Utility));
        return points;
    }

    static TrajectoryPoint Point(int point, string where, double? forget, double? neighbour, IReadOnlyDictionary<string, double>? probes, IReadOnlyDictionary<string, double>? utility)
    {
        double? Part(string key) => probes?.TryGetValue(key, out var v) == true ? v : null;
        return new(point, where, Part(ForgetFB), Part(ForgetQA), Part(ForgetAA), forget, Part(NeighbourFB), Part(NeighbourQA), neighbour,
            null, utility?.TryGetValue(MultipleChoiceFigure, out var mc) == true ? mc : null);
    }

    public static string ToJson(IReadOnlyList<TrajectoryPoint> points) => JsonSerializer.Serialize(points, Json);

    /// <summary>The points of a trajectory.json (<paramref name="source"/> names it in errors).</summary>
    public static IReadOnlyList<TrajectoryPoint> FromJson(string json, string source)
    {
        try { return JsonSerializer.Deserialize<List<TrajectoryPoint>>(json, Json) ?? throw new InvalidDataException($"'{source}' holds null, expected a list of evaluation points"); }
        catch (JsonException e) { throw new InvalidDataException($"'{source}' is not a list of evaluation points ({e.Message})", e); }
    }
}
