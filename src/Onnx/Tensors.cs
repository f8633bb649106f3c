using System.Runtime.InteropServices;
using Google.Protobuf;
using Onnx;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Onnx;

/// <summary>Conversions between arrays and <see cref="TensorProto"/> (raw little-endian data).</summary>
public static class Tensors
{
    public static TensorProto FromFloat(string name, float[] data, params long[] dims) => Raw(name, DataType.Float, MemoryMarshal.AsBytes(data.AsSpan()), dims);
    public static TensorProto FromDouble(string name, double[] data, params long[] dims) => Raw(name, DataType.Double, MemoryMarshal.AsBytes(data.AsSpan()), dims);
    public static TensorProto FromInt64(string name, long[] data, params long[] dims) => Raw(name, DataType.Int64, MemoryMarshal.AsBytes(data.AsSpan()), dims);
    public static TensorProto FromInt32(string name, int[] data, params long[] dims) => Raw(name, DataType.Int32, MemoryMarshal.AsBytes(data.AsSpan()), dims);

    public static TensorProto FromBool(string name, bool[] data, params long[] dims) =>
        Raw(name, DataType.Bool, data.Select(b => (byte)(b ? 1 : 0)).ToArray(), dims);

    public static TensorProto Raw(string name, DataType type, ReadOnlySpan<byte> bytes, params long[] dims)
    {
        var t = new TensorProto { Name = name, DataType = (int)type, RawData = ByteString.CopyFrom(bytes) };
        t.Dims.AddRange(dims);
        return t;
    }

    /// <summary>A scalar (rank 0) or 1-element constant of the given floating or integer type.</summary>
    public static TensorProto Scalar(string name, DataType type, double value, bool rank1 = false)
    {
        long[] dims = rank1 ? [1] : [];
        return type switch
        {
            DataType.Float => FromFloat(name, [(float)value], dims),
            DataType.Double => FromDouble(name, [value], dims),
            DataType.Int64 => FromInt64(name, [(long)value], dims),
            DataType.Int32 => FromInt32(name, [(int)value], dims),
            DataType.Float16 => Raw(name, type, BitConverter.GetBytes((Half)value), dims),
            DataType.Bfloat16 => Raw(name, type, BitConverter.GetBytes((ushort)(BitConverter.SingleToUInt32Bits((float)value) >> 16)), dims),
            _ => throw new ArgumentException($"no scalar constants of element type {type}"),
        };
    }

    public static long ElementCount(TensorProto t)
    {
        long n = 1;
        foreach (var d in t.Dims) n *= d;
        return n;
    }

    public static int ElementSize(DataType type) => type switch
    {
        DataType.Float or DataType.Int32 or DataType.Uint32 => 4,
        DataType.Double or DataType.Int64 or DataType.Uint64 => 8,
        DataType.Float16 or DataType.Bfloat16 or DataType.Int16 or DataType.Uint16 => 2,
        DataType.Bool or DataType.Int8 or DataType.Uint8 => 1,
        _ => throw new OnnxFormatException($"element type {type} has no fixed byte size here"),
    };

    public static bool IsFloating(DataType type) => type is DataType.Float or DataType.Double or DataType.Float16 or DataType.Bfloat16;

    /// <summary>The tensor's values as raw little-endian bytes, from raw_data or the typed fields.</summary>
    public static byte[] Bytes(TensorProto t)
    {
        if (t.DataLocation == TensorProto.Types.DataLocation.External)
            throw new OnnxFormatException($"tensor '{t.Name}' still refers to external data; load the model with ModelFile.Load");
        var type = (DataType)t.DataType;
        if (!t.RawData.IsEmpty) return t.RawData.ToByteArray();
        return type switch
        {
            DataType.Float => MemoryMarshal.AsBytes(t.FloatData.ToArray().AsSpan()).ToArray(),
            DataType.Double => MemoryMarshal.AsBytes(t.DoubleData.ToArray().AsSpan()).ToArray(),
            DataType.Int64 => MemoryMarshal.AsBytes(t.Int64Data.ToArray().AsSpan()).ToArray(),
            DataType.Int32 => MemoryMarshal.AsBytes(t.Int32Data.ToArray().AsSpan()).ToArray(),
            DataType.Bool or DataType.Uint8 or DataType.Int8 => t.Int32Data.Select(v => (byte)v).ToArray(),
            DataType.Float16 or DataType.Bfloat16 => t.Int32Data.SelectMany(v => BitConverter.GetBytes((ushort)v)).ToArray(),
            _ => throw new OnnxFormatException($"tensor '{t.Name}': reading element type {type} is not supported"),
        };
    }

    public static float[] ToFloat(TensorProto t) => MemoryMarshal.Cast<byte, float>(Bytes(t)).ToArray();
    public static double[] ToDouble(TensorProto t) => MemoryMarshal.Cast<byte, double>(Bytes(t)).ToArray();
    public static long[] ToInt64(TensorProto t) => MemoryMarshal.Cast<byte, long>(Bytes(t)).ToArray();

    /// <summary>Integer values of an int32/int64 tensor, widened to long.</summary>
    public static long[] ToIntegers(TensorProto t) => (DataType)t.DataType switch
    {
        DataType.Int64 => ToInt64(t),
        DataType.Int32 => MemoryMarshal.Cast<byte, int>(Bytes(t)).ToArray().Select(v => (long)v).ToArray(),
        var other => throw new OnnxFormatException($"tensor '{t.Name}' holds {other}, expected integers"),
    };
}
