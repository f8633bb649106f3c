using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.Jobs;
using Spectre.Console;

namespace AlignThenUnlearn.Cli;

/// <summary>A job's lines and progress on the console: results green, notices yellow, details grey; each tracked piece of
/// work as a progress bar with its log lines printed above it.</summary>
public sealed class ConsoleReporter(bool bars = true) : IJobReporter
{
    public void Report(JobLine line)
    {
        var text = Markup.Escape(line.Text);
        AnsiConsole.MarkupLine(line.Kind switch
        {
            JobLineKind.Done => $"[green]{text}[/]",
            JobLineKind.Notice => $"[yellow]{text}[/]",
            JobLineKind.Detail => $"[grey]{text}[/]",
            _ => text,
        });
    }

    public void Scored(IReadOnlyList<RunSummary> runs) => AnsiConsole.Write(ReportCommand.Table(runs));

    /// <summary>Work beside other work (`atu toy --jobs 2`) runs without a bar: Spectre draws one live display at a time
    /// (the log lines are still printed).</summary>
    public IJobReporter Beside() => new ConsoleReporter(bars: false);

    public void Track(string description, double maxValue, Action<IProgress<WorkProgress>, IProgress<JobLine>> work)
    {
        if (!bars)
        {
            work(new Callback<WorkProgress>(_ => { }), this);
            return;
        }
        AnsiConsole.Progress()
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask(Markup.Escape(description), maxValue: Math.Max(maxValue, 1));
                work(new Callback<WorkProgress>(p =>
                {
                    if (p.MaxValue is double max) task.MaxValue = Math.Max(max, 1);
                    task.Value = p.Value;
                    if (p.Description is not null) task.Description = Markup.Escape(p.Description);
                }), this);
                task.Value = task.MaxValue;
            });
    }
}
