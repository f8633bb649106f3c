using System.Diagnostics;

namespace AlignThenUnlearn.Models;

/// <summary>Where unfinished outputs live: hidden entries beside the output, <c>.NAME.KIND-PID-GUID</c> (a staged
/// folder, a temporary checkpoint), so they sit on the output's file system and never in the system's temporary
/// folder. A run that is killed leaves its entries behind; the next run for the same output removes those whose
/// process is gone and reports each. Free disk space is checked against what is about to be written.</summary>
public static class StagingArea
{
    /// <summary>Told about each leftover removed (standard error by default).</summary>
    public static Action<string> Report { get; set; } = message => Console.Error.WriteLine(message);

    /// <summary>A fresh path for a temporary entry of <paramref name="kind"/> (e.g. "partial") for the output
    /// <paramref name="name"/> in <paramref name="parent"/>; nothing is created.</summary>
    public static string NewPath(string parent, string name, string kind) =>
        Path.Combine(parent, $".{name}.{kind}-{Environment.ProcessId}-{Guid.NewGuid():N}");

    /// <summary>Removes the temporary entries for <paramref name="name"/> in <paramref name="parent"/> that belong to
    /// processes no longer running; returns their paths.</summary>
    public static IReadOnlyList<string> RemoveLeftovers(string parent, string name)
    {
        var removed = new List<string>();
        if (!Directory.Exists(parent)) return removed;
        foreach (var path in Directory.EnumerateFileSystemEntries(parent, $".{name}.*-*-*"))
        {
            var rest = Path.GetFileName(path)[(name.Length + 2)..];   // KIND-PID-GUID[.old]
            var parts = rest.Split('-');
            if (parts.Length < 3 || !Guid.TryParseExact(parts[^1].Split('.')[0], "N", out _) || !int.TryParse(parts[^2], out int pid)
                || pid == Environment.ProcessId || IsRunning(pid)) continue;
            long bytes = Directory.Exists(path) ? new DirectoryInfo(path).EnumerateFiles("*", SearchOption.AllDirectories).Sum(f => f.Length) : new FileInfo(path).Length;
            if (Directory.Exists(path)) Directory.Delete(path, recursive: true);
            else File.Delete(path);
            removed.Add(path);
            Report($"removed '{path}' ({bytes:N0} bytes), left behind by an interrupted run (process {pid})");
        }
        return removed;
    }

    static bool IsRunning(int pid)
    {
        try
        {
            using var process = Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (ArgumentException) { return false; }
        catch (InvalidOperationException) { return false; }
    }

    /// <summary>Refuses to start writing <paramref name="bytes"/> bytes (<paramref name="what"/>) into
    /// <paramref name="folder"/> when its file system has less free space than that.</summary>
    public static void RequireFreeSpace(string folder, long bytes, string what)
    {
        var existing = Path.GetFullPath(folder);
        while (!Directory.Exists(existing)) existing = Path.GetDirectoryName(existing) ?? throw new DirectoryNotFoundException($"no folder of '{folder}' exists");
        long free = new DriveInfo(existing).AvailableFreeSpace;
        if (bytes > free)
            throw new IOException($"{what} needs {bytes:N0} bytes, but the file system of '{existing}' has {free:N0} bytes free; nothing was written");
    }
}
