using AlignThenUnlearn.Models.Quantization;

namespace AlignThenUnlearn.Tests.Models;

/// <summary>The quantisers against values worked out by hand, the error bound theory gives, and the MatMulNBits packing
/// against the quantise-dequantise it must equal.</summary>
public class QuantizationTests
{
    static float[] Dequantized(float[] values, int columns, QuantizationScheme scheme)
    {
        var copy = (float[])values.Clone();
        WeightQuantization.QuantizeDequantize(copy, columns, scheme);
        return copy;
    }

    static void AssertClose(float[] expected, float[] actual, float tolerance = 1e-6f)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= tolerance, $"[{i}]: expected {expected[i]:G9}, got {actual[i]:G9}");
    }

    [Fact]
    public void Int8_symmetric_per_output_channel_matches_hand_computed_values()
    {
        // Row 0: absmax 1.27 -> scale 1.27 / 127 = 0.01; -0.504 / 0.01 = -50.4 -> -50 -> -0.50; 0.306 -> 30.6 -> 31 -> 0.31;
        //        0.001 -> 0.1 -> 0 -> 0.
        // Row 1 has its own scale: absmax 0.635 -> 0.005; 0.1013 -> 20.26 -> 20 -> 0.1; 0.0526 -> 10.52 -> 11 -> 0.055.
        float[] w = [1.27f, -0.504f, 0.306f, 0.001f, 0.1013f, 0.2f, -0.635f, 0.0526f];
        AssertClose([1.27f, -0.5f, 0.31f, 0, 0.1f, 0.2f, -0.635f, 0.055f], Dequantized(w, 4, QuantizationScheme.Rtn(8, 0, symmetric: true)));

        // The codes: zero point 128, codes 128 + q, q within ±127.
        var codes = new byte[4];
        var group = RoundToNearest.Quantize(w.AsSpan(0, 4), 8, symmetric: true, codes);
        Assert.Equal(128, group.ZeroPoint);
        Assert.Equal(0.01f, group.Scale, 1e-9f);
        Assert.Equal([255, 78, 159, 128], codes);
    }

    [Fact]
    public void Int8_asymmetric_per_output_channel_matches_hand_computed_values()
    {
        // low -1, high 1.55: scale 2.55 / 255 = 0.01, zero point round(1 / 0.01) = 100;
        // codes -100 + 100 = 0, 53.4 -> 53 + 100 = 153, 155 + 100 = 255, 20 + 100 = 120.
        float[] w = [-1f, 0.534f, 1.55f, 0.2f];
        var codes = new byte[4];
        var group = RoundToNearest.Quantize(w, 8, symmetric: false, codes);
        Assert.Equal(100, group.ZeroPoint);
        Assert.Equal(0.01f, group.Scale, 1e-8f);
        Assert.Equal([0, 153, 255, 120], codes);
        AssertClose([-1f, 0.53f, 1.55f, 0.2f], Dequantized(w, 4, QuantizationScheme.Rtn(8, 0, symmetric: false)));
    }

    [Fact]
    public void Int4_round_to_nearest_with_groups_matches_hand_computed_values()
    {
        // One row of 8, groups of 4, asymmetric (15 steps).
        // Group 0: low 0 (zero stays in range), high 1.5 -> scale 0.1, zero point 0:
        //   0 -> 0; 0.16 -> 1.6 -> 2 -> 0.2; 0.34 -> 3.4 -> 3 -> 0.3; 1.5 -> 15 -> 1.5.
        // Group 1: low -0.75, high 0.74 -> scale 1.49 / 15 = 0.09933; zero point round(0.75 / 0.09933 = 7.55) = 8:
        //   -0.75 -> -7.55 -> -8 + 8 = 0 -> -8 * s = -0.7947 (clamped end, off by 0.045 <= s / 2 = 0.0497);
        //   -0.3 -> -3.02 -> 5 -> -3 s; 0.02 -> 0.20 -> 8 -> 0; 0.74 -> 7.45 -> 15 -> 7 s.
        float[] w = [0f, 0.16f, 0.34f, 1.5f, -0.75f, -0.3f, 0.02f, 0.74f];
        float s = 1.49f / 15;
        AssertClose([0f, 0.2f, 0.3f, 1.5f, -8 * s, -3 * s, 0f, 7 * s], Dequantized(w, 8, QuantizationScheme.Rtn(4, 4, symmetric: false)));

        // Symmetric int4: absmax 0.7 -> scale 0.1, codes 8 ± 7: 0.7 -> 7; -0.36 -> -3.6 -> -4; 0.1 -> 1; 0.04 -> 0.4 -> 0.
        float[] v = [0.7f, -0.36f, 0.1f, 0.04f];
        var codes = new byte[4];
        var group = RoundToNearest.Quantize(v, 4, symmetric: true, codes);
        Assert.Equal(8, group.ZeroPoint);
        Assert.Equal([15, 4, 9, 8], codes);
        AssertClose([0.7f, -0.4f, 0.1f, 0f], Dequantized(v, 4, QuantizationScheme.Rtn(4, 0, symmetric: true)));
    }

    [Fact]
    public void Nf4_uses_bitsandbytes_sixteen_values_and_rounds_to_the_nearest_one()
    {
        Assert.Equal(16, NormalFloat4.Values.Length);
        Assert.Equal(-1f, NormalFloat4.Values[0]);
        Assert.Equal(0f, NormalFloat4.Values[7]);
        Assert.Equal(1f, NormalFloat4.Values[15]);
        Assert.Equal(0.07958029955625534f, NormalFloat4.Values[8]);
        for (byte code = 0; code < 16; code++) Assert.Equal(code, NormalFloat4.Code(NormalFloat4.Values[code]));
        // A value exactly between two codes goes to the lower one (bitsandbytes compares x > threshold).
        float middle = (float)(((double)NormalFloat4.Values[13] + NormalFloat4.Values[14]) / 2);
        Assert.Equal(13, NormalFloat4.Code(middle));
        Assert.Equal(14, NormalFloat4.Code(MathF.BitIncrement(middle)));

        // One block of 64 with absmax 2: 1.2 / 2 = 0.6 lies below the midpoint 0.6428 of 0.5626 and 0.7230 -> 0.5626 * 2;
        // -0.9 / 2 = -0.45 lies above the midpoint -0.4600 of -0.5251 and -0.3949 -> -0.3949 * 2; 0.04 / 2 = 0.02 -> 0;
        // -2 -> -1 * 2; the rest 0.
        var w = new float[64];
        (w[0], w[1], w[2], w[3], w[10]) = (1.2f, -0.9f, 0.04f, -2f, 2f);
        var expected = new float[64];
        (expected[0], expected[1], expected[3], expected[10]) = (0.5626170039176941f * 2, -0.39491748809814453f * 2, -2f, 2f);
        AssertClose(expected, Dequantized(w, 8, QuantizationScheme.Nf4));

        // A block of zeros stays zero (bitsandbytes' reciprocal would be infinite).
        Assert.All(Dequantized(new float[64], 64, QuantizationScheme.Nf4), v => Assert.Equal(0f, v));
    }

    [Theory]
    [InlineData(8, 0, true)]
    [InlineData(8, 0, false)]
    [InlineData(4, 32, false)]
    [InlineData(4, 64, true)]
    [InlineData(4, 128, false)]
    [InlineData(4, 128, true)]
    public void Round_to_nearest_error_stays_within_half_a_step_of_each_group(int bits, int groupSize, bool symmetric)
    {
        const int rows = 6, columns = 200;   // 200 is no multiple of the groups: the last group of a row is shorter
        var random = new Random(5);
        var w = Enumerable.Range(0, rows * columns).Select(_ => (float)(random.NextDouble() * 2 - 0.7) * (random.Next(10) == 0 ? 4 : 1)).ToArray();
        var deq = Dequantized(w, columns, QuantizationScheme.Rtn(bits, groupSize, symmetric));
        int group = groupSize == 0 ? columns : groupSize;
        int overQuarterStep = 0;
        for (int r = 0; r < rows; r++)
            for (int first = 0; first < columns; first += group)
            {
                var part = w.AsSpan(r * columns + first, Math.Min(group, columns - first)).ToArray();
                // The step theory gives: absmax / (2^(b-1) - 1) symmetric, (max(0, max) - min(0, min)) / (2^b - 1) asymmetric.
                double step = symmetric ? part.Max(Math.Abs) / ((1 << (bits - 1)) - 1)
                    : (Math.Max(0, part.Max()) - Math.Min(0, part.Min())) / ((1 << bits) - 1);
                for (int i = 0; i < part.Length; i++)
                {
                    double error = Math.Abs(part[i] - deq[r * columns + first + i]);
                    Assert.True(error <= step / 2 + 1e-6, $"row {r} column {first + i}: error {error:G6} > step / 2 = {step / 2:G6}");
                    if (error > step / 4) overQuarterStep++;
                }
            }
        Assert.True(overQuarterStep > 0);   // the bound is tight enough to matter: many errors exceed a quarter step
    }

    [Fact]
    public void Nf4_error_stays_within_half_the_widest_gap_times_the_block_absmax()
    {
        var random = new Random(9);
        var w = Enumerable.Range(0, 64 * 5 + 10).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray();
        var deq = Dequantized(w, w.Length, QuantizationScheme.Nf4);
        double widestGap = Enumerable.Range(0, 15).Max(i => NormalFloat4.Values[i + 1] - NormalFloat4.Values[i]);   // 1 - 0.7230
        for (int first = 0; first < w.Length; first += 64)
        {
            var block = w.AsSpan(first, Math.Min(64, w.Length - first)).ToArray();
            double absMax = block.Max(Math.Abs);
            for (int i = 0; i < block.Length; i++)
            {
                // Each value takes the code value nearest to it (relative to the absmax), so no other code is closer.
                double x = block[i] / absMax, chosen = deq[first + i] / absMax;
                Assert.All(NormalFloat4.Values, c => Assert.True(Math.Abs(x - chosen) <= Math.Abs(x - c) + 1e-6));
                Assert.True(Math.Abs(block[i] - deq[first + i]) <= widestGap / 2 * absMax + 1e-6);
            }
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void MatMulNBits_packing_dequantises_to_the_round_to_nearest_int4_weights(bool symmetric)
    {
        const int n = 3, k = 40, blockSize = 32;   // two blocks a row, the second 8 values long
        var random = new Random(2);
        var w = Enumerable.Range(0, n * k).Select(_ => (float)(random.NextDouble() - 0.3)).ToArray();
        (w[0], w[1]) = (-0.5f, 1.0f);   // row 0 starts with its block's low and high: asymmetric codes 0 and 15 -> first byte 0xF0
        int blocks = MatMulNBitsWeights.Blocks(k, blockSize);
        var packed = new byte[n * blocks * blockSize / 2];
        var scales = new float[n * blocks];
        var zeroPoints = new byte[n * ((blocks + 1) / 2)];
        MatMulNBitsWeights.Pack(w, k, blockSize, symmetric, packed, scales, zeroPoints);
        if (!symmetric) Assert.Equal(0xF0, packed[0]);

        // Unpack as MatMulNBits does: low nibble first, (code - zero point) * scale.
        var expected = Dequantized(w, k, QuantizationScheme.Rtn(4, blockSize, symmetric));
        for (int r = 0; r < n; r++)
            for (int c = 0; c < k; c++)
            {
                int b = c / blockSize, within = c % blockSize;
                int code = packed[(r * blocks + b) * blockSize / 2 + within / 2] >> (within % 2 * 4) & 0xF;
                int zero = zeroPoints[r * ((blocks + 1) / 2) + b / 2] >> (b % 2 * 4) & 0xF;
                if (symmetric) Assert.Equal(8, zero);
                Assert.Equal(expected[r * k + c], (code - zero) * scales[r * blocks + b]);
            }
    }

    [Fact]
    public void Schemes_outside_what_the_quantisers_do_are_refused()
    {
        Assert.Contains("2..8 bits", Assert.Throws<ArgumentException>(() => QuantizationScheme.Rtn(16, 0, false)).Message);
        Assert.Contains("NF4 is 4-bit", Assert.Throws<ArgumentException>(() => (QuantizationScheme.Nf4 with { GroupSize = 32 }).Validated()).Message);
        Assert.Contains("power of two", Assert.Throws<ArgumentException>(() => MatMulNBitsWeights.Check(48)).Message);
        Assert.Equal("rtn-int4-g32-asym", QuantizationScheme.Rtn(4, 32, false).Label);
        Assert.Equal("rtn-int8-channel-sym", QuantizationScheme.Rtn(8, 0, true).Label);
    }
}
