using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using AlignThenUnlearn.Models;

namespace AlignThenUnlearn.Sweeps;

/// <summary>Runs one cell: its command as a child process, output appended to the cell's log, the attempt recorded,
/// the done marker written after exit code 0. The local runner and every Slurm array task (`atu sweep cell`) run
/// cells through here, so both count attempts alike.</summary>
public static class CellRunner
{
    /// <summary>The most cells `sweep run --local` runs at once: each is a process with a model in memory.</summary>
    public const int MaxParallel = 256;

    /// <summary>The cell's exit code: 0 when done (now or before), the command's code when it failed, 143 when
    /// terminated (SIGTERM: a requeue or a cancel), 3 when it was given up before (failed twice).</summary>
    /// <param name="childOf">The program line that starts a cell's command as a child that dies with this process
    /// (<see cref="ChildProcess.Wrap"/>; null: the command is started as it is).</param>
    public static int Run(string sweepFolder, SweepManifest manifest, int index, Action<string>? say = null, CancellationToken cancel = default,
        string[]? childOf = null)
    {
        if (index < 0 || index >= manifest.Cells.Length)
            throw new ArgumentOutOfRangeException(nameof(index), $"cell {index}: the sweep in '{sweepFolder}' has cells 0-{manifest.Cells.Length - 1}");
        var cell = manifest.Cells[index];
        var folder = Path.Combine(sweepFolder, cell.Folder);
        Directory.CreateDirectory(folder);
        // One runner per cell at a time (two `sweep run` on one sweep, or a local run beside Slurm tasks): the second waits
        // for the first, then finds the cell done, instead of starting a command that fails on the run's lock.
        using var claim = ClaimCell(folder, cell, say, cancel);
        if (claim is null) return 143;
        var state = CellState.Read(folder);
        if (state.Done) { say?.Invoke($"{cell.Name}: done before"); return 0; }
        if (state.GivenUp) { say?.Invoke($"{cell.Name}: failed {state.Failures} times, not started again (see {Path.Combine(folder, CellState.LogFile)})"); return 3; }

        // A command of a runner killed with SIGKILL dies with it (ChildProcess), but may still be releasing the run's
        // lock: wait for it rather than record a failure that is none.
        if (!WaitForRunLock(cell, say, cancel)) return RunLockedCode;

        var where = Environment.GetEnvironmentVariable("SLURM_JOB_ID") is string job
            ? $"slurm {Environment.GetEnvironmentVariable("SLURM_ARRAY_JOB_ID") ?? job}_{Environment.GetEnvironmentVariable("SLURM_ARRAY_TASK_ID")} restart {Environment.GetEnvironmentVariable("SLURM_RESTART_COUNT") ?? "0"}"
            : $"local pid {Environment.ProcessId}";
        Record(folder, $"start {Now()} {Environment.MachineName} {where}");
        using var log = new StreamWriter(Path.Combine(folder, CellState.LogFile), append: true) { AutoFlush = true };
        log.WriteLine($"{CellState.AttemptHeader}{Now()} {SweepPlanner.ShellLine([.. manifest.Atu, .. cell.Command])}");
        string[] argv = [.. manifest.Atu, .. cell.Command];
        if (childOf is not null) argv = ChildProcess.Wrap(childOf, argv);
        var start = new ProcessStartInfo(argv[0]) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var word in argv.Skip(1)) start.ArgumentList.Add(word);
        start.Environment["NO_COLOR"] = "1";   // plain log lines
        using var process = new Process { StartInfo = start };
        var gate = new object();
        void Line(string? line) { if (line is not null) lock (gate) log.WriteLine(line); }
        process.OutputDataReceived += (_, e) => Line(e.Data);
        process.ErrorDataReceived += (_, e) => Line(e.Data);
        bool terminated = false;
        // Slurm signals every process of a requeued or cancelled task (Ctrl-C every process of a local run): the command
        // stops, and this attempt is noted as terminated (not failed) before this process exits too.
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context => { terminated = true; context.Cancel = true; });
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, context => { terminated = true; context.Cancel = true; });   // Ctrl-C of a local run
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        using (cancel.Register(() => { terminated = true; try { process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { } }))
            process.WaitForExit();
        int code = process.ExitCode;
        if (terminated)
        {
            Record(folder, $"terminated {Now()} exit {code}");
            say?.Invoke($"{cell.Name}: terminated");
            return 143;
        }
        Record(folder, $"exit {code} {Now()}");
        if (code == 0) AtomicFile.WriteAllBytes(Path.Combine(folder, CellState.DoneFile), System.Text.Encoding.UTF8.GetBytes(Now() + "\n"));
        say?.Invoke(code == 0 ? $"{cell.Name}: done" : $"{cell.Name}: failed (exit {code}); {string.Join(" | ", CellState.LogTail(folder, 2))}");
        return code;
    }

    /// <summary>A cell's exit code when its run folder stayed locked by a process this runner did not start.</summary>
    public const int RunLockedCode = 75;

    /// <summary>How long a runner waits for the lock of a run folder (the command of a killed runner dying).</summary>
    public static TimeSpan RunLockWait { get; set; } = TimeSpan.FromSeconds(30);

    const string RunnerLockFile = ".runner.lock", RunLockFile = ".lock";
    static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(200);

    /// <summary>An exclusive lock (flock; the OS drops it when the process dies, also by SIGKILL) on the cell's runner
    /// lock file, waited for while another runner holds it; null when cancelled while waiting.</summary>
    static FileStream? ClaimCell(string folder, SweepCell cell, Action<string>? say, CancellationToken cancel)
    {
        bool told = false;
        while (true)
        {
            if (TryLock(Path.Combine(folder, RunnerLockFile)) is FileStream held) return held;
            if (!told) say?.Invoke($"{cell.Name}: another runner is running it; waiting for it to end");
            told = true;
            if (cancel.WaitHandle.WaitOne(Poll)) return null;
        }
    }

    /// <summary>Waits (up to <see cref="RunLockWait"/>) until no process holds the lock `atu run` takes in the run folder.</summary>
    static bool WaitForRunLock(SweepCell cell, Action<string>? say, CancellationToken cancel)
    {
        var path = Path.Combine(cell.Run, RunLockFile);
        var clock = Stopwatch.StartNew();
        while (File.Exists(path))
        {
            using (var probe = TryLock(path)) if (probe is not null) return true;
            if (clock.Elapsed > RunLockWait || cancel.WaitHandle.WaitOne(Poll))
            {
                say?.Invoke($"{cell.Name}: its run folder '{cell.Run}' is locked by a process this runner did not start (an `atu run` in it?); not started, no failure recorded");
                return false;
            }
        }
        return true;
    }

    static FileStream? TryLock(string path)
    {
        try { return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None); }
        catch (IOException) { return null; }
    }

    static string Now() => DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture);

    static void Record(string folder, string line) => File.AppendAllText(Path.Combine(folder, CellState.AttemptsFile), line + "\n");

    /// <summary>`atu sweep run --local`: every cell not done and not given up, <paramref name="parallel"/> at a time.
    /// Returns the number of cells not done at the end.</summary>
    public static int RunLocal(string sweepFolder, int parallel, Action<string> say, CancellationToken cancel = default, string[]? childOf = null)
    {
        if (parallel < 1 || parallel > MaxParallel) throw new ArgumentException($"--parallel {parallel}: expected 1 to {MaxParallel} cells at once");
        var manifest = SweepManifest.Read(sweepFolder);
        var todo = manifest.Cells.Where(c => !CellState.Read(Path.Combine(sweepFolder, c.Folder)).Done).ToList();
        say($"{manifest.Cells.Length - todo.Count} of {manifest.Cells.Length} cells done before; running {todo.Count}, {parallel} at a time");
        Parallel.ForEach(todo, new ParallelOptions { MaxDegreeOfParallelism = parallel, CancellationToken = cancel },
            cell => Run(sweepFolder, manifest, cell.Index, say, cancel, childOf));
        return manifest.Cells.Count(c => !CellState.Read(Path.Combine(sweepFolder, c.Folder)).Done);
    }
}

