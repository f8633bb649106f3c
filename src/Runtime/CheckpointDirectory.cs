using System.Globalization;
using AlignThenUnlearn.Models;

namespace AlignThenUnlearn.Runtime;

/// <summary>The checkpoints of one run: folders <c>step-00000100</c> (see <see cref="TrainingCheckpoint"/>) and a file
/// <c>latest</c> naming the newest. <c>latest</c> is replaced atomically only after its folder is complete, and older
/// folders beyond the last <see cref="Keep"/> are removed only after that, so a run killed at any moment leaves a
/// complete checkpoint behind it.</summary>
public sealed class CheckpointDirectory
{
    public const string LatestFile = "latest";
    const string Prefix = "step-";

    public string Root { get; }
    public int Keep { get; }

    public CheckpointDirectory(string root, int keep = 3)
    {
        if (keep < 1) throw new ArgumentOutOfRangeException(nameof(keep), keep, "at least the newest checkpoint must be kept");
        (Root, Keep) = (Path.GetFullPath(root), keep);
    }

    public static string FolderName(long step) => $"{Prefix}{step:D8}";

    /// <summary>The folder <c>latest</c> names, or null when there is none.</summary>
    public string? Latest
    {
        get
        {
            var pointer = Path.Combine(Root, LatestFile);
            if (!File.Exists(pointer)) return null;
            var name = File.ReadAllText(pointer).Trim();
            if (StepOf(name) is null) throw new ModelFormatException($"'{pointer}' names '{name}', which is not a checkpoint folder of the form {FolderName(0)}");
            return Path.Combine(Root, name);
        }
    }

    /// <summary>Complete checkpoint folders, oldest first.</summary>
    public IReadOnlyList<(long Step, string Folder)> Complete() =>
        !Directory.Exists(Root) ? [] :
        Directory.EnumerateDirectories(Root)
            .Select(d => (Step: StepOf(Path.GetFileName(d)), Folder: d))
            .Where(c => c.Step is not null && TrainingCheckpoint.IsComplete(c.Folder))
            .Select(c => (c.Step!.Value, c.Folder))
            .OrderBy(c => c.Item1)
            .ToList();

    /// <summary>The newest complete checkpoint. It is newer than <see cref="Latest"/> only if a run was killed between
    /// completing a folder and replacing <c>latest</c>; the pointer is then brought up to date.</summary>
    public string? NewestComplete()
    {
        var complete = Complete();
        if (complete.Count == 0) return null;
        var newest = complete[^1].Folder;
        if (Latest != newest) PointLatestAt(newest);
        return newest;
    }

    /// <summary>Removes what an interrupted run may have left: staging folders of checkpoints being written, folders
    /// being removed, and step folders that lack a file (not written by this class, but they would block the step's
    /// checkpoint). Only one run may use a checkpoint directory at a time.</summary>
    public void RemoveLeftovers()
    {
        if (!Directory.Exists(Root)) return;
        foreach (var d in Directory.EnumerateDirectories(Root))
        {
            var name = Path.GetFileName(d);
            bool staging = name.StartsWith($".{Prefix}", StringComparison.Ordinal);
            bool incomplete = StepOf(name) is not null && !TrainingCheckpoint.IsComplete(d);
            if (staging || incomplete) Directory.Delete(d, recursive: true);
        }
    }

    /// <summary>Writes the checkpoint of <paramref name="step"/>, then points <c>latest</c> at it, then prunes. Returns its folder.</summary>
    public string Save(long step, ParameterStore store, Optimizer optimizer, System.Text.Json.Nodes.JsonObject state) =>
        Save(step, store, new Dictionary<string, Optimizer> { [""] = optimizer }, state);

    /// <summary>As above, with several named optimizers (see <see cref="TrainingCheckpoint.OptimizerFileOf"/>).</summary>
    public string Save(long step, ParameterStore store, IReadOnlyDictionary<string, Optimizer> optimizers, System.Text.Json.Nodes.JsonObject state)
    {
        var folder = Path.Combine(Root, FolderName(step));
        TrainingCheckpoint.Write(folder, store, optimizers, state);
        PointLatestAt(folder);
        Prune(folder);
        return folder;
    }

    void PointLatestAt(string folder) =>
        AtomicFile.WriteAllBytes(Path.Combine(Root, LatestFile), System.Text.Encoding.UTF8.GetBytes(Path.GetFileName(folder) + "\n"));

    /// <summary>Removes complete folders older than the last <see cref="Keep"/>: each is first renamed to a hidden
    /// name (atomic), so a removal cut short never leaves a partial folder that looks like a checkpoint.</summary>
    void Prune(string newest)
    {
        var complete = Complete();
        foreach (var (_, folder) in complete.Take(Math.Max(0, complete.Count - Keep)))
        {
            if (folder == newest) continue;
            var doomed = Path.Combine(Root, $".{Path.GetFileName(folder)}.removing-{Guid.NewGuid():N}");
            Directory.Move(folder, doomed);
            Directory.Delete(doomed, recursive: true);
        }
    }

    static long? StepOf(string name) =>
        name.StartsWith(Prefix, StringComparison.Ordinal) && long.TryParse(name.AsSpan(Prefix.Length), NumberStyles.None, CultureInfo.InvariantCulture, out var step)
            ? step : null;
}
