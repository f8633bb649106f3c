using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace AlignThenUnlearn.Models.Checkpoints;

/// <summary>Writes a safetensors file as a stream: the header (declared up front, tensors in the order
/// given, padded with spaces to a multiple of 8 bytes as the reference implementation does), then the
/// data appended in that order. The file appears under its name only on <see cref="Commit"/>; a writer
/// disposed before that leaves nothing behind.</summary>
public sealed class SafetensorsWriter : IDisposable
{
    /// <summary>Elements converted per step by <see cref="AppendValues"/>.</summary>
    private const int StepElements = 1 << 16;

    private readonly AtomicFile file;
    private readonly TensorSpec[] tensors;
    /// <summary>End offset of each tensor in the data buffer.</summary>
    private readonly long[] ends;
    private readonly byte[] conversionBuffer = new byte[StepElements * 4];
    private int current;

    /// <summary>Data bytes appended so far.</summary>
    public long Written { get; private set; }
    public long DataLength => ends.Length == 0 ? 0 : ends[^1];

    private SafetensorsWriter(AtomicFile file, TensorSpec[] tensors, long[] ends)
    {
        this.file = file;
        this.tensors = tensors;
        this.ends = ends;
    }

    public static SafetensorsWriter Create(string path, IReadOnlyList<TensorSpec> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var header = BuildHeader(tensors, metadata, out var ends);
        var file = AtomicFile.Create(path);
        try
        {
            Span<byte> length = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)header.Length);
            file.Stream.Write(length);
            file.Stream.Write(header);
            return new SafetensorsWriter(file, [.. tensors], ends);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>Writes a whole file from <paramref name="sources"/>.</summary>
    public static void Write(string path, IReadOnlyList<TensorSource> sources, IReadOnlyDictionary<string, string>? metadata = null)
    {
        using var writer = Create(path, sources.Select(s => s.Spec).ToList(), metadata);
        for (int i = 0; i < sources.Count; i++)
        {
            sources[i].WriteTo(writer);
            if (writer.Written != writer.ends[i])
                throw new InvalidOperationException(
                    $"tensor '{sources[i].Spec.Name}' for '{path}' supplied {writer.Written - (i == 0 ? 0 : writer.ends[i - 1])} bytes; its dtype and shape need {sources[i].Spec.ByteLength}");
        }
        writer.Commit();
    }

    /// <summary>Writes <paramref name="sources"/> into <paramref name="directory"/> as Hugging Face does: shards of at most
    /// <paramref name="maxShardBytes"/> tensor bytes (a larger tensor gets a shard of its own) named
    /// <c>model-00001-of-0000n.safetensors</c> plus <c>model.safetensors.index.json</c>, or a single
    /// <c>model.safetensors</c> when everything fits in one. The folder must not already hold a checkpoint of that
    /// name; if anything fails, the files written so far are removed. Returns the files written.</summary>
    public static IReadOnlyList<string> WriteSharded(string directory, IReadOnlyList<TensorSource> sources, long maxShardBytes,
        IReadOnlyDictionary<string, string>? metadata = null, string baseName = "model")
    {
        if (maxShardBytes <= 0) throw new ArgumentOutOfRangeException(nameof(maxShardBytes), maxShardBytes, "must be positive");
        Directory.CreateDirectory(directory);
        var existing = Directory.EnumerateFiles(directory, $"{baseName}*.safetensors*")
            .Select(System.IO.Path.GetFileName)
            .Where(f => f == $"{baseName}.safetensors" || f == $"{baseName}.safetensors.index.json" || f!.StartsWith($"{baseName}-", StringComparison.Ordinal))
            .ToList();
        if (existing.Count > 0)
            throw new IOException($"'{directory}' already holds a checkpoint ({string.Join(", ", existing)}); write into a folder without one");

        var shards = new List<List<TensorSource>>();
        long shardBytes = 0;
        foreach (var source in sources)
        {
            if (shards.Count == 0 || (shardBytes + source.Spec.ByteLength > maxShardBytes && shards[^1].Count > 0))
            {
                shards.Add([]);
                shardBytes = 0;
            }
            shards[^1].Add(source);
            shardBytes += source.Spec.ByteLength;
        }
        if (shards.Count <= 1)
        {
            var single = System.IO.Path.Combine(directory, $"{baseName}.safetensors");
            Write(single, sources, metadata);
            return [single];
        }

        var written = new List<string>();
        try
        {
            var weightMap = new SortedDictionary<string, string>(StringComparer.Ordinal);
            for (int i = 0; i < shards.Count; i++)
            {
                var name = $"{baseName}-{i + 1:D5}-of-{shards.Count:D5}.safetensors";
                var path = System.IO.Path.Combine(directory, name);
                Write(path, shards[i], metadata);
                written.Add(path);
                foreach (var source in shards[i]) weightMap[source.Spec.Name] = name;
            }
            var indexPath = System.IO.Path.Combine(directory, $"{baseName}.safetensors.index.json");
            var index = new
            {
                metadata = new { total_size = sources.Sum(s => s.Spec.ByteLength) },
                weight_map = weightMap,
            };
            AtomicFile.WriteAllBytes(indexPath, JsonSerializer.SerializeToUtf8Bytes(index, new JsonSerializerOptions { WriteIndented = true }));
            written.Add(indexPath);
            return written;
        }
        catch
        {
            foreach (var path in written) File.Delete(path);
            throw;
        }
    }

