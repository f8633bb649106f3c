using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Models.Quantization;

/// <summary>A linear weight W [N, K] (Hugging Face's [out, in], y = x @ W^T) as ONNX Runtime's com.microsoft
/// <c>MatMulNBits</c> reads it with bits = 4 (docs/ContribOperators.md; matmul_nbits_helper.h checks the shapes):
/// <list type="bullet">
/// <item><c>B</c> uint8 [N, k_blocks, block_size / 2]: each row's blocks of block_size values along K, two 4-bit codes a
/// byte, the first in the low nibble; a last partial block is padded with its zero point;</item>
/// <item><c>scales</c> [N * k_blocks] in the activations' type;</item>
/// <item><c>zero_points</c> uint8 [N * ceil(k_blocks / 2)]: each row's zero points packed as B's codes.</item>
/// </list>
/// Each block is quantised by <see cref="RoundToNearest"/> (4 bits, symmetric or asymmetric), so the kernel's
/// (code - zero_point) * scale is exactly the dequantised weight of <see cref="WeightQuantization"/> with groups of
/// block_size: the shipped int4 model and the project's own int4 evaluation hold the same weights.</summary>
public static class MatMulNBitsWeights
{
    public const int Bits = 4;

    public static string PackedName(string weight) => weight + "_Q4";
    public static string ScalesName(string weight) => weight + "_scales";
    public static string ZeroPointsName(string weight) => weight + "_zero_points";

    public static int Blocks(long k, int blockSize) => (int)((k + blockSize - 1) / blockSize);

    /// <summary>The three initializers that replace <paramref name="weight"/>; scales in <paramref name="scaleType"/>.</summary>
    public static (ParameterSpec Packed, ParameterSpec Scales, ParameterSpec ZeroPoints) Specs(ParameterSpec weight, int blockSize, DataType scaleType)
    {
        if (weight.Shape.Length != 2) throw new ArgumentException($"MatMulNBits quantises matrices; {weight} is not one");
        Check(blockSize);
        long n = weight.Shape[0], blocks = Blocks(weight.Shape[1], blockSize);
        return (new ParameterSpec(PackedName(weight.Name), [n, blocks, blockSize * Bits / 8], DataType.Uint8),
                new ParameterSpec(ScalesName(weight.Name), [n * blocks], scaleType),
                new ParameterSpec(ZeroPointsName(weight.Name), [n * ((blocks + 1) / 2)], DataType.Uint8));
    }

    /// <summary>The block sizes ONNX Runtime 1.31 runs: its MatMulNBits schema asks for a power of two of 16 or more,
    /// and its CPU kernels (MLAS's n-bit GEMM and the blockwise dequantiser they fall back to) are instantiated for 16 to
    /// 256; a folder with 512 loads in no session.</summary>
    public static readonly IReadOnlyList<int> BlockSizes = [16, 32, 64, 128, 256];

    public static string BlockSizesText => string.Join(", ", BlockSizes.SkipLast(1)) + " or " + BlockSizes[^1];

    /// <summary>Refuses a block size outside <see cref="BlockSizes"/> (also before a huge one could overflow the stack
    /// or an int).</summary>
    public static void Check(int blockSize)
    {
        if (!BlockSizes.Contains(blockSize))
            throw new ArgumentException($"MatMulNBits block size {blockSize}: expected a power of two from 16 to 256 ({BlockSizesText}), the sizes ONNX Runtime's kernels run");
    }

    /// <summary>Quantises the rows of <paramref name="rows"/> (row-major, <paramref name="k"/> values each) into their
    /// parts of B, scales and zero points (the spans cover exactly those rows).</summary>
    public static void Pack(ReadOnlySpan<float> rows, int k, int blockSize, bool symmetric, Span<byte> packed, Span<float> scales, Span<byte> zeroPoints)
    {
        Check(blockSize);
        int blocks = Blocks(k, blockSize), rowCount = rows.Length / k, blob = blockSize * Bits / 8, zeroBlob = (blocks + 1) / 2;
        if (rows.Length != rowCount * k || packed.Length != rowCount * blocks * blob || scales.Length != rowCount * blocks || zeroPoints.Length != rowCount * zeroBlob)
            throw new ArgumentException($"{rows.Length} values of rows of {k}: the packed parts have the wrong sizes");
        Span<byte> codes = stackalloc byte[blockSize];
        zeroPoints.Clear();
        for (int r = 0; r < rowCount; r++)
            for (int b = 0; b < blocks; b++)
            {
                var values = rows.Slice(r * k + b * blockSize, Math.Min(blockSize, k - b * blockSize));
                var q = RoundToNearest.Quantize(values, Bits, symmetric, codes);
                codes[values.Length..].Fill(q.ZeroPoint);
                var blobBytes = packed.Slice((r * blocks + b) * blob, blob);
                for (int i = 0; i < blob; i++) blobBytes[i] = (byte)(codes[2 * i] | codes[2 * i + 1] << 4);
                scales[r * blocks + b] = q.Scale;
                zeroPoints[r * zeroBlob + b / 2] |= (byte)(b % 2 == 0 ? q.ZeroPoint : q.ZeroPoint << 4);
            }
    }
}
