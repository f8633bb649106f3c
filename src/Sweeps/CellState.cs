namespace AlignThenUnlearn.Sweeps;

/// <summary>What a cell's folder says about it: the done marker (written only after its command exited 0) and the
/// attempts file (a line when an attempt starts, one when it ends: its exit code, or "terminated" when the scheduler
/// stopped it, e.g. a Slurm requeue, which is not a failure).</summary>
public sealed record CellState(bool Done, int Attempts, int Failures, bool Open, string? LastLine)
{
    public const string DoneFile = "done", AttemptsFile = "attempts.log", LogFile = "log.txt", RunFolder = "run";
    /// <summary>A cell whose command failed this many times is not started again (it is reported).</summary>
    public const int MaxFailures = 2;

    public bool GivenUp => !Done && Failures >= MaxFailures;

    public static CellState Read(string cellFolder)
    {
        var lines = File.Exists(Path.Combine(cellFolder, AttemptsFile)) ? File.ReadAllLines(Path.Combine(cellFolder, AttemptsFile)) : [];
        int starts = lines.Count(l => l.StartsWith("start ", StringComparison.Ordinal));
        int ends = lines.Count(l => l.StartsWith("exit ", StringComparison.Ordinal) || l.StartsWith("terminated ", StringComparison.Ordinal));
        int failures = lines.Count(l => l.StartsWith("exit ", StringComparison.Ordinal) && !l.StartsWith("exit 0 ", StringComparison.Ordinal));
        return new CellState(File.Exists(Path.Combine(cellFolder, DoneFile)), starts, failures, starts > ends, lines.LastOrDefault());
    }

    /// <summary>The last lines of the command's output in the cell's log (without the lines that head each attempt).</summary>
    public static IReadOnlyList<string> LogTail(string cellFolder, int lines = 5)
    {
        var path = Path.Combine(cellFolder, LogFile);
        return File.Exists(path) ? File.ReadLines(path).Where(l => l.Trim().Length > 0 && !l.StartsWith(AttemptHeader, StringComparison.Ordinal)).TakeLast(lines).ToList() : [];
    }

    /// <summary>How the log line that heads an attempt (its time and command line) starts.</summary>
    public const string AttemptHeader = "== ";
}
