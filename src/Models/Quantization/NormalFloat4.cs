namespace AlignThenUnlearn.Models.Quantization;

/// <summary>NF4, QLoRA's 4-bit NormalFloat as bitsandbytes implements it: each block of 64 consecutive values (of the
/// flattened tensor) is divided by its absolute maximum and mapped to the nearest of 16 code values (the quantiles of a
/// normal distribution, with an exact zero); dequantised as code value * absmax.</summary>
public static class NormalFloat4
{
    public const int BlockSize = 64;

    /// <summary>bitsandbytes' NF4 table (functional.py <c>get_4bit_type("nf4")</c>, kernels' dDequantizeNF4), code 0..15.</summary>
    public static readonly float[] Values =
    [
        -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
        -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
        0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
        0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f,
    ];

    /// <summary>dQuantizeNF4's decision thresholds: the midpoints of neighbouring values (computed in double, compared
    /// as float); a value exactly on one goes to the lower code, as its strict <c>x &gt; threshold</c> does.</summary>
    static readonly float[] Thresholds = Enumerable.Range(0, 15).Select(i => (float)(((double)Values[i] + Values[i + 1]) / 2)).ToArray();

    /// <summary>The code of a value already divided by its block's absmax.</summary>
    public static byte Code(float normalized)
    {
        byte code = 0;
        while (code < Thresholds.Length && normalized > Thresholds[code]) code++;
        return code;
    }

    /// <summary>Quantises one block; returns its absmax (0 for a block of zeros, whose codes are all the zero code 7).</summary>
    public static float Quantize(ReadOnlySpan<float> block, Span<byte> codes)
    {
        float absMax = 0;
        foreach (var v in block) absMax = MathF.Max(absMax, MathF.Abs(v));
        // bitsandbytes multiplies by the reciprocal of the absmax rather than dividing.
        float inverse = absMax == 0 ? 0 : 1 / absMax;
        for (int i = 0; i < block.Length; i++) codes[i] = Code(block[i] * inverse);
        return absMax;
    }

    public static float Dequantize(byte code, float absMax) => Values[code] * absMax;
}