/// <summary>`atu sweep retry`: a given-up cell (failed <see cref="CellState.MaxFailures"/> times) runs again with the next
/// run or submit, without editing its attempts file by hand.</summary>
public static class CellRetry
{
    /// <summary>Marks the cells named by <paramref name="cells"/> (an index or a name; null: every failed cell) for a
    /// retry; returns the names of the cells marked.</summary>
    public static IReadOnlyList<string> Mark(string sweepFolder, string? cells)
    {
        var manifest = SweepManifest.Read(sweepFolder);
        IEnumerable<SweepCell> chosen = cells is null
            ? manifest.Cells.Where(c => CellState.Read(Path.Combine(sweepFolder, c.Folder)) is { Done: false, Failures: > 0 })
            : [Find(manifest, sweepFolder, cells)];
        var marked = new List<string>();
        foreach (var cell in chosen)
        {
            var folder = Path.Combine(sweepFolder, cell.Folder);
            var state = CellState.Read(folder);
            if (state.Done) throw new InvalidOperationException($"cell {cell.Index} ({cell.Name}) is done; there is nothing to retry");
            if (state.Failures == 0) throw new InvalidOperationException($"cell {cell.Index} ({cell.Name}) has not failed (since its last retry); the next run starts it anyway");
            File.AppendAllText(Path.Combine(folder, CellState.AttemptsFile), $"{CellState.RetryLine}{DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture)} after {state.Failures} failure(s)\n");
            marked.Add(cell.Name);
        }
        return marked;
    }

    static SweepCell Find(SweepManifest manifest, string sweepFolder, string cell) =>
        (int.TryParse(cell, NumberStyles.None, CultureInfo.InvariantCulture, out var index) && index < manifest.Cells.Length ? manifest.Cells[index] : null)
        ?? manifest.Cells.FirstOrDefault(c => c.Name == cell)
        ?? throw new ArgumentException($"atu sweep retry: '{cell}' is neither a cell index (0-{manifest.Cells.Length - 1}) nor a cell name of the sweep in '{sweepFolder}'");
}
