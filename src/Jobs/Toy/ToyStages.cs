using System.Globalization;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.ToyWorld;

namespace AlignThenUnlearn.Jobs.Toy;

/// <summary>The toy job's first two stages, also run alone by `atu toy world` and `atu toy pretrain`: the world's files and
/// the tiny model pre-trained on them.</summary>
public static class ToyStages
{
    /// <summary>Writes the world of <paramref name="seed"/> to <paramref name="output"/> (complete or not at all).</summary>
    public static string WriteWorld(int seed, string output, bool force = false) => WriteWorld(WorldDataset.Build(WorldGenerator.Generate(seed)), output, force);

    public static string WriteWorld(WorldDataset data, string output, bool force)
    {
        using var staged = StagedFolder.Create(output, force);
        WorldFolder.Write(data, staged.Staging);
        staged.Commit();
        return output;
    }

    /// <summary>Pre-trains, its progress reported (step, smoothed loss, steps/s, ETA); returns the artifact folder.</summary>
    public static string Pretrain(string world, string output, ToyPretrainingSettings settings, ExecutionDevice device, bool resume, bool force, IJobReporter reporter)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        TrainingProgress? last = null;
        reporter.Track($"pre-training on {device.Description}", settings.Steps, (task, log) =>
        {
            long first = -1, shown = 0;
            double smoothed = double.NaN;   // batches differ (corpus, questions, multiple choice): the shown loss is averaged
            ToyPretraining.Run(world, output, settings, device, resume, force, p =>
            {
                if (first < 0) first = p.Step - 1;   // a resumed run starts after its checkpoint
                last = p;
                smoothed = double.IsNaN(smoothed) ? p.Loss : 0.95 * smoothed + 0.05 * p.Loss;
                double rate = (p.Step - first) / Math.Max(p.Elapsed.TotalSeconds, 1e-9);
                var eta = TimeSpan.FromSeconds((p.Steps - p.Step) / Math.Max(rate, 1e-9));
                shown = p.Step;
                task.Report(new WorkProgress(p.Step, null, FormattableString.Invariant($"step {p.Step}/{p.Steps} loss {smoothed:F3} {rate:F2} steps/s ETA {(int)eta.TotalMinutes}:{eta.Seconds:D2}")));
            }, stage =>
            {
                task.Report(new WorkProgress(shown, null, stage));
                log.Report(new JobLine(stage, JobLineKind.Detail));
            });
        });
        reporter.Done(string.Create(CultureInfo.InvariantCulture,
            $"wrote {output}: {settings.Layers} layers, hidden {settings.HiddenSize}, {settings.Steps} steps, last step's loss {last?.Loss ?? double.NaN:F3}, {clock.Elapsed.TotalMinutes:F1} min"));
        return output;
    }
}
