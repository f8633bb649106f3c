using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace AlignThenUnlearn.Models;

/// <summary>One file of an artifact folder, with the size and SHA-256 recorded when it was written.</summary>
public sealed record ArtifactFile(string Path, long Bytes, string Sha256);

/// <summary><c>manifest.json</c> of an artifact folder: what model it holds, how it was exported, and
/// every file with its size and hash, so a later verb can run from the folder alone and detect damage.</summary>
public sealed record ArtifactManifest
{
    public const string FileName = "manifest.json";
    public const string FormatName = "atu-artifacts";
    public const int FormatVersion = 1;

    public string Format { get; init; } = FormatName;
    public int Version { get; init; } = FormatVersion;
    public required string Family { get; init; }
    /// <summary>The Hugging Face config.json of the model, as read.</summary>
    public required JsonObject Config { get; init; }
    public required string Dtype { get; init; }
    /// <summary>The layer whose hidden state feeds the embedding head (HF hidden_states index).</summary>
    public int? Layer { get; init; }
    public int MaxSequenceLength { get; init; }
    public string? Source { get; init; }
    public string CreatedBy { get; init; } = "atu";
    public List<ArtifactFile> Files { get; init; } = [];
    /// <summary>Free-form extras of later stages (encoder pooling, head layout).</summary>
    public JsonObject? Extra { get; init; }

    static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    public static ArtifactFile Describe(string folder, string relative)
    {
        var path = System.IO.Path.Combine(folder, relative);
        using var stream = File.OpenRead(path);
        var hash = Convert.ToHexStringLower(SHA256.HashData(stream));
        return new ArtifactFile(relative.Replace('\\', '/'), new FileInfo(path).Length, hash);
    }

    /// <summary>Writes manifest.json atomically (a reader never sees half a manifest).</summary>
    public void Save(string folder) => AtomicFile.WriteAllBytes(System.IO.Path.Combine(folder, FileName), JsonSerializer.SerializeToUtf8Bytes(this, Json));

    public static ArtifactManifest Load(string folder)
    {
        var path = System.IO.Path.Combine(folder, FileName);
        if (!File.Exists(path)) throw new FileNotFoundException($"'{folder}' is not an artifact folder: {FileName} is missing (create one with `atu export`)", path);
        ArtifactManifest? manifest;
        try { manifest = JsonSerializer.Deserialize<ArtifactManifest>(File.ReadAllText(path), Json); }
        catch (JsonException e) { throw new InvalidDataException($"'{path}' is not a valid manifest: {e.Message}", e); }
        if (manifest is null || manifest.Format != FormatName)
            throw new InvalidDataException($"'{path}' is not an {FormatName} manifest");
        if (manifest.Version > FormatVersion)
            throw new InvalidDataException($"'{path}' has format version {manifest.Version}; this atu reads up to {FormatVersion}");
        return manifest;
    }

    /// <summary>Checks that every listed file exists with its recorded size and SHA-256; a file's hash is computed once
    /// and again only when its size or modification time changed (<see cref="VerifiedFiles"/>), so opening an artifact
    /// stays cheap and a file edited in place is still noticed.</summary>
    public void Verify(string folder)
    {
        Verify(folder, hashes: false);
        foreach (var f in Files)
        {
            var path = System.IO.Path.Combine(folder, f.Path);
            if (VerifiedFiles.IsVerified(path, f.Sha256)) continue;
            if (Describe(folder, f.Path).Sha256 != f.Sha256)
                throw new InvalidDataException($"artifact folder '{folder}': '{f.Path}' does not match its SHA-256 in {FileName} (changed since `atu export` wrote it); export the artifact again");
            VerifiedFiles.Remember(path, f.Sha256);
        }
    }

    /// <summary>Checks that every listed file exists with its recorded size (and hash, when asked).</summary>
    public void Verify(string folder, bool hashes)
    {
        foreach (var f in Files)
        {
            var path = System.IO.Path.Combine(folder, f.Path);
            if (!File.Exists(path)) throw new InvalidDataException($"artifact folder '{folder}': '{f.Path}' listed in {FileName} is missing");
            var size = new FileInfo(path).Length;
            if (size != f.Bytes) throw new InvalidDataException($"artifact folder '{folder}': '{f.Path}' has {size} bytes, {FileName} records {f.Bytes}");
            if (hashes && Describe(folder, f.Path).Sha256 != f.Sha256)
                throw new InvalidDataException($"artifact folder '{folder}': '{f.Path}' does not match its SHA-256 in {FileName}");
        }
    }
}
