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

    /// <summary>What a folder with a list of file hashes is called in errors, the list's file, its writer and the remedy.</summary>
    public sealed record FolderKind(string Name, string ListFile, string Writer, string Remedy);

    static readonly FolderKind Artifact = new("artifact folder", FileName, "`atu export`", "export the artifact again");

    /// <summary>Checks that every listed file exists with its recorded size and SHA-256; a file's hash is computed once
    /// and again only when its size or modification time changed (<see cref="VerifiedFiles"/>), so opening an artifact
    /// stays cheap and a file edited in place is still noticed.</summary>
    public void Verify(string folder) => VerifyFiles(folder, Files, Artifact);

    /// <summary>Checks that every listed file exists with its recorded size (and hash, when asked).</summary>
    public void Verify(string folder, bool hashes)
    {
        RequireSizes(folder, Files, Artifact);
        if (hashes)
            foreach (var f in Files.Where(f => Describe(folder, f.Path).Sha256 != f.Sha256))
                throw new InvalidDataException($"artifact folder '{folder}': '{f.Path}' does not match its SHA-256 in {FileName}");
    }

    /// <summary><see cref="Verify(string)"/> for any folder that lists its files' sizes and hashes (artifact and shipped folders).</summary>
    public static void VerifyFiles(string folder, IReadOnlyList<ArtifactFile> files, FolderKind kind)
    {
        RequireSizes(folder, files, kind);
        foreach (var f in files)
        {
            var path = System.IO.Path.Combine(folder, f.Path);
            if (VerifiedFiles.IsVerified(path, f.Sha256)) continue;
            if (Describe(folder, f.Path).Sha256 != f.Sha256)
                throw new InvalidDataException($"{kind.Name} '{folder}': '{f.Path}' does not match its SHA-256 in {kind.ListFile} (changed since {kind.Writer} wrote it); {kind.Remedy}");
            VerifiedFiles.Remember(path, f.Sha256);
        }
    }

    static void RequireSizes(string folder, IReadOnlyList<ArtifactFile> files, FolderKind kind)
    {
        foreach (var f in files)
        {
            var path = System.IO.Path.Combine(folder, f.Path);
            if (!File.Exists(path)) throw new InvalidDataException($"{kind.Name} '{folder}': '{f.Path}' listed in {kind.ListFile} is missing");
            var size = new FileInfo(path).Length;
            if (size != f.Bytes) throw new InvalidDataException($"{kind.Name} '{folder}': '{f.Path}' has {size} bytes, {kind.ListFile} records {f.Bytes}");
        }
    }
}

