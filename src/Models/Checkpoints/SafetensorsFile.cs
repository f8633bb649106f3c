using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;

namespace AlignThenUnlearn.Models.Checkpoints;

/// <summary>One safetensors file, memory-mapped. The header is read and validated when the file is
/// opened; tensors are read through short-lived views of at most <see cref="WindowBytes"/> bytes and
/// converted straight into the caller's span, so neither the file nor a whole tensor is ever copied
/// into managed memory and the mapped pages held at once stay small.</summary>
public sealed class SafetensorsFile : IDisposable
{
    public const int DefaultWindowBytes = 16 << 20;

    private readonly MemoryMappedFile map;
    private readonly Dictionary<string, SafetensorsEntry> byName;
    private readonly long dataStart;

    public string Path { get; }
    /// <summary>Byte offset of the data buffer in the file (entries' offsets are relative to it).</summary>
    public long DataStart => dataStart;
    /// <summary>Tensors in header order.</summary>
    public IReadOnlyList<SafetensorsEntry> Entries { get; }
    /// <summary>The header's <c>__metadata__</c> (empty when absent).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }
    /// <summary>Bytes mapped per conversion step; a multiple of 8 so that no element straddles two views.</summary>
    public int WindowBytes { get; }

    private SafetensorsFile(string path, MemoryMappedFile map, long dataStart, IReadOnlyList<SafetensorsEntry> entries,
        IReadOnlyDictionary<string, string> metadata, int windowBytes)
    {
        Path = path;
        this.map = map;
        this.dataStart = dataStart;
        Entries = entries;
        Metadata = metadata;
        WindowBytes = windowBytes;
        byName = entries.ToDictionary(e => e.Name, StringComparer.Ordinal);
    }

