using AlignThenUnlearn.Runtime;

namespace AlignThenUnlearn.Benchmarks;

/// <summary>ONNX Runtime's profile of a session (<see cref="OnnxRuntimeProfile"/>) as the benchmarks print it: the time per
/// run, the kernels' share and the top op types.</summary>
static class ProfilePrinter
{
    const int TopOpTypes = 12;

    /// <summary>The profile files a session opened with <paramref name="prefix"/> wrote (ONNX Runtime appends a time stamp).</summary>
    public static IEnumerable<string> Files(string prefix) =>
        Directory.EnumerateFiles(Path.GetDirectoryName(prefix)!, Path.GetFileName(prefix) + "_*.json");

    /// <param name="measured">The median time of the call that runs the session, as timed by the benchmark (ms).</param>
    public static void Print(string role, string file, OnnxRuntimeProfile profile, double measured)
    {
        Console.WriteLine($"    ONNX Runtime's profile of the {role} ({Path.GetFileName(file)}, {profile.Runs} runs): {profile.RunMilliseconds:F2} ms per run " +
            $"(the call around it {measured:F2} ms: binding, copies and results {measured - profile.RunMilliseconds:F2} ms), kernels {profile.KernelMilliseconds:F2} ms " +
            $"(the executor between them {profile.RunMilliseconds - profile.KernelMilliseconds:F2} ms), {profile.NodesPerRun:F0} nodes run");
        Console.WriteLine($"      {"op type",-28} {"ms/run",8} {"share",6} {"nodes",6}");
        foreach (var op in profile.ByOpType.Take(TopOpTypes))
            Console.WriteLine($"      {op.OpType,-28} {op.MillisecondsPerRun,8:F3} {100 * op.ShareOfRun,5:F1}% {op.NodesPerRun,6:F0}");
        if (profile.ByOpType.Count > TopOpTypes)
        {
            var rest = profile.ByOpType.Skip(TopOpTypes).ToList();
            Console.WriteLine($"      {$"({rest.Count} other op types)",-28} {rest.Sum(r => r.MillisecondsPerRun),8:F3} {100 * rest.Sum(r => r.ShareOfRun),5:F1}% {rest.Sum(r => r.NodesPerRun),6:F0}");
        }
    }
}
