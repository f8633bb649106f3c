using System.Text.Json;

namespace AlignThenUnlearn.Models;

/// <summary>Files whose SHA-256 was checked, remembered by full path, size and modification time, so an artifact's
/// hashes are computed once and again only after a file changed. The record lives in the user's cache folder
/// (<c>$XDG_CACHE_HOME/atu</c> or <c>~/.cache/atu</c>; <c>ATU_CACHE_DIR</c> overrides it), never in the artifact folder,
/// which stays as it was written. A record that cannot be read or written only costs a second hashing.</summary>
public static class VerifiedFiles
{
    public const string FileName = "verified-files.json";
    sealed record Entry(long Bytes, long ModifiedTicks, string Sha256);
    static readonly Lock Gate = new();

    public static string RecordPath
    {
        get
        {
            var folder = Environment.GetEnvironmentVariable("ATU_CACHE_DIR")
                ?? Path.Combine(Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } xdg ? xdg
                    : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache"), "atu");
            return Path.Combine(folder, FileName);
        }
    }

    /// <summary>Whether <paramref name="path"/>, as it is now, was verified to have <paramref name="sha256"/>.</summary>
    public static bool IsVerified(string path, string sha256)
    {
        var info = new FileInfo(path);
        lock (Gate)
            return Read().TryGetValue(info.FullName, out var entry)
                && entry.Bytes == info.Length && entry.ModifiedTicks == info.LastWriteTimeUtc.Ticks && entry.Sha256 == sha256;
    }

    /// <summary>Remembers that <paramref name="path"/>, as it is now, has <paramref name="sha256"/>.</summary>
    public static void Remember(string path, string sha256)
    {
        var info = new FileInfo(path);
        lock (Gate)
        {
            var record = Read();
            record[info.FullName] = new Entry(info.Length, info.LastWriteTimeUtc.Ticks, sha256);
            try { AtomicFile.WriteAllBytes(RecordPath, JsonSerializer.SerializeToUtf8Bytes(record)); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        }
    }

    static Dictionary<string, Entry> Read()
    {
        try { return JsonSerializer.Deserialize<Dictionary<string, Entry>>(File.ReadAllBytes(RecordPath)) ?? []; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException) { return []; }
    }
}
