using System.Text.Json;
using System.Text.Json.Serialization;

namespace AlignThenUnlearn.Models;

/// <summary><c>shipped.json</c> of a folder `atu ship` wrote: every other file of the folder (the model card included)
/// with its size and SHA-256. `atu eval` scores a shipped folder only as it was shipped: weights damaged or overwritten
/// after shipping, even with finite values, would otherwise score as a model that forgot everything.</summary>
public sealed record ShippedManifest
{
    public const string FileName = "shipped.json";
    public const string FormatName = "atu-shipped";
    public const int FormatVersion = 1;

    public string Format { get; init; } = FormatName;
    public int Version { get; init; } = FormatVersion;
    public List<ArtifactFile> Files { get; init; } = [];

    static readonly ArtifactManifest.FolderKind Kind = new("shipped folder", FileName, "`atu ship`", "ship the model again");

    static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
    };

    /// <summary>Every file of <paramref name="folder"/> but this list, hashed, in ordinal order of their paths.</summary>
    public static ShippedManifest Of(string folder) => new()
    {
        Files = [.. Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(folder, f)).Where(f => f != FileName).Order(StringComparer.Ordinal)
            .Select(f => ArtifactManifest.Describe(folder, f))],
    };

    public void Save(string folder) => AtomicFile.WriteAllBytes(Path.Combine(folder, FileName), JsonSerializer.SerializeToUtf8Bytes(this, Json));

    public static ShippedManifest Load(string folder)
    {
        var path = Path.Combine(folder, FileName);
        if (!File.Exists(path))
            throw new FileNotFoundException($"shipped folder '{folder}' has no {FileName} (the SHA-256 of every file, which `atu ship` records), so it cannot be verified; ship the model again", path);
        ShippedManifest? manifest;
        try { manifest = JsonSerializer.Deserialize<ShippedManifest>(File.ReadAllBytes(path), Json); }
        catch (JsonException e) { throw new InvalidDataException($"'{path}' is not a valid {FileName}: {e.Message}", e); }
        if (manifest is null || manifest.Format != FormatName || manifest.Files.Count == 0)
            throw new InvalidDataException($"'{path}' is not an {FormatName} file list");
        if (manifest.Version > FormatVersion)
            throw new InvalidDataException($"'{path}' has format version {manifest.Version}; this atu reads up to {FormatVersion}");
        return manifest;
    }

    /// <summary>Every listed file exists with its recorded size and SHA-256 (hashed again only after a file changed,
    /// <see cref="VerifiedFiles"/>).</summary>
    public void Verify(string folder) => ArtifactManifest.VerifyFiles(folder, Files, Kind);

    /// <summary>Loads the list of <paramref name="folder"/> and verifies the folder against it.</summary>
    public static void VerifyFolder(string folder) => Load(folder).Verify(folder);
}
