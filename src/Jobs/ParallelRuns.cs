using System.Collections.Concurrent;
using System.Runtime.ExceptionServices;

namespace AlignThenUnlearn.Jobs;

/// <summary>Independent runs (a toy run's unlearning runs, its attacks) taken <c>parallel</c> at a time, in index order as
/// threads free up; each run beside the first reports through <see cref="IJobReporter.Beside"/>.</summary>
public static class ParallelRuns
{
    /// <summary>Calls <paramref name="run"/> for 0..<paramref name="count"/>-1, at most <paramref name="parallel"/> at once
    /// (1 or less: one after the other on this thread); the first exception of a run is rethrown as it was thrown.</summary>
    public static void ForEach(int count, int parallel, IJobReporter reporter, Action<int, IJobReporter> run)
    {
        if (parallel <= 1)
        {
            for (int i = 0; i < count; i++) run(i, reporter);
            return;
        }
        try
        {
            // No buffering: each thread takes the next index when it is free, so the runs start in order.
            Parallel.ForEach(Partitioner.Create(Enumerable.Range(0, count), EnumerablePartitionerOptions.NoBuffering),
                new ParallelOptions { MaxDegreeOfParallelism = parallel }, i => run(i, reporter.Beside()));
        }
        catch (AggregateException e) when (e.InnerExceptions.Count >= 1)
        {
            ExceptionDispatchInfo.Throw(e.InnerExceptions[0]);
        }
    }
}
