using System.Reflection;
using AlignThenUnlearn.Sweeps;
using CommandLine;
using Spectre.Console;

namespace AlignThenUnlearn.Cli;

/// <summary><c>atu sweep plan|run|submit|status|report</c> (and <c>cell</c>, which a Slurm array task or Kubernetes pod
/// runs). The sub-command is a positional value: CommandLineParser does not nest verbs.</summary>
[Verb("sweep", HelpText = "Many runs over targets x methods x presets x layers x seeds: `atu sweep plan --file SWEEP.json --out DIR` writes one cell per combination; `atu sweep run DIR --local [--parallel N]` runs them here; `atu sweep submit DIR --slurm` submits one Slurm job array; `atu sweep status DIR`; `atu sweep report DIR`.")]
public sealed class SweepOptions
{
    [Value(0, MetaName = "command", Required = true, HelpText = "plan, run, submit, status, report, retry (a cell that failed twice: retry DIR CELL, or retry DIR --failed), or cell (one cell; what each array task runs).")]
    public string Command { get; set; } = "";

    [Value(1, MetaName = "folder", HelpText = "The sweep folder (plan: or --out).")]
    public string? Folder { get; set; }

    [Value(2, MetaName = "cell", HelpText = "cell: the cell's index (an array task's SLURM_ARRAY_TASK_ID); retry: the cell's index or name.")]
    public string? Cell { get; set; }

    [Option("failed", HelpText = "retry: every cell that failed (since its last retry).")]
    public bool Failed { get; set; }

    [Option("file", HelpText = "plan: the sweep file (JSON; paths in it are relative to its folder).")]
    public string? File { get; set; }

    [Option("out", HelpText = "plan: the sweep folder to write; report: the report folder (default SWEEP/report).")]
    public string? Out { get; set; }

    [Option("emit", HelpText = "plan: also write k8s/job.json, a Kubernetes Indexed Job over the cells (value: k8s).")]
    public string? Emit { get; set; }

    [Option("atu", HelpText = "plan: the atu program the cells and array tasks run: a path, or a name looked up on the nodes' PATH (default: this one).")]
    public string? Atu { get; set; }

    [Option("local", HelpText = "run: on this machine.")]
    public bool Local { get; set; }

    [Option("parallel", Default = 1, HelpText = "run --local: cells at once.")]
    public int Parallel { get; set; } = 1;

    [Option("slurm", HelpText = "submit: one sbatch --array job over the cells.")]
    public bool Slurm { get; set; }
}

public static class SweepCommand
{
    public static int Run(SweepOptions o) => o.Command switch
    {
        "plan" => Plan(o),
        "run" => RunLocal(o),
        "submit" => Submit(o),
        "status" => Status(o),
        "report" => Report(o),
        "cell" => Cell(o),
        "retry" => Retry(o),
        _ => throw new ArgumentException($"atu sweep: unknown command '{o.Command}'; the commands are plan, run, submit, status, report, retry, cell"),
    };

    static string Folder(SweepOptions o) => o.Folder ?? throw new ArgumentException($"atu sweep {o.Command}: name the sweep folder (atu sweep {o.Command} DIR)");

    static int Plan(SweepOptions o)
    {
        var file = o.File ?? throw new ArgumentException("atu sweep plan: --file SWEEP.json is required");
        var folder = Path.GetFullPath(o.Out ?? o.Folder ?? throw new ArgumentException("atu sweep plan: --out DIR (the sweep folder) is required"));
        if (o.Emit is not (null or "k8s")) throw new ArgumentException($"--emit {o.Emit}: the only target is k8s");
        // A bare name (--atu atu) is looked up on each node's PATH; a path is made absolute, as the tasks start elsewhere.
        string[] atu = o.Atu is null ? ThisAtu() : o.Atu.Contains('/') ? [Path.GetFullPath(o.Atu)] : [o.Atu];
        var manifest = SweepPlanner.Plan(file, folder, atu);
        var table = new Table().AddColumns("cell", "name", "command");
        foreach (var cell in manifest.Cells)
            table.AddRow(cell.Index.ToString(System.Globalization.CultureInfo.InvariantCulture), Markup.Escape(cell.Name), Markup.Escape(SweepPlanner.ShellLine([.. manifest.Atu, .. cell.Command])));
        AnsiConsole.Write(table);
        AnsiConsole.MarkupLineInterpolated($"[green]wrote[/] {Path.Combine(folder, SweepManifest.FileName)}: {manifest.Cells.Length} cells");
        if (o.Emit == "k8s") AnsiConsole.MarkupLineInterpolated($"[green]wrote[/] {KubernetesJob.Write(folder, manifest)} (kubectl apply -f)");
        return 0;
    }

