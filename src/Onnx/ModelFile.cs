using Google.Protobuf;
using Onnx;

namespace AlignThenUnlearn.Onnx;

/// <summary>Reads and writes ONNX model files, with tensors optionally kept in a sidecar file
/// (ONNX external data). External references are checked before anything is read: a
/// <c>location</c> that leaves the model's folder is refused, whatever loads the file later.</summary>
public static class ModelFile
{
    public static ModelProto Load(string path, bool loadExternalData = true)
    {
        var full = Path.GetFullPath(path);
        if (!File.Exists(full)) throw new FileNotFoundException($"ONNX model '{path}' does not exist", path);
        ModelProto model;
        try
        {
            using var stream = File.OpenRead(full);
            model = ModelProto.Parser.ParseFrom(stream);
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new OnnxFormatException($"'{path}' is not a readable ONNX model (truncated or corrupt file of {new FileInfo(full).Length} bytes): {e.Message}", e);
        }
        if (model.Graph is null || (model.Graph.Node.Count == 0 && model.Graph.Output.Count == 0))
            throw new OnnxFormatException($"'{path}' holds no graph (truncated or not an ONNX model)");

        var folder = Path.GetDirectoryName(full)!;
        foreach (var tensor in AllInitializers(model.Graph))
        {
            if (tensor.DataLocation != TensorProto.Types.DataLocation.External) continue;
            var (file, offset, length) = ResolveExternal(tensor, folder, path);
            if (loadExternalData)
            {
                tensor.RawData = ReadRange(file, offset, length, tensor.Name);
                tensor.ExternalData.Clear();
                tensor.DataLocation = TensorProto.Types.DataLocation.Default;
            }
        }
        return model;
    }

    /// <summary>Checks every external-data reference of <paramref name="model"/> as stored in <paramref name="path"/>.</summary>
    public static void CheckExternalData(ModelProto model, string path)
    {
        var folder = Path.GetDirectoryName(Path.GetFullPath(path))!;
        foreach (var tensor in AllInitializers(model.Graph))
            if (tensor.DataLocation == TensorProto.Types.DataLocation.External) ResolveExternal(tensor, folder, path);
    }

