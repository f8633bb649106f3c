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
    /// <summary>The cell's exit code: 0 when done (now or before), the command's code when it failed, 143 when
    /// terminated (SIGTERM: a requeue or a cancel), 3 when it was given up before (failed twice).</summary>
    public static int Run(string sweepFolder, SweepManifest manifest, int index, Action<string>? say = null, CancellationToken cancel = default)
    {
        if (index < 0 || index >= manifest.Cells.Length)
            throw new ArgumentOutOfRangeException(nameof(index), $"cell {index}: the sweep in '{sweepFolder}' has cells 0-{manifest.Cells.Length - 1}");
        var cell = manifest.Cells[index];
        var folder = Path.Combine(sweepFolder, cell.Folder);
        Directory.CreateDirectory(folder);
        var state = CellState.Read(folder);
        if (state.Done) { say?.Invoke($"{cell.Name}: done before"); return 0; }
        if (state.GivenUp) { say?.Invoke($"{cell.Name}: failed {state.Failures} times, not started again (see {Path.Combine(folder, CellState.LogFile)})"); return 3; }

        var where = Environment.GetEnvironmentVariable("SLURM_JOB_ID") is string job
            ? $"slurm {Environment.GetEnvironmentVariable("SLURM_ARRAY_JOB_ID") ?? job}_{Environment.GetEnvironmentVariable("SLURM_ARRAY_TASK_ID")} restart {Environment.GetEnvironmentVariable("SLURM_RESTART_COUNT") ?? "0"}"
            : $"local pid {Environment.ProcessId}";
        Record(folder, $"start {Now()} {Environment.MachineName} {where}");
        using var log = new StreamWriter(Path.Combine(folder, CellState.LogFile), append: true) { AutoFlush = true };
        log.WriteLine($"{CellState.AttemptHeader}{Now()} {SweepPlanner.ShellLine([.. manifest.Atu, .. cell.Command])}");
        var start = new ProcessStartInfo(manifest.Atu[0]) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var word in manifest.Atu.Skip(1).Concat(cell.Command)) start.ArgumentList.Add(word);
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

    static string Now() => DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture);

    static void Record(string folder, string line) => File.AppendAllText(Path.Combine(folder, CellState.AttemptsFile), line + "\n");

    /// <summary>`atu sweep run --local`: every cell not done and not given up, <paramref name="parallel"/> at a time.
    /// Returns the number of cells not done at the end.</summary>
    public static int RunLocal(string sweepFolder, int parallel, Action<string> say, CancellationToken cancel = default)
    {
        if (parallel < 1) throw new ArgumentException($"--parallel {parallel}: expected 1 or more");
        var manifest = SweepManifest.Read(sweepFolder);
        var todo = manifest.Cells.Where(c => !CellState.Read(Path.Combine(sweepFolder, c.Folder)).Done).ToList();
        say($"{manifest.Cells.Length - todo.Count} of {manifest.Cells.Length} cells done before; running {todo.Count}, {parallel} at a time");
        Parallel.ForEach(todo, new ParallelOptions { MaxDegreeOfParallelism = parallel, CancellationToken = cancel },
            cell => Run(sweepFolder, manifest, cell.Index, say, cancel));
        return manifest.Cells.Count(c => !CellState.Read(Path.Combine(sweepFolder, c.Folder)).Done);
    }
}