    /// <summary>This atu as a program line: its own executable, or `dotnet atu.dll` when it runs through dotnet.</summary>
    static string[] ThisAtu()
    {
        var process = Environment.ProcessPath ?? throw new InvalidOperationException("cannot tell which program this is; give --atu");
        return Path.GetFileNameWithoutExtension(process) == "dotnet" ? [process, Assembly.GetEntryAssembly()!.Location] : [process];
    }

    static int RunLocal(SweepOptions o)
    {
        if (!o.Local) throw new ArgumentException("atu sweep run: say --local to run the cells on this machine (on Slurm: atu sweep submit DIR --slurm)");
        var folder = Path.GetFullPath(Folder(o));
        var left = CellRunner.RunLocal(folder, o.Parallel, line => AnsiConsole.MarkupLineInterpolated($"{line}"), childOf: ThisAtu());
        if (left == 0) { AnsiConsole.MarkupLine("[green]every cell is done[/]"); return 0; }
        AnsiConsole.MarkupLineInterpolated($"[red]{left} cell(s) not done[/]; see `atu sweep status {folder}`");
        return 1;
    }

    static int Submit(SweepOptions o)
    {
        if (!o.Slurm) throw new ArgumentException("atu sweep submit: say --slurm (the only scheduler; for Kubernetes: atu sweep plan ... --emit k8s)");
        Console.WriteLine(SlurmJobs.Submit(Folder(o)));
        return 0;
    }

    static int Status(SweepOptions o)
    {
        var folder = Path.GetFullPath(Folder(o));
        var manifest = SweepManifest.Read(folder);
        var slurm = SlurmJobs.TaskStates(folder, out var note);
        var cells = SweepStatus.Of(folder, manifest, SlurmJobs.Jobs(folder).Count == 0 ? null : slurm);
        var table = new Table().AddColumns("cell", "name", "state", "attempts", "detail");
        foreach (var c in cells)
            table.AddRow(c.Cell.Index.ToString(System.Globalization.CultureInfo.InvariantCulture), Markup.Escape(c.Cell.Name), c.State,
                c.Attempts.ToString(System.Globalization.CultureInfo.InvariantCulture), Markup.Escape(c.Detail));
        AnsiConsole.Write(table);
        if (note is not null) AnsiConsole.MarkupLineInterpolated($"[grey]{note}[/]");
        AnsiConsole.MarkupLineInterpolated($"{string.Join(", ", new[] { CellStatus.Done, CellStatus.Running, CellStatus.Failed, CellStatus.Left }.Select(s => $"{cells.Count(c => c.State == s)} {s}"))}");
        return 0;
    }

    static int Report(SweepOptions o)
    {
        var folder = Path.GetFullPath(Folder(o));
        var runs = SweepReport.Write(folder, o.Out);
        AnsiConsole.Write(ReportCommand.Table(runs));
        AnsiConsole.MarkupLineInterpolated($"[green]wrote[/] {Path.Combine(o.Out ?? Path.Combine(folder, SweepReport.Folder), "combined.md")}, the trade-off plot and a results.md per group");
        return 0;
    }

    static int Cell(SweepOptions o)
    {
        var folder = Path.GetFullPath(Folder(o));
        if (o.Cell is null || !int.TryParse(o.Cell, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var index))
            throw new ArgumentException($"atu sweep cell: name the cell's index (atu sweep cell DIR INDEX){(o.Cell is null ? "" : $", not '{o.Cell}'")}");
        return CellRunner.Run(folder, SweepManifest.Read(folder), index, Console.WriteLine, childOf: ThisAtu());
    }

    static int Retry(SweepOptions o)
    {
        var folder = Path.GetFullPath(Folder(o));
        if ((o.Cell is null) == !o.Failed)
            throw new ArgumentException("atu sweep retry: name one cell (atu sweep retry DIR CELL, its index or name) or say --failed (every failed cell)");
        var marked = CellRetry.Mark(folder, o.Failed ? null : o.Cell);
        AnsiConsole.MarkupLineInterpolated($"{(marked.Count == 0 ? "no failed cell to retry" : $"[green]marked for a retry[/] (the next run or submit starts them): {string.Join(", ", marked)}")}");
        return 0;
    }
}
