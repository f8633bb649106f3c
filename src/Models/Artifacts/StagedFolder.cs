namespace AlignThenUnlearn.Models;

/// <summary>Writes an output folder completely or not at all. Files are written into a hidden staging
/// folder beside the target and the staging folder is renamed into place by <see cref="Commit"/>; if
/// anything fails first, disposing removes the staging folder and the target is untouched. An existing
/// target is replaced only when <c>force</c> is given.</summary>
public sealed class StagedFolder : IDisposable
{
    public string Target { get; }
    public string Staging { get; }
    bool _committed;

    StagedFolder(string target, string staging) => (Target, Staging) = (target, staging);

    /// <param name="expectedBytes">What will be written, checked against the free space before anything is.</param>
    public static StagedFolder Create(string target, bool force, long expectedBytes = 0)
    {
        var full = System.IO.Path.GetFullPath(target).TrimEnd(System.IO.Path.DirectorySeparatorChar);
        // A folder cannot replace a file in one rename; refusing up front leaves the file as it was.
        if (File.Exists(full))
            throw new IOException($"'{target}' is a file, and the output is a folder; it is not replaced (also not with --force): remove it or choose another output");
        if (Directory.Exists(full) && !force)
            throw new IOException($"'{target}' already exists; choose another output folder or pass --force to replace it");
        var parent = System.IO.Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(parent);
        var name = System.IO.Path.GetFileName(full);
        StagingArea.RemoveLeftovers(parent, name);
        StagingArea.RequireFreeSpace(parent, expectedBytes, $"'{target}'");
        var staging = StagingArea.NewPath(parent, name, "partial");
        Directory.CreateDirectory(staging);
        return new StagedFolder(full, staging);
    }

    /// <summary>The staging path of a file inside the folder (sub-folders are created).</summary>
    public string PathOf(string relative)
    {
        var path = System.IO.Path.GetFullPath(System.IO.Path.Combine(Staging, relative));
        if (!path.StartsWith(Staging + System.IO.Path.DirectorySeparatorChar, StringComparison.Ordinal))
            throw new ArgumentException($"'{relative}' is not a path inside the output folder");
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(path)!);
        return path;
    }

    /// <summary>Moves the finished folder into place (replacing an existing one only if Create was forced).</summary>
    public void Commit()
    {
        string? old = null;
        if (Directory.Exists(Target))
        {
            old = Staging + ".old";
            Directory.Move(Target, old);
        }
        Directory.Move(Staging, Target);
        _committed = true;
        if (old is not null) Directory.Delete(old, recursive: true);
    }

    public void Dispose()
    {
        if (!_committed && Directory.Exists(Staging)) Directory.Delete(Staging, recursive: true);
    }
}
