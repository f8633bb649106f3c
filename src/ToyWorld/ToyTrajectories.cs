using System.Text;
using System.Text.Json;
using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.Evaluation.Comparison;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Unlearning;

namespace AlignThenUnlearn.ToyWorld;

/// <summary>The toy runs as trajectories for the equal-forgetting comparison, and report/trajectories.json (every run of
/// one world, read back when `atu toy --seeds` pools several worlds).</summary>
public static class ToyTrajectories
{
    public const string FileName = "trajectories.json";

    static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower, WriteIndented = true };

    /// <summary>"seed 1": the world of a seed, as the pooled comparison groups people.</summary>
    public static string WorldOf(int seed) => $"seed {seed}";

    /// <summary>A run's points in percent: the model before (point 0, every figure), then each stage-table row (forget and
    /// neighbour figures), with retain QA and multiple choice from the kept checkpoint evaluated at that row; a run without a
    /// stage table (ICU) has its checkpoints as points 1, 2, ...</summary>
    public static IReadOnlyList<TrajectoryPoint> Of(ToyMethodRun run)
    {
        var points = new List<TrajectoryPoint> { Point(0, "before", run.Before) };
        if (run.Stages is not { Count: > 0 } stages)
        {
            points.AddRange(run.Checkpoints.Select((c, i) => Point(i + 1, c.Label, c.Scores)));
            return points;
        }
        foreach (var point in Trajectory.Of(null, stages))
        {
            var kept = run.Checkpoints.FirstOrDefault(c => c.Stage == point.Point);
            points.Add(kept is null ? point : point with
            {
                Where = $"{point.Where} ({kept.Label})",
                RetainQA = Percent(kept.Scores.RetainQA),
                MultipleChoice = Percent(kept.Scores.Rwku.Mmlu),
            });
        }
        return points;
    }

    static double? Percent(double? fraction) => fraction is double f ? 100 * f : null;

    static TrajectoryPoint Point(int point, string where, ToyScores s) => new(point, where, Percent(s.Rwku.ForgetFB), Percent(s.Rwku.ForgetQA),
        Percent(s.Rwku.ForgetAA), Percent(s.Rwku.ForgetAll), Percent(s.Rwku.NeighborFB), Percent(s.Rwku.NeighborQA), Percent(s.Rwku.NeighborAll),
        Percent(s.RetainQA), Percent(s.Rwku.Mmlu));

    /// <summary>Every run of the world of <paramref name="seed"/>, a person named "NUMBER NAME".</summary>
    public static IReadOnlyList<PersonTrajectory> Of(int seed, IReadOnlyList<ToyMethodRun> runs) =>
        [.. runs.Select(r => new PersonTrajectory(r.Method, WorldOf(seed), $"{r.Target.Number} {r.Target.Name}", Of(r)))];

    public static void Write(string path, IReadOnlyList<PersonTrajectory> runs) =>
        AtomicFile.WriteAllBytes(path, Encoding.UTF8.GetBytes(JsonSerializer.Serialize(runs, Json)));

    public static IReadOnlyList<PersonTrajectory> Read(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"'{path}' is missing: the toy run of that world has not written its report", path);
        try { return JsonSerializer.Deserialize<List<PersonTrajectory>>(File.ReadAllBytes(path), Json) ?? throw new InvalidDataException($"'{path}' holds null, expected a list of runs"); }
        catch (JsonException e) { throw new InvalidDataException($"'{path}' is not a list of runs with their trajectories ({e.Message})", e); }
    }
}
