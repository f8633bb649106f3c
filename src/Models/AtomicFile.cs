namespace AlignThenUnlearn.Models;

/// <summary>A file written under a temporary name beside its destination and renamed into place only
/// when complete, so readers never see a half-written file; disposing it uncommitted deletes the
/// temporary file.</summary>
public sealed class AtomicFile : IDisposable
{
    private bool committed;

    public string Path { get; }
    public string TemporaryPath { get; }
    public FileStream Stream { get; }

    private AtomicFile(string path, string temporaryPath, FileStream stream)
    {
        Path = path;
        TemporaryPath = temporaryPath;
        Stream = stream;
    }

    public static AtomicFile Create(string path)
    {
        var full = System.IO.Path.GetFullPath(path);
        // Renaming a file over a folder fails only after the whole file is written; say so before.
        if (Directory.Exists(full)) throw new IOException($"'{path}' is a folder, and the output is a file; it is not replaced (also not with --force): choose another output");
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(full)!);
        var temporary = $"{full}.{Guid.NewGuid():N}.tmp";
        return new AtomicFile(full, temporary, new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 1 << 20));
    }

    public static void WriteAllBytes(string path, ReadOnlySpan<byte> bytes)
    {
        using var file = Create(path);
        file.Stream.Write(bytes);
        file.Commit();
    }

    /// <summary>Flushes the data to disk and renames the temporary file to <see cref="Path"/> (replacing it).</summary>
    public void Commit()
    {
        if (committed) throw new InvalidOperationException($"'{Path}' is already committed");
        Stream.Flush(flushToDisk: true);
        Stream.Dispose();
        File.Move(TemporaryPath, Path, overwrite: true);
        committed = true;
    }

    public void Dispose()
    {
        if (committed) return;
        Stream.Dispose();
        File.Delete(TemporaryPath);
    }
}
