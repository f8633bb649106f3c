using AlignThenUnlearn.Evaluation;

namespace AlignThenUnlearn.Jobs;

/// <summary>What a line of a job's log is: a step taken, a result written, a notice the user should see, or a detail.</summary>
public enum JobLineKind { Info, Done, Notice, Detail }

/// <summary>One line of a job's log.</summary>
public sealed record JobLine(string Text, JobLineKind Kind = JobLineKind.Info);

/// <summary>The progress of one long piece of work: units done, and (when they change) the units in all and what is being done.</summary>
public sealed record WorkProgress(double Value, double? MaxValue = null, string? Description = null);

/// <summary>How a job tells whoever runs it what it does: its log lines (<see cref="IProgress{T}"/> of <see cref="JobLine"/>)
/// and the progress of its long pieces of work. The jobs hold no console code; the CLI renders both (lines and progress
/// bars), tests may pass <see cref="JobReporter.Silent"/>.</summary>
public interface IJobReporter : IProgress<JobLine>
{
    /// <summary>Runs <paramref name="work"/>, which reports its progress (of <paramref name="maxValue"/> units) and its log lines.</summary>
    void Track(string description, double maxValue, Action<IProgress<WorkProgress>, IProgress<JobLine>> work);

    /// <summary>Runs scored together (a report's rows), for a table of their mean scores.</summary>
    void Scored(IReadOnlyList<RunSummary> runs) { }

    /// <summary>The reporter for work that runs beside other work on another thread (one live display at a time).</summary>
    IJobReporter Beside() => this;
}

public static class JobReporter
{
    /// <summary>Reports nothing.</summary>
    public static IJobReporter Silent { get; } = new SilentReporter();

    public static void Info(this IJobReporter reporter, string text) => reporter.Report(new JobLine(text));
    public static void Done(this IJobReporter reporter, string text) => reporter.Report(new JobLine(text, JobLineKind.Done));
    public static void Notice(this IJobReporter reporter, string text) => reporter.Report(new JobLine(text, JobLineKind.Notice));
    public static void Detail(this IJobReporter reporter, string text) => reporter.Report(new JobLine(text, JobLineKind.Detail));

    sealed class SilentReporter : IJobReporter
    {
        public void Report(JobLine value) { }
        public void Track(string description, double maxValue, Action<IProgress<WorkProgress>, IProgress<JobLine>> work) => work(new Callback<WorkProgress>(_ => { }), this);
    }
}

/// <summary>Progress reported on the caller's thread (System.Progress would post it to the thread pool).</summary>
public sealed class Callback<T>(Action<T> report) : IProgress<T>
{
    public void Report(T value) => report(value);
}
