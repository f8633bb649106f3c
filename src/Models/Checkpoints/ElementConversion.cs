using System.Numerics.Tensors;
using System.Runtime.InteropServices;

namespace AlignThenUnlearn.Models.Checkpoints;

/// <summary>Conversions between stored safetensors elements (little-endian bytes) and the run dtypes
/// (float32, float16). BF16 is the upper half of a float32, so widening it is a shift.</summary>
public static class ElementConversion
{
    /// <summary>Elements converted per step when a conversion needs an intermediate buffer.</summary>
    private const int StepElements = 1024;

    public static void ToSingle(SafetensorsDType source, ReadOnlySpan<byte> stored, Span<float> destination)
    {
        CheckLengths(source, stored, destination.Length);
        switch (source)
        {
            case SafetensorsDType.F32:
                stored.CopyTo(MemoryMarshal.AsBytes(destination));
                break;
            case SafetensorsDType.F16:
                TensorPrimitives.ConvertToSingle(MemoryMarshal.Cast<byte, Half>(stored), destination);
                break;
            case SafetensorsDType.BF16:
                // Widen the 16 bits into the destination's words, then move them to the top half.
                var words = MemoryMarshal.Cast<float, uint>(destination);
                TensorPrimitives.ConvertTruncating<ushort, uint>(MemoryMarshal.Cast<byte, ushort>(stored), words);
                TensorPrimitives.ShiftLeft(words, 16, words);
                break;
            default:
                throw new ArgumentException($"{source} elements are not floating point; they convert to no float dtype", nameof(source));
        }
    }

    public static void ToHalf(SafetensorsDType source, ReadOnlySpan<byte> stored, Span<Half> destination)
    {
        CheckLengths(source, stored, destination.Length);
        switch (source)
        {
            case SafetensorsDType.F16:
                stored.CopyTo(MemoryMarshal.AsBytes(destination));
                break;
            case SafetensorsDType.F32:
                TensorPrimitives.ConvertToHalf(MemoryMarshal.Cast<byte, float>(stored), destination);
                break;
            case SafetensorsDType.BF16:
                Span<float> step = stackalloc float[StepElements];
                for (int done = 0; done < destination.Length; done += StepElements)
                {
                    int n = Math.Min(StepElements, destination.Length - done);
                    ToSingle(source, stored.Slice(done * 2, n * 2), step[..n]);
                    TensorPrimitives.ConvertToHalf(step[..n], destination.Slice(done, n));
                }
                break;
            default:
                throw new ArgumentException($"{source} elements are not floating point; they convert to no float dtype", nameof(source));
        }
    }

    /// <summary>Stores float32 values as <paramref name="target"/> elements (F16 and BF16 round to nearest even).</summary>
    public static void FromSingle(ReadOnlySpan<float> values, SafetensorsDType target, Span<byte> stored)
    {
        CheckLengths(target, stored, values.Length);
        switch (target)
        {
            case SafetensorsDType.F32:
                MemoryMarshal.AsBytes(values).CopyTo(stored);
                break;
            case SafetensorsDType.F16:
                TensorPrimitives.ConvertToHalf(values, MemoryMarshal.Cast<byte, Half>(stored));
                break;
            case SafetensorsDType.BF16:
                var words = MemoryMarshal.Cast<byte, ushort>(stored);
                for (int i = 0; i < values.Length; i++) words[i] = BFloat16Bits(values[i]);
                break;
            default:
                throw new ArgumentException($"float values cannot be stored as {target}", nameof(target));
        }
    }

    /// <summary>The BF16 bit pattern nearest to <paramref name="value"/> (ties to even; NaN stays a quiet NaN).</summary>
    public static ushort BFloat16Bits(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value)) return (ushort)((bits >> 16) | 0x0040);
        bits += 0x7FFFu + ((bits >> 16) & 1u);
        return (ushort)(bits >> 16);
    }

    public static float SingleFromBFloat16Bits(ushort bits) => BitConverter.UInt32BitsToSingle((uint)bits << 16);

    private static void CheckLengths(SafetensorsDType dtype, ReadOnlySpan<byte> stored, int elements)
    {
        if (stored.Length != (long)elements * dtype.ByteSize())
            throw new ArgumentException($"{stored.Length} bytes of {dtype} are not {elements} elements");
    }
}