    /// <summary>Appends stored bytes (little-endian elements of the declared dtypes); may span tensors.</summary>
    public void Append(ReadOnlySpan<byte> bytes)
    {
        if (Written + bytes.Length > DataLength)
            throw new InvalidOperationException($"'{file.Path}': {Written + bytes.Length - DataLength} bytes more than the declared tensors hold");
        file.Stream.Write(bytes);
        Written += bytes.Length;
    }

    public void Append<T>(ReadOnlySpan<T> values) where T : unmanaged => Append(MemoryMarshal.AsBytes(values));

    /// <summary>Appends float32 values, each stored in the dtype of the tensor it belongs to (F32, F16 or BF16);
    /// may span tensors.</summary>
    public void AppendValues(ReadOnlySpan<float> values)
    {
        while (values.Length > 0)
        {
            while (current < ends.Length && ends[current] <= Written) current++;
            if (current == ends.Length)
                throw new InvalidOperationException($"'{file.Path}': {values.Length} values more than the declared tensors hold");
            var spec = tensors[current];
            int size = spec.DType.ByteSize();
            if (!spec.DType.IsFloatingPoint() || (ends[current] - Written) % size != 0)
                throw new InvalidOperationException($"'{file.Path}': values cannot be appended to tensor '{spec.Name}' ({spec.DType}) at this point");
            int n = (int)Math.Min(Math.Min(values.Length, StepElements), (ends[current] - Written) / size);
            var stored = conversionBuffer.AsSpan(0, n * size);
            ElementConversion.FromSingle(values[..n], spec.DType, stored);
            Append(stored);
            values = values[n..];
        }
    }

    /// <summary>Checks that every declared byte was written, flushes to disk and renames the file into place.</summary>
    public void Commit()
    {
        if (Written != DataLength)
        {
            int incomplete = Array.FindIndex(ends, end => end > Written);
            throw new InvalidOperationException($"'{file.Path}': tensor '{tensors[incomplete].Name}' and those after it are not complete ({Written} of {DataLength} data bytes written)");
        }
        file.Commit();
    }

    public void Dispose() => file.Dispose();

    /// <summary>The header bytes (JSON padded with spaces to a multiple of 8) and each tensor's end offset.</summary>
    public static byte[] BuildHeader(IReadOnlyList<TensorSpec> tensors, IReadOnlyDictionary<string, string>? metadata, out long[] ends)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        ends = new long[tensors.Count];
        using var json = new MemoryStream();
        using (var writer = new Utf8JsonWriter(json, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            writer.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                writer.WriteStartObject(SafetensorsHeader.MetadataKey);
                foreach (var (key, value) in metadata) writer.WriteString(key, value);
                writer.WriteEndObject();
            }
            long offset = 0;
            for (int i = 0; i < tensors.Count; i++)
            {
                var spec = tensors[i];
                if (spec.Name.Length == 0 || spec.Name == SafetensorsHeader.MetadataKey || !names.Add(spec.Name))
                    throw new ArgumentException($"tensor name '{spec.Name}' is empty, reserved or given twice");
                if (!Enum.IsDefined(spec.DType) || spec.Shape.Any(d => d < 0))
                    throw new ArgumentException($"tensor '{spec.Name}': dtype {spec.DType} or shape [{string.Join(", ", spec.Shape)}] is invalid");
                writer.WriteStartObject(spec.Name);
                writer.WriteString("dtype", spec.DType.HeaderName());
                writer.WriteStartArray("shape");
                foreach (var dim in spec.Shape) writer.WriteNumberValue(dim);
                writer.WriteEndArray();
                writer.WriteStartArray("data_offsets");
                writer.WriteNumberValue(offset);
                writer.WriteNumberValue(offset + spec.ByteLength);
                writer.WriteEndArray();
                writer.WriteEndObject();
                offset += spec.ByteLength;
                ends[i] = offset;
            }
            writer.WriteEndObject();
        }
        int padding = (int)((8 - json.Length % 8) % 8);
        for (int i = 0; i < padding; i++) json.WriteByte((byte)' ');
        if (json.Length > SafetensorsHeader.MaxHeaderBytes)
            throw new ArgumentException($"the header of {tensors.Count} tensors is {json.Length} bytes, more than the limit of {SafetensorsHeader.MaxHeaderBytes}");
        return json.ToArray();
    }
}
