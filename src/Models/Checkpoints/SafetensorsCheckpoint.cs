using System.Text.Json;

namespace AlignThenUnlearn.Models.Checkpoints;

/// <summary>A checkpoint as Hugging Face stores it: one <c>model.safetensors</c>, or shards listed by
/// <c>model.safetensors.index.json</c> (<c>{"metadata": {...}, "weight_map": {tensor: file}}</c>). Every
/// shard is opened and checked against the index up front, so a missing shard or a tensor missing from
/// its shard is refused before any weight is read.</summary>
public sealed class SafetensorsCheckpoint : IDisposable
{
    public const string SingleFileName = "model.safetensors";
    public const string IndexFileName = "model.safetensors.index.json";

    private readonly Dictionary<string, SafetensorsFile> fileOf;

    /// <summary>The file opened: the single safetensors file or the index.</summary>
    public string Path { get; }
    public IReadOnlyList<SafetensorsFile> Files { get; }
    /// <summary>Tensor names: header order for a single file, index order for shards.</summary>
    public IReadOnlyList<string> Names { get; }
    /// <summary>The index's <c>metadata</c> (strings as they are, other JSON values as JSON text); empty for a single file.</summary>
    public IReadOnlyDictionary<string, string> IndexMetadata { get; }

    private SafetensorsCheckpoint(string path, IReadOnlyList<SafetensorsFile> files, IReadOnlyList<string> names,
        Dictionary<string, SafetensorsFile> fileOf, IReadOnlyDictionary<string, string> indexMetadata)
    {
        Path = path;
        Files = files;
        Names = names;
        this.fileOf = fileOf;
        IndexMetadata = indexMetadata;
    }

    /// <summary>Opens a checkpoint folder (<c>model.safetensors</c> if present, as Hugging Face prefers it,
    /// else <c>model.safetensors.index.json</c>), an index file, or a single safetensors file.</summary>
    public static SafetensorsCheckpoint Open(string path, int windowBytes = SafetensorsFile.DefaultWindowBytes)
    {
        if (Directory.Exists(path))
        {
            var single = System.IO.Path.Combine(path, SingleFileName);
            var index = System.IO.Path.Combine(path, IndexFileName);
            if (File.Exists(single)) return OpenSingle(single, windowBytes);
            if (File.Exists(index)) return OpenIndex(index, windowBytes);
            throw new FileNotFoundException($"checkpoint folder '{path}' holds neither {SingleFileName} nor {IndexFileName}", single);
        }
        return path.EndsWith(".index.json", StringComparison.Ordinal) ? OpenIndex(path, windowBytes) : OpenSingle(path, windowBytes);
    }

    private static SafetensorsCheckpoint OpenSingle(string path, int windowBytes)
    {
        var file = SafetensorsFile.Open(path, windowBytes);
        return new SafetensorsCheckpoint(path, [file], file.Entries.Select(e => e.Name).ToList(),
            file.Entries.ToDictionary(e => e.Name, _ => file, StringComparer.Ordinal), new Dictionary<string, string>());
    }

