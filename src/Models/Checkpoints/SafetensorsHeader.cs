using System.Text.Json;

namespace AlignThenUnlearn.Models.Checkpoints;

/// <summary>One tensor as a safetensors header describes it; offsets are relative to the data buffer.</summary>
public sealed record SafetensorsEntry(string Name, SafetensorsDType DType, long[] Shape, long DataBegin, long DataEnd)
{
    public long ByteLength => DataEnd - DataBegin;
    public long ElementCount => ByteLength / DType.ByteSize();
}

/// <summary>Parses and validates the JSON header of a safetensors file. Nothing in it is trusted: every
/// violation is a <see cref="ModelFormatException"/> that names the file and the tensor.</summary>
public static class SafetensorsHeader
{
    /// <summary>The reference implementation's bound on the header length.</summary>
    public const long MaxHeaderBytes = 100_000_000;
    public const string MetadataKey = "__metadata__";

    /// <param name="json">The header bytes (N bytes after the 8-byte length).</param>
    /// <param name="dataLength">Bytes in the file after the header: every tensor must lie inside them.</param>
    /// <param name="file">The file, for messages.</param>
    public static (IReadOnlyList<SafetensorsEntry> Entries, IReadOnlyDictionary<string, string> Metadata) Parse(
        ReadOnlySpan<byte> json, long dataLength, string file)
    {
        JsonDocument document;
        try
        {
            var reader = new Utf8JsonReader(json, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Disallow });
            document = JsonDocument.ParseValue(ref reader);
            // ParseValue stops after the first value; only the reference's space padding may follow it.
            if (json[(int)reader.BytesConsumed..].IndexOfAnyExcept(" \t\r\n"u8) >= 0)
                throw new ModelFormatException($"safetensors header of '{file}' has bytes after its JSON object (corrupt header)");
        }
        catch (JsonException e)
        {
            throw new ModelFormatException($"safetensors header of '{file}' is not valid JSON (corrupt or not a safetensors file): {e.Message}", e);
        }
        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw new ModelFormatException($"safetensors header of '{file}' is a JSON {root.ValueKind}, not an object");
            var entries = new List<SafetensorsEntry>();
            var metadata = new Dictionary<string, string>();
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var property in root.EnumerateObject())
            {
                if (!seen.Add(property.Name))
                    throw new ModelFormatException($"safetensors header of '{file}' lists '{property.Name}' twice");
                if (property.Name == MetadataKey) ReadMetadata(property.Value, metadata, file);
                else entries.Add(ReadEntry(property.Name, property.Value, dataLength, file));
            }
            CheckNoOverlap(entries, file);
            return (entries, metadata);
        }
    }

    private static void ReadMetadata(JsonElement value, Dictionary<string, string> metadata, string file)
    {
        if (value.ValueKind != JsonValueKind.Object)
            throw new ModelFormatException($"'{MetadataKey}' in '{file}' is a JSON {value.ValueKind}, not an object of strings");
        foreach (var item in value.EnumerateObject())
        {
            if (item.Value.ValueKind != JsonValueKind.String)
                throw new ModelFormatException($"'{MetadataKey}' entry '{item.Name}' in '{file}' is a JSON {item.Value.ValueKind}, not a string");
            metadata[item.Name] = item.Value.GetString()!;
        }
    }

    private static SafetensorsEntry ReadEntry(string name, JsonElement value, long dataLength, string file)
    {
        string where = $"tensor '{name}' in '{file}'";
        if (value.ValueKind != JsonValueKind.Object)
            throw new ModelFormatException($"{where}: header entry is a JSON {value.ValueKind}, not an object");

        if (!value.TryGetProperty("dtype", out var dtypeValue) || dtypeValue.ValueKind != JsonValueKind.String)
            throw new ModelFormatException($"{where}: 'dtype' is missing or not a string");
        var dtypeName = dtypeValue.GetString()!;
        if (!SafetensorsDTypes.TryParse(dtypeName, out var dtype))
            throw new ModelFormatException($"{where}: dtype '{dtypeName}' is not supported (supported: {SafetensorsDTypes.Supported})");

        var shape = ReadIntegers(value, "shape", where, count: null);
        var offsets = ReadIntegers(value, "data_offsets", where, count: 2);
        long begin = offsets[0], end = offsets[1];
        if (begin > end)
            throw new ModelFormatException($"{where}: data_offsets [{begin}, {end}] end before they begin");
        if (end > dataLength)
            throw new ModelFormatException(
                $"{where}: data_offsets [{begin}, {end}] lie outside the data buffer of {dataLength} bytes (truncated or corrupt file)");

        long expected;
        try
        {
            long elements = 1;
            foreach (var dim in shape) elements = checked(elements * dim);
            expected = checked(elements * dtype.ByteSize());
        }
        catch (OverflowException)
        {
            throw new ModelFormatException($"{where}: shape [{string.Join(", ", shape)}] is too large to address");
        }
        if (end - begin != expected)
            throw new ModelFormatException(
                $"{where}: {end - begin} bytes at data_offsets [{begin}, {end}] but dtype {dtypeName} and shape [{string.Join(", ", shape)}] need {expected} (mislabelled tensor)");
        return new SafetensorsEntry(name, dtype, shape, begin, end);
    }

    private static long[] ReadIntegers(JsonElement entry, string key, string where, int? count)
    {
        if (!entry.TryGetProperty(key, out var array) || array.ValueKind != JsonValueKind.Array)
            throw new ModelFormatException($"{where}: '{key}' is missing or not an array");
        var values = new List<long>();
        foreach (var item in array.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt64(out long v) || v < 0)
                throw new ModelFormatException($"{where}: '{key}' holds {item.GetRawText()}, not a non-negative integer");
            values.Add(v);
        }
        if (count is int n && values.Count != n)
            throw new ModelFormatException($"{where}: '{key}' has {values.Count} entries, expected {n}");
        return [.. values];
    }

    private static void CheckNoOverlap(List<SafetensorsEntry> entries, string file)
    {
        // Empty tensors occupy no bytes and cannot overlap anything.
        var occupied = entries.Where(e => e.ByteLength > 0).OrderBy(e => e.DataBegin).ToList();
        for (int i = 1; i < occupied.Count; i++)
            if (occupied[i].DataBegin < occupied[i - 1].DataEnd)
                throw new ModelFormatException(
                    $"tensors '{occupied[i - 1].Name}' [{occupied[i - 1].DataBegin}, {occupied[i - 1].DataEnd}] and '{occupied[i].Name}' [{occupied[i].DataBegin}, {occupied[i].DataEnd}] overlap in '{file}'");
    }
}
