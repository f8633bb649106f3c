namespace AlignThenUnlearn.Models.Quantization;

/// <summary>One group's dequantisation: value = (code - <see cref="ZeroPoint"/>) * <see cref="Scale"/>.</summary>
public readonly record struct QuantizedGroup(float Scale, byte ZeroPoint)
{
    public float Dequantize(byte code) => (code - ZeroPoint) * Scale;
}

/// <summary>Round-to-nearest integer quantisation of one group of values to unsigned <c>bits</c>-bit codes with a scale and
/// a zero point (the layout ONNX Runtime's MatMulNBits reads).
/// <list type="bullet">
/// <item>Symmetric: scale = absmax / (2^(b-1) - 1), zero point 2^(b-1), codes zero ± (2^(b-1) - 1) (int8: ±127, int4: ±7).</item>
/// <item>Asymmetric: the range [min(0, min), max(0, max)] (zero stays exact, as ONNX Runtime's blockwise quantiser keeps
/// it) over 2^b - 1 steps; zero point round(-low / scale), codes clamped to [0, 2^b - 1].</item>
/// </list>
/// Rounding is to nearest, ties to even (numpy's and torch's round). Every value lands within scale / 2 of its
/// dequantised code: rounding moves it at most half a step, and clamping only touches the asymmetric range's ends,
/// which the rounded zero point shifts by at most half a step.</summary>
public static class RoundToNearest
{
    public static QuantizedGroup Quantize(ReadOnlySpan<float> values, int bits, bool symmetric, Span<byte> codes)
    {
        if (bits is < 2 or > 8) throw new ArgumentOutOfRangeException(nameof(bits), bits, "round-to-nearest quantises to 2..8 bits");
        if (codes.Length < values.Length) throw new ArgumentException($"{codes.Length} codes for {values.Length} values");
        int levels = (1 << bits) - 1;
        float scale;
        int zero, lowest, highest;
        if (symmetric)
        {
            int steps = (1 << (bits - 1)) - 1;
            float absMax = 0;
            foreach (var v in values) absMax = MathF.Max(absMax, MathF.Abs(v));
            scale = absMax / steps;
            zero = 1 << (bits - 1);
            (lowest, highest) = (zero - steps, zero + steps);
        }
        else
        {
            float low = 0, high = 0;
            foreach (var v in values) (low, high) = (MathF.Min(low, v), MathF.Max(high, v));
            scale = (high - low) / levels;
            zero = scale == 0 ? 0 : Math.Clamp((int)MathF.Round(-low / scale), 0, levels);
            (lowest, highest) = (0, levels);
        }
        for (int i = 0; i < values.Length; i++)
            codes[i] = (byte)(scale == 0 ? zero : Math.Clamp((int)MathF.Round(values[i] / scale) + zero, lowest, highest));
        return new QuantizedGroup(scale, (byte)zero);
    }
}
