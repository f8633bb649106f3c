namespace AlignThenUnlearn.Models.Checkpoints;

/// <summary>Name, dtype and shape of a tensor to write.</summary>
public sealed record TensorSpec(string Name, SafetensorsDType DType, long[] Shape)
{
    public long ElementCount => Shape.Aggregate(1L, (product, dim) => checked(product * dim));
    public long ByteLength => checked(ElementCount * DType.ByteSize());
}

/// <summary>Fills <paramref name="values"/> with elements [<paramref name="firstElement"/>, + values.Length) of a tensor.</summary>
public delegate void ValuesGenerator(long firstElement, Span<float> values);

/// <summary>A tensor to write and where its data comes from: memory already at hand, or a generator that
/// the writer calls chunk by chunk (so a tensor larger than memory can be written).</summary>
public sealed class TensorSource
{
    /// <summary>Elements generated per call of a <see cref="ValuesGenerator"/>.</summary>
    private const int GeneratorChunk = 1 << 16;

    public TensorSpec Spec { get; }
    private readonly Action<SafetensorsWriter> writeData;

    private TensorSource(TensorSpec spec, Action<SafetensorsWriter> writeData)
    {
        Spec = spec;
        this.writeData = writeData;
    }

    internal void WriteTo(SafetensorsWriter writer) => writeData(writer);

    /// <summary>Stored bytes as they are (little-endian elements of <paramref name="dtype"/>).</summary>
    public static TensorSource FromBytes(string name, SafetensorsDType dtype, long[] shape, ReadOnlyMemory<byte> bytes) =>
        new(new TensorSpec(name, dtype, shape), writer => writer.Append(bytes.Span));

    /// <summary>An array in its own dtype: float F32, Half F16, long I64, int I32.</summary>
    public static TensorSource FromArray<T>(string name, long[] shape, T[] data) where T : unmanaged
    {
        var dtype = typeof(T) == typeof(float) ? SafetensorsDType.F32
            : typeof(T) == typeof(Half) ? SafetensorsDType.F16
            : typeof(T) == typeof(long) ? SafetensorsDType.I64
            : typeof(T) == typeof(int) ? SafetensorsDType.I32
            : throw new ArgumentException($"{typeof(T).Name} arrays have no safetensors dtype; use FromBytes");
        return new(new TensorSpec(name, dtype, shape), writer => writer.Append<T>(data));
    }

    /// <summary>float32 values stored as <paramref name="dtype"/> (F32, F16 or BF16).</summary>
    public static TensorSource FromValues(string name, SafetensorsDType dtype, long[] shape, ReadOnlyMemory<float> values) =>
        new(new TensorSpec(name, dtype, shape), writer => writer.AppendValues(values.Span));

    /// <summary>Values produced on demand by <paramref name="generate"/> and stored as <paramref name="dtype"/> (F32, F16 or BF16).</summary>
    public static TensorSource FromGenerator(string name, SafetensorsDType dtype, long[] shape, ValuesGenerator generate)
    {
        var spec = new TensorSpec(name, dtype, shape);
        return new(spec, writer =>
        {
            var chunk = new float[(int)Math.Min(GeneratorChunk, Math.Max(1, spec.ElementCount))];
            for (long done = 0; done < spec.ElementCount; done += chunk.Length)
            {
                var part = chunk.AsSpan(0, (int)Math.Min(chunk.Length, spec.ElementCount - done));
                generate(done, part);
                writer.AppendValues(part);
            }
        });
    }
}
