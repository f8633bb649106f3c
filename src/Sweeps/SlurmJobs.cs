using System.Diagnostics;
using System.Text;
using AlignThenUnlearn.Models;

namespace AlignThenUnlearn.Sweeps;

/// <summary>A sweep as one Slurm job array: a task per cell, each running `atu sweep cell SWEEP $SLURM_ARRAY_TASK_ID`.</summary>
public static class SlurmJobs
{
    public const string Folder = "slurm", ScriptFile = "array.sbatch", JobsFile = "jobs";

    /// <summary>The sbatch script: `--array=0-(n-1)%throttle`, `--requeue` (a preempted or requeued task starts again
    /// and its command resumes from its newest checkpoint), the sweep file's resources.</summary>
    public static string Script(string sweepFolder, SweepManifest manifest)
    {
        var slurm = manifest.Sweep.Slurm;
        var output = Path.Combine(sweepFolder, Folder, "%A_%a.out");
        var text = new StringBuilder("#!/bin/bash\n");
        void Directive(string option) => text.Append("#SBATCH ").Append(option).Append('\n');
        Directive($"--job-name={SweepPlanner.PresetLabel(manifest.Name)}");
        Directive($"--array=0-{manifest.Cells.Length - 1}%{slurm.Throttle}");
        Directive("--requeue");
        Directive("--open-mode=append");
        Directive($"--output={output}");
        Directive("--ntasks=1");
        Directive($"--cpus-per-task={slurm.Cpus}");
        if (slurm.Partition is not null) Directive($"--partition={slurm.Partition}");
        if (slurm.Gpus > 0) Directive($"--gpus={slurm.Gpus}");
        if (slurm.Time is not null) Directive($"--time={slurm.Time}");
        if (slurm.Memory is not null) Directive($"--mem={slurm.Memory}");
        text.Append("# One cell per array task; a done cell returns at once, a cell that failed twice is not started again.\n");
        text.Append($"exec {SweepPlanner.ShellLine([.. manifest.Atu, "sweep", "cell", sweepFolder])} \"$SLURM_ARRAY_TASK_ID\"\n");
        return text.ToString();
    }

    /// <summary>Writes the script and submits it with `sbatch --parsable`; returns the job id (also appended to
    /// slurm/jobs, which `atu sweep status` reads).</summary>
    public static string Submit(string sweepFolder)
    {
        sweepFolder = Path.GetFullPath(sweepFolder);
        var manifest = SweepManifest.Read(sweepFolder);
        var folder = Path.Combine(sweepFolder, Folder);
        Directory.CreateDirectory(folder);
        var script = Path.Combine(folder, ScriptFile);
        AtomicFile.WriteAllBytes(script, Encoding.UTF8.GetBytes(Script(sweepFolder, manifest)));
        var (code, output, error) = Tool.Run("sbatch", "--parsable", script);
        if (code != 0) throw new InvalidOperationException($"sbatch {script} failed (exit {code}): {error.Trim()}");
        var job = output.Trim().Split(';')[0];   // "id" or "id;cluster"
        if (job.Length == 0 || !job.All(char.IsAsciiDigit)) throw new InvalidOperationException($"sbatch --parsable printed '{output.Trim()}', not a job id");
        File.AppendAllText(Path.Combine(folder, JobsFile), job + "\n");
        return job;
    }

    /// <summary>The job ids submitted for this sweep, oldest first.</summary>
    public static IReadOnlyList<string> Jobs(string sweepFolder)
    {
        var path = Path.Combine(sweepFolder, Folder, JobsFile);
        return File.Exists(path) ? File.ReadAllLines(path).Where(l => l.Length > 0).ToList() : [];
    }

    /// <summary>Slurm's state of each array task of the sweep's jobs: squeue for queued and running tasks, then sacct
    /// (where accounting is configured) for finished ones; the newest job's word on a cell wins. Null when squeue is
    /// not there.</summary>
    public static Dictionary<int, string>? TaskStates(string sweepFolder, out string? note)
    {
        note = null;
        var jobs = Jobs(sweepFolder);
        if (jobs.Count == 0) return [];
        var states = new Dictionary<int, string>();
        // sacct first, so that squeue's live word on a task overrides an earlier finished attempt
        var (sacctCode, sacctOut, sacctError) = Tool.Run("sacct", "-n", "-P", "-X", "-o", "JobID,State", "-j", string.Join(",", jobs));
        if (sacctCode == 0) Parse(sacctOut, states);
        else note = sacctCode == 127 ? "sacct is not installed" : $"sacct: {sacctError.Trim().Split('\n')[0]}";
        var (code, output, error) = Tool.Run("squeue", "-h", "-r", "-o", "%i|%T", "-j", string.Join(",", jobs));
        if (code == 127) { note = "squeue is not installed"; return null; }
        // squeue refuses ids of jobs it has forgotten ("Invalid job id specified"): then nothing of them is queued
        if (code != 0 && !error.Contains("Invalid job id", StringComparison.OrdinalIgnoreCase)) throw new InvalidOperationException($"squeue failed (exit {code}): {error.Trim()}");
        if (code == 0) Parse(output.Replace('|', ' '), states, separator: ' ');
        return states;
    }

    static void Parse(string lines, Dictionary<int, string> states, char separator = '|')
    {
        foreach (var line in lines.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var parts = line.Split(separator, 2);
            var id = parts[0].Split('_');
            if (parts.Length == 2 && id.Length == 2 && int.TryParse(id[1], out var task)) states[task] = parts[1].Split(' ')[0];
        }
    }
}

/// <summary>Runs a command-line tool and returns its exit code and output (127 when it is not installed).</summary>
public static class Tool
{
    public static (int Code, string Output, string Error) Run(string program, params string[] arguments)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in arguments) start.ArgumentList.Add(argument);
        Process process;
        try { process = Process.Start(start)!; }
        catch (System.ComponentModel.Win32Exception) { return (127, "", $"{program} is not installed"); }
        using (process)
        {
            var error = process.StandardError.ReadToEndAsync();
            var output = process.StandardOutput.ReadToEnd();
            process.WaitForExit();
            return (process.ExitCode, output, error.Result);
        }
    }
}