    public static SafetensorsFile Open(string path, int windowBytes = DefaultWindowBytes)
    {
        if (windowBytes < 8 || windowBytes % 8 != 0)
            throw new ArgumentOutOfRangeException(nameof(windowBytes), windowBytes, "must be a positive multiple of 8");
        if (!BitConverter.IsLittleEndian)
            throw new PlatformNotSupportedException("safetensors data is little-endian; this reader runs on little-endian hosts only");
        if (!File.Exists(path)) throw new FileNotFoundException($"safetensors file '{path}' does not exist", path);

        var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1);
        try
        {
            long fileLength = stream.Length;
            if (fileLength < 8)
                throw new ModelFormatException($"'{path}' is {fileLength} bytes, too short for the 8-byte header length of a safetensors file (truncated)");
            Span<byte> lengthBytes = stackalloc byte[8];
            stream.ReadExactly(lengthBytes);
            ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(lengthBytes);
            if (headerLength > SafetensorsHeader.MaxHeaderBytes)
                throw new ModelFormatException($"'{path}' declares a safetensors header of {headerLength} bytes, more than the limit of {SafetensorsHeader.MaxHeaderBytes} (corrupt or not a safetensors file)");
            if (8 + (long)headerLength > fileLength)
                throw new ModelFormatException($"'{path}' declares a safetensors header of {headerLength} bytes, beyond the end of the {fileLength}-byte file (truncated)");

            var header = new byte[headerLength];
            stream.ReadExactly(header);
            long dataStart = 8 + (long)headerLength;
            var (entries, metadata) = SafetensorsHeader.Parse(header, fileLength - dataStart, path);

            var map = MemoryMappedFile.CreateFromFile(stream, mapName: null, capacity: 0, MemoryMappedFileAccess.Read,
                HandleInheritability.None, leaveOpen: false);
            return new SafetensorsFile(path, map, dataStart, entries, metadata, windowBytes);
        }
        catch
        {
            stream.Dispose();
            throw;
        }
    }

    public bool Contains(string name) => byName.ContainsKey(name);

    public SafetensorsEntry Entry(string name) =>
        byName.TryGetValue(name, out var entry) ? entry : throw new ModelFormatException($"'{Path}' holds no tensor '{name}'");

    /// <summary>Reads the whole tensor, converted to float32 (from F32, F16 or BF16).</summary>
    public void Read(string name, Span<float> destination) => Read(name, 0, destination, whole: true);
    /// <summary>Reads the whole tensor, converted to float16 (from F32, F16 or BF16).</summary>
    public void Read(string name, Span<Half> destination) => Read(name, 0, destination, whole: true);
    /// <summary>Reads the whole I64 tensor.</summary>
    public void Read(string name, Span<long> destination) => Read(name, 0, destination, whole: true);
    /// <summary>Reads the whole I32 tensor.</summary>
    public void Read(string name, Span<int> destination) => Read(name, 0, destination, whole: true);

    /// <summary>Reads elements [<paramref name="firstElement"/>, + destination.Length) of the flattened tensor as float32.</summary>
    public void ReadSlice(string name, long firstElement, Span<float> destination) => Read(name, firstElement, destination, whole: false);
    /// <summary>Reads elements [<paramref name="firstElement"/>, + destination.Length) of the flattened tensor as float16.</summary>
    public void ReadSlice(string name, long firstElement, Span<Half> destination) => Read(name, firstElement, destination, whole: false);

    /// <summary>The tensor's stored bytes, whatever its dtype.</summary>
    public void ReadBytes(string name, Span<byte> destination)
    {
        var entry = Entry(name);
        if (destination.Length != entry.ByteLength)
            throw new ArgumentException($"tensor '{name}' in '{Path}' has {entry.ByteLength} bytes; the destination holds {destination.Length}");
        ForEachWindow(entry, 0, (int)entry.ElementCount, entry.DType.ByteSize(), destination, static (_, stored, dest) => stored.CopyTo(dest));
    }

    public float[] ReadSingles(string name)
    {
        var values = new float[checked((int)Entry(name).ElementCount)];
        Read(name, values);
        return values;
    }

    private void Read<T>(string name, long firstElement, Span<T> destination, bool whole) where T : unmanaged
    {
        var entry = Entry(name);
        CheckDestination<T>(entry);
        if (whole && destination.Length != entry.ElementCount)
            throw new ArgumentException($"tensor '{name}' in '{Path}' has {entry.ElementCount} elements; the destination holds {destination.Length}");
        if (firstElement < 0 || firstElement + destination.Length > entry.ElementCount)
            throw new ArgumentOutOfRangeException(nameof(firstElement),
                $"elements [{firstElement}, {firstElement + destination.Length}) are outside tensor '{name}' of {entry.ElementCount} elements in '{Path}'");
        ForEachWindow(entry, firstElement, destination.Length, 1, destination, Convert<T>());
    }

    /// <summary>Throws, naming the file, the tensor and the element, when <paramref name="values"/> (elements
    /// [<paramref name="firstElement"/>, ...) of tensor <paramref name="name"/>, as read from this file) hold NaN or infinity.</summary>
    public void RequireFinite(string name, long firstElement, ReadOnlySpan<float> values) => RequireFinite(Entry(name), firstElement, values, "");
    /// <inheritdoc cref="RequireFinite(string, long, ReadOnlySpan{float})"/>
    public void RequireFinite(string name, long firstElement, ReadOnlySpan<Half> values) => RequireFinite(Entry(name), firstElement, values, " (read as float16)");

    void RequireFinite<T>(SafetensorsEntry entry, long firstElement, ReadOnlySpan<T> values, string how) where T : System.Numerics.IFloatingPointIeee754<T>
    {
        if (System.Numerics.Tensors.TensorPrimitives.IsFiniteAll(values)) return;
        int i = IndexOfNonFinite(values);
        throw NonFinite(entry, firstElement + i, values[i].ToString(null, System.Globalization.CultureInfo.InvariantCulture) + how);
    }

    ModelFormatException NonFinite(SafetensorsEntry entry, long element, string value) =>
        new($"weights file '{Path}': tensor '{entry.Name}' holds {value} at element {element}; weights must be finite (a diverged or damaged checkpoint)");

    /// <summary>Throws, naming the file, the tensor and the element, when a value of a floating-point tensor is NaN or
    /// infinite. The stored bytes are checked where they are mapped, window by window; nothing is copied.</summary>
    public void RequireFinite(string name)
    {
        var entry = Entry(name);
        if (!entry.DType.IsFloatingPoint()) return;
        long checkedElements = 0;
        ForEachWindow<byte>(entry, 0, checked((int)entry.ElementCount), 0, [], (dtype, stored, _) =>
        {
            int bad = FirstNonFinite(dtype, stored);
            if (bad >= 0)
            {
                Span<float> value = stackalloc float[1];
                ElementConversion.ToSingle(dtype, stored.Slice(bad * dtype.ByteSize(), dtype.ByteSize()), value);
                throw NonFinite(entry, checkedElements + bad, value[0].ToString(System.Globalization.CultureInfo.InvariantCulture));
            }
            checkedElements += stored.Length / dtype.ByteSize();
        });
    }

    /// <summary>The index of the first NaN or infinite element of <paramref name="stored"/>, or -1.</summary>
    static int FirstNonFinite(SafetensorsDType dtype, ReadOnlySpan<byte> stored)
    {
        switch (dtype)
        {
            case SafetensorsDType.F32:
                var singles = MemoryMarshal.Cast<byte, float>(stored);
                return System.Numerics.Tensors.TensorPrimitives.IsFiniteAll(singles) ? -1 : IndexOfNonFinite(singles);
            case SafetensorsDType.F16:
                var halves = MemoryMarshal.Cast<byte, Half>(stored);
                return System.Numerics.Tensors.TensorPrimitives.IsFiniteAll(halves) ? -1 : IndexOfNonFinite(halves);
            default:
                // BF16: the upper half of a float32; all exponent bits set is infinity or NaN.
                var words = MemoryMarshal.Cast<byte, ushort>(stored);
                for (int i = 0; i < words.Length; i++)
                    if ((words[i] & 0x7F80) == 0x7F80) return i;
                return -1;
        }
    }

    static int IndexOfNonFinite<T>(ReadOnlySpan<T> values) where T : System.Numerics.IFloatingPointIeee754<T>
    {
        for (int i = 0; i < values.Length; i++)
            if (!T.IsFinite(values[i])) return i;
        return -1;
    }

    private void CheckDestination<T>(SafetensorsEntry entry)
    {
        bool fits = typeof(T) == typeof(float) || typeof(T) == typeof(Half) ? entry.DType.IsFloatingPoint()
            : typeof(T) == typeof(long) ? entry.DType == SafetensorsDType.I64
            : typeof(T) == typeof(int) && entry.DType == SafetensorsDType.I32;
        if (!fits)
            throw new ModelFormatException($"tensor '{entry.Name}' in '{Path}' is {entry.DType}; it cannot be read as {typeof(T).Name}");
    }

    private delegate void WindowConverter<T>(SafetensorsDType dtype, ReadOnlySpan<byte> stored, Span<T> destination);

    private static WindowConverter<T> Convert<T>() where T : unmanaged
    {
        if (typeof(T) == typeof(float))
            return (WindowConverter<T>)(object)new WindowConverter<float>(ElementConversion.ToSingle);
        if (typeof(T) == typeof(Half))
            return (WindowConverter<T>)(object)new WindowConverter<Half>(ElementConversion.ToHalf);
        // Integers are read as stored (CheckDestination made sure the dtype matches).
        return static (_, stored, destination) => stored.CopyTo(MemoryMarshal.AsBytes(destination));
    }

    /// <summary>Maps the stored bytes of elements [first, first + count) window by window and hands each
    /// window with its part of the destination (<paramref name="destinationPerElement"/> destination items per element).</summary>
    private unsafe void ForEachWindow<T>(SafetensorsEntry entry, long first, int count, int destinationPerElement,
        Span<T> destination, WindowConverter<T> convert)
    {
        int elementBytes = entry.DType.ByteSize();
        int perWindow = WindowBytes / elementBytes;
        for (int done = 0; done < count;)
        {
            int n = Math.Min(perWindow, count - done);
            long offset = dataStart + entry.DataBegin + (first + done) * elementBytes;
            using var view = map.CreateViewAccessor(offset, (long)n * elementBytes, MemoryMappedFileAccess.Read);
            var handle = view.SafeMemoryMappedViewHandle;
            byte* pointer = null;
            handle.AcquirePointer(ref pointer);
            try
            {
                var stored = new ReadOnlySpan<byte>(pointer + view.PointerOffset, n * elementBytes);
                convert(entry.DType, stored, destination.Slice(done * destinationPerElement, n * destinationPerElement));
            }
            finally
            {
                handle.ReleasePointer();
            }
            done += n;
        }
    }

    public void Dispose() => map.Dispose();
}
