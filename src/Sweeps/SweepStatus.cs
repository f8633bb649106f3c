namespace AlignThenUnlearn.Sweeps;

/// <summary>A cell's state as `atu sweep status` shows it: done, running, failed or left; detail says more (queued,
/// interrupted, the log tail of a failure).</summary>
public sealed record CellStatus(SweepCell Cell, string State, int Attempts, int Failures, string Detail)
{
    public const string Done = "done", Running = "running", Failed = "failed", Left = "left";
}

public static class SweepStatus
{
    /// <summary>Every cell's state from its folder and, where the sweep was submitted, Slurm's word on its array task
    /// (<paramref name="slurm"/>: task index -> Slurm state such as RUNNING, PENDING, COMPLETED).</summary>
    public static IReadOnlyList<CellStatus> Of(string sweepFolder, SweepManifest manifest, IReadOnlyDictionary<int, string>? slurm)
    {
        var result = new List<CellStatus>();
        foreach (var cell in manifest.Cells)
        {
            var folder = Path.Combine(sweepFolder, cell.Folder);
            var state = CellState.Read(folder);
            string? task = slurm is not null && slurm.TryGetValue(cell.Index, out var s) ? s : null;
            string Tail() => string.Join(" | ", CellState.LogTail(folder, 3));
            (string State, string Detail) shown =
                state.Done ? (CellStatus.Done, "") :
                state.GivenUp ? (CellStatus.Failed, $"failed {state.Failures} times, not retried: {Tail()}") :
                task is "RUNNING" or "COMPLETING" or "CONFIGURING" ? (CellStatus.Running, $"slurm {task.ToLowerInvariant()}") :
                task is "PENDING" or "REQUEUED" or "REQUEUE_HOLD" or "REQUEUE_FED" ? (CellStatus.Left, $"queued (slurm {task.ToLowerInvariant()})") :
                state.Failures > 0 ? (CellStatus.Failed, $"failed once (retried once by the next run or submit): {Tail()}") :
                state.Open && slurm is null ? (CellStatus.Running, "started, not ended (running, or interrupted: the next run resumes it)") :
                state.Open ? (CellStatus.Left, "interrupted; the next run or submit resumes it") :
                (CellStatus.Left, state.Attempts > 0 ? "terminated; the next run or submit resumes it" : "not started");
            result.Add(new CellStatus(cell, shown.State, state.Attempts, state.Failures, shown.Detail));
        }
        return result;
    }
}