    /// <summary>Writes the model; initializers of at least <paramref name="externalThreshold"/> bytes go to
    /// <c>&lt;file&gt;.data</c> beside it (64-byte aligned). The files appear only once complete.</summary>
    public static void Save(ModelProto model, string path, long externalThreshold = long.MaxValue)
    {
        var full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        var dataName = Path.GetFileName(full) + ".data";
        var dataPath = Path.Combine(Path.GetDirectoryName(full)!, dataName);
        var copy = model.Clone();
        var large = AllInitializers(copy.Graph).Where(t => t.DataLocation != TensorProto.Types.DataLocation.External && t.RawData.Length >= externalThreshold).ToList();
        if (large.Count > 0)
        {
            var tmpData = dataPath + ".tmp";
            using (var data = File.Create(tmpData))
            {
                foreach (var t in large)
                {
                    long pad = (64 - data.Position % 64) % 64;
                    data.Write(new byte[pad]);
                    long offset = data.Position;
                    t.RawData.WriteTo(data);
                    t.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = dataName });
                    t.ExternalData.Add(new StringStringEntryProto { Key = "offset", Value = offset.ToString() });
                    t.ExternalData.Add(new StringStringEntryProto { Key = "length", Value = t.RawData.Length.ToString() });
                    t.DataLocation = TensorProto.Types.DataLocation.External;
                    t.RawData = ByteString.Empty;
                }
            }
            File.Move(tmpData, dataPath, overwrite: true);
        }
        var tmp = full + ".tmp";
        using (var stream = File.Create(tmp)) copy.WriteTo(stream);
        File.Move(tmp, full, overwrite: true);
    }

    static IEnumerable<TensorProto> AllInitializers(GraphProto graph)
    {
        foreach (var t in graph.Initializer) yield return t;
        foreach (var n in graph.Node)
            foreach (var a in n.Attribute)
            {
                if (a.G is not null) foreach (var t in AllInitializers(a.G)) yield return t;
                foreach (var g in a.Graphs) foreach (var t in AllInitializers(g)) yield return t;
                if (a.T is not null) yield return a.T;
            }
    }

    static (string File, long Offset, long Length) ResolveExternal(TensorProto tensor, string folder, string modelPath)
    {
        string? location = null;
        long offset = 0, length = -1;
        foreach (var e in tensor.ExternalData)
        {
            switch (e.Key)
            {
                case "location": location = e.Value; break;
                case "offset": offset = ParseLong(e.Value, tensor, "offset", modelPath); break;
                case "length": length = ParseLong(e.Value, tensor, "length", modelPath); break;
            }
        }
        if (string.IsNullOrEmpty(location))
            throw new OnnxFormatException($"tensor '{tensor.Name}' in '{modelPath}' is marked external but has no location");
        var file = CheckLocation(tensor.Name, location, folder, modelPath);
        if (!File.Exists(file))
            throw new OnnxFormatException($"external data '{location}' of tensor '{tensor.Name}' in '{modelPath}' does not exist");
        long size = new FileInfo(file).Length;
        // Compared without offset + length, which can overflow.
        if (offset > size || (length >= 0 && length > size - offset))
            throw new OnnxFormatException($"external data of tensor '{tensor.Name}' in '{modelPath}': bytes from offset {offset}{(length < 0 ? "" : $" (length {length})")} lie outside '{location}' ({size} bytes)");
        if (length < 0) length = size - offset;
        var type = (TensorProto.Types.DataType)tensor.DataType;
        if (type != TensorProto.Types.DataType.String && Tensors.ElementCount(tensor) * Tensors.ElementSize(type) != length)
            throw new OnnxFormatException($"external data '{location}' of tensor '{tensor.Name}' in '{modelPath}': {length} bytes, but shape [{string.Join(",", tensor.Dims)}] of {type} needs {Tensors.ElementCount(tensor) * Tensors.ElementSize(type)}");
        return (file, offset, length);
    }

    /// <summary>Resolves an external-data location, refusing absolute paths, '..' and links that lead out of the model's folder.</summary>
    public static string CheckLocation(string tensorName, string location, string folder, string modelPath)
    {
        string Refuse(string why) => throw new OnnxFormatException(
            $"external data location '{location}' of tensor '{tensorName}' in '{modelPath}' {why}; it must be a relative path inside the model's folder '{folder}'");
        if (Path.IsPathRooted(location) || location.StartsWith('/') || location.StartsWith('\\')) Refuse("is absolute");
        if (location.Split('/', '\\').Any(part => part == "..")) Refuse("contains '..'");
        var root = Path.GetFullPath(folder).TrimEnd(Path.DirectorySeparatorChar) + Path.DirectorySeparatorChar;
        var full = Path.GetFullPath(Path.Combine(folder, location));
        if (!full.StartsWith(root, StringComparison.Ordinal)) Refuse("leaves the folder");
        // Every component that is a link must still resolve inside the folder.
        var real = ResolveLinks(full) ?? Refuse("passes through too many levels of links");
        var realRoot = (ResolveLinks(Path.GetFullPath(folder)) ?? Refuse("lies in a folder reached through too many levels of links"))
            .TrimEnd(Path.DirectorySeparatorChar) + Path.DirectorySeparatorChar;
        if (!real.StartsWith(realRoot, StringComparison.Ordinal)) Refuse($"is a link to '{real}' outside the folder");
        return full;
    }

    /// <summary>The path with every link resolved, walked one component at a time as the OS does: a link is
    /// replaced by its fully resolved target (which may pass through further links) before the next component,
    /// and '..' leaves what has been resolved so far. Null when links nest too deeply (a loop).</summary>
    static string? ResolveLinks(string path, int depth = 0)
    {
        var current = Path.GetPathRoot(path)!;
        foreach (var part in path[current.Length..].Split([Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar], StringSplitOptions.RemoveEmptyEntries))
        {
            if (part == ".") continue;
            if (part == "..") { current = Path.GetDirectoryName(current) ?? current; continue; }
            current = Path.Combine(current, part);
            FileSystemInfo info = Directory.Exists(current) ? new DirectoryInfo(current) : new FileInfo(current);
            if (info.LinkTarget is not { } target) continue;
            if (depth >= 40) return null;
            if (ResolveLinks(Path.Combine(Path.GetDirectoryName(current)!, target), depth + 1) is not { } resolved) return null;
            current = resolved;
        }
        return current;
    }

    static long ParseLong(string s, TensorProto t, string key, string modelPath) =>
        long.TryParse(s, out var v) && v >= 0 ? v : throw new OnnxFormatException($"tensor '{t.Name}' in '{modelPath}': external-data {key} '{s}' is not a non-negative integer");

    static ByteString ReadRange(string file, long offset, long length, string tensor)
    {
        if (length > int.MaxValue) throw new OnnxFormatException($"tensor '{tensor}' is {length} bytes; tensors over 2 GiB cannot be held in a protobuf model, let ONNX Runtime read them from the file instead");
        using var fs = File.OpenRead(file);
        fs.Seek(offset, SeekOrigin.Begin);
        var buffer = new byte[length];
        fs.ReadExactly(buffer);
        return UnsafeByteOperations.UnsafeWrap(buffer);
    }
}
