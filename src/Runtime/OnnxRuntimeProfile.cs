using System.Text.Json;

namespace AlignThenUnlearn.Runtime;

/// <summary>Time per run of one op type in an <see cref="OnnxRuntimeProfile"/>: milliseconds of its kernels per run,
/// their share of the run's wall time, and how many of its nodes ran per run.</summary>
public sealed record OpTypeTime(string OpType, double MillisecondsPerRun, double ShareOfRun, double NodesPerRun);

/// <summary>The profile ONNX Runtime writes for a session opened with profiling on (<see cref="SessionSettings.ProfilePrefix"/>):
/// a JSON array of trace events, one <c>model_run</c> event (category Session) per run and one <c>NAME_kernel_time</c> event
/// (category Node, <c>args.op_name</c>) per node and run, each with its start <c>ts</c> and duration <c>dur</c> in
/// microseconds. Read with the first runs left out (warm-up: the first run allocates and plans), it gives the mean
/// run, the mean sum of the kernels (the rest of a run is the executor's own work between them) and the kernels
/// aggregated by op type, slowest first.</summary>
public sealed class OnnxRuntimeProfile
{
    /// <summary>Runs counted (after the skipped ones).</summary>
    public int Runs { get; }
    /// <summary>Mean wall time of a counted run (ONNX Runtime's <c>model_run</c> event).</summary>
    public double RunMilliseconds { get; }
    /// <summary>Mean sum of the kernel times of a counted run.</summary>
    public double KernelMilliseconds { get; }
    /// <summary>Kernels run per counted run (the nodes of the graph as ONNX Runtime optimised it).</summary>
    public double NodesPerRun => ByOpType.Sum(o => o.NodesPerRun);
    /// <summary>Slowest first (ties by name).</summary>
    public IReadOnlyList<OpTypeTime> ByOpType { get; }

    OnnxRuntimeProfile(int runs, double runMs, double kernelMs, IReadOnlyList<OpTypeTime> byOpType) =>
        (Runs, RunMilliseconds, KernelMilliseconds, ByOpType) = (runs, runMs, kernelMs, byOpType);

    public static OnnxRuntimeProfile Read(string path, int skipRuns = 0) => Parse(File.ReadAllText(path), skipRuns, path);

    /// <param name="source">Names the profile in error messages (its file).</param>
    public static OnnxRuntimeProfile Parse(string json, int skipRuns = 0, string source = "the profile")
    {
        if (skipRuns < 0) throw new ArgumentOutOfRangeException(nameof(skipRuns), skipRuns, "runs to skip cannot be negative");
        JsonElement events;
        try { events = JsonDocument.Parse(json).RootElement; }
        catch (JsonException e) { throw new InvalidDataException($"{source} is not JSON: {e.Message}", e); }
        if (events.ValueKind != JsonValueKind.Array) throw new InvalidDataException($"{source}: expected ONNX Runtime's array of trace events, found a JSON {events.ValueKind}");

        var runs = new List<(long Start, long Duration)>();
        var kernels = new List<(long Start, long Duration, string OpType)>();
        int index = 0;
        foreach (var e in events.EnumerateArray())
        {
            string Where() => $"{source}, event {index}";
            if (e.ValueKind != JsonValueKind.Object) throw new InvalidDataException($"{Where()}: expected an object");
            string category = String(e, "cat"), name = String(e, "name");
            if (category == "Session" && name == "model_run") runs.Add((Number(e, "ts", Where), Number(e, "dur", Where)));
            else if (category == "Node" && name.EndsWith("_kernel_time", StringComparison.Ordinal))
            {
                var op = e.TryGetProperty("args", out var args) && args.ValueKind == JsonValueKind.Object && args.TryGetProperty("op_name", out var o) && o.ValueKind == JsonValueKind.String
                    ? o.GetString()! : throw new InvalidDataException($"{Where()}: kernel event '{name}' has no args.op_name");
                kernels.Add((Number(e, "ts", Where), Number(e, "dur", Where), op));
            }
            index++;
        }
        runs.Sort();
        if (runs.Count <= skipRuns)
            throw new InvalidDataException($"{source} holds {runs.Count} runs (model_run events); {skipRuns} are skipped as warm-up, so none is left to count");

        // Sessions run one at a time, so every kernel from the first counted run's start on belongs to a counted run.
        long from = runs[skipRuns].Start;
        var counted = runs.Skip(skipRuns).ToList();
        double n = counted.Count, runMicroseconds = counted.Sum(r => (double)r.Duration);
        var inRuns = kernels.Where(k => k.Start >= from).ToList();
        var byOp = inRuns.GroupBy(k => k.OpType)
            .Select(g => new OpTypeTime(g.Key, g.Sum(k => (double)k.Duration) / n / 1000, runMicroseconds > 0 ? g.Sum(k => (double)k.Duration) / runMicroseconds : 0, g.Count() / n))
            .OrderByDescending(o => o.MillisecondsPerRun).ThenBy(o => o.OpType, StringComparer.Ordinal).ToList();
        return new OnnxRuntimeProfile(counted.Count, runMicroseconds / n / 1000, inRuns.Sum(k => (double)k.Duration) / n / 1000, byOp);
    }

    static string String(JsonElement e, string property) =>
        e.TryGetProperty(property, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString()! : "";

    static long Number(JsonElement e, string property, Func<string> where) =>
        e.TryGetProperty(property, out var value) && value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out var number) ? number
        : throw new InvalidDataException($"{where()}: '{property}' is not a whole number of microseconds");
}