    private static SafetensorsCheckpoint OpenIndex(string indexPath, int windowBytes)
    {
        if (!File.Exists(indexPath)) throw new FileNotFoundException($"safetensors index '{indexPath}' does not exist", indexPath);
        var (weightMap, metadata) = ReadIndex(indexPath);
        var folder = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(indexPath))!;
        var opened = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
        try
        {
            var fileOf = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
            foreach (var shardGroup in weightMap.GroupBy(p => p.Shard, StringComparer.Ordinal))
            {
                var shardName = shardGroup.Key;
                var tensors = shardGroup.Select(p => p.Tensor).ToList();
                string example = $"'{tensors[0]}'" + (tensors.Count > 1 ? $" and {tensors.Count - 1} more" : "");
                if (!IsPlainFileName(shardName))
                    throw new ModelFormatException($"index '{indexPath}' maps tensor {example} to '{shardName}', which is not a file name in the index's folder");
                var shardPath = System.IO.Path.Combine(folder, shardName);
                if (!File.Exists(shardPath))
                    throw new ModelFormatException($"shard '{shardName}' listed in index '{indexPath}' for tensor {example} does not exist (missing shard)");
                var shard = SafetensorsFile.Open(shardPath, windowBytes);
                opened.Add(shardName, shard);
                foreach (var tensor in tensors)
                {
                    if (!shard.Contains(tensor))
                        throw new ModelFormatException($"index '{indexPath}' maps tensor '{tensor}' to shard '{shardPath}', which holds no such tensor");
                    fileOf.Add(tensor, shard);
                }
            }
            return new SafetensorsCheckpoint(indexPath, opened.Values.ToList(), weightMap.Select(p => p.Tensor).ToList(), fileOf, metadata);
        }
        catch
        {
            foreach (var shard in opened.Values) shard.Dispose();
            throw;
        }
    }

    private static (List<(string Tensor, string Shard)> WeightMap, Dictionary<string, string> Metadata) ReadIndex(string indexPath)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(File.ReadAllBytes(indexPath));
        }
        catch (JsonException e)
        {
            throw new ModelFormatException($"safetensors index '{indexPath}' is not valid JSON: {e.Message}", e);
        }
        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("weight_map", out var map) || map.ValueKind != JsonValueKind.Object)
                throw new ModelFormatException($"safetensors index '{indexPath}' has no 'weight_map' object");
            var weightMap = new List<(string, string)>();
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var item in map.EnumerateObject())
            {
                if (item.Value.ValueKind != JsonValueKind.String)
                    throw new ModelFormatException($"index '{indexPath}' maps tensor '{item.Name}' to a JSON {item.Value.ValueKind}, not a file name");
                if (!seen.Add(item.Name))
                    throw new ModelFormatException($"index '{indexPath}' lists tensor '{item.Name}' twice");
                weightMap.Add((item.Name, item.Value.GetString()!));
            }
            var metadata = new Dictionary<string, string>();
            if (root.TryGetProperty("metadata", out var meta) && meta.ValueKind == JsonValueKind.Object)
                foreach (var item in meta.EnumerateObject())
                    metadata[item.Name] = item.Value.ValueKind == JsonValueKind.String ? item.Value.GetString()! : item.Value.GetRawText();
            return (weightMap, metadata);
        }
    }

    private static bool IsPlainFileName(string name) =>
        name.Length > 0 && name != "." && name != ".." && name.IndexOfAny(['/', '\\', '\0']) < 0 && !System.IO.Path.IsPathRooted(name);

    public bool Contains(string name) => fileOf.ContainsKey(name);

    /// <summary>Checks that <paramref name="name"/> is here with <paramref name="shape"/> and a floating dtype (F32, F16, BF16),
    /// so that it can be read as a weight; the error names the file and the tensor.</summary>
    public void RequireWeight(string name, long[] shape)
    {
        static string Format(long[] s) => $"[{string.Join(", ", s)}]";
        if (!Contains(name)) throw new ModelFormatException($"'{Path}' has no tensor '{name}', which the model needs with shape {Format(shape)}");
        var entry = Entry(name);
        if (!entry.Shape.SequenceEqual(shape))
            throw new ModelFormatException($"tensor '{name}' in '{FileOf(name).Path}' has shape {Format(entry.Shape)}; the model needs {Format(shape)}");
        if (entry.DType is not (SafetensorsDType.F32 or SafetensorsDType.F16 or SafetensorsDType.BF16))
            throw new ModelFormatException($"tensor '{name}' in '{FileOf(name).Path}' is {entry.DType}; weights are read from F32, F16 or BF16");
    }

    /// <summary>The file that holds tensor <paramref name="name"/>; a missing tensor is a clear error.</summary>
    public SafetensorsFile FileOf(string name) =>
        fileOf.TryGetValue(name, out var file) ? file : throw new ModelFormatException($"checkpoint '{Path}' holds no tensor '{name}'");

    public SafetensorsEntry Entry(string name) => FileOf(name).Entry(name);
    // A checkpoint holds weights, and weights enter through these reads: a NaN or an infinity (or a value beyond float16's
    // range, read as float16) is refused where it is read, in the caller's span, before a model computes NaN with it
    // (which would read as a score).
    public void Read(string name, Span<float> destination) => ReadSlice(name, 0, destination, whole: true);
    public void Read(string name, Span<Half> destination) => ReadSlice(name, 0, destination, whole: true);
    public void Read(string name, Span<long> destination) => FileOf(name).Read(name, destination);
    public void Read(string name, Span<int> destination) => FileOf(name).Read(name, destination);
    public void ReadSlice(string name, long firstElement, Span<float> destination) => ReadSlice(name, firstElement, destination, whole: false);
    public void ReadSlice(string name, long firstElement, Span<Half> destination) => ReadSlice(name, firstElement, destination, whole: false);

    void ReadSlice(string name, long firstElement, Span<float> destination, bool whole)
    {
        var file = FileOf(name);
        if (whole) file.Read(name, destination);
        else file.ReadSlice(name, firstElement, destination);
        file.RequireFinite(name, firstElement, destination);
    }

    void ReadSlice(string name, long firstElement, Span<Half> destination, bool whole)
    {
        var file = FileOf(name);
        if (whole) file.Read(name, destination);
        else file.ReadSlice(name, firstElement, destination);
        file.RequireFinite(name, firstElement, destination);
    }
    public void ReadBytes(string name, Span<byte> destination) => FileOf(name).ReadBytes(name, destination);
    /// <summary>Refuses a floating-point tensor holding NaN or infinity, naming the file, tensor and element (no copy).</summary>
    public void RequireFinite(string name) => FileOf(name).RequireFinite(name);
    public float[] ReadSingles(string name)
    {
        var values = FileOf(name).ReadSingles(name);
        FileOf(name).RequireFinite(name, 0, values);
        return values;
    }

    public void Dispose()
    {
        foreach (var file in Files) file.Dispose();
    }
}
