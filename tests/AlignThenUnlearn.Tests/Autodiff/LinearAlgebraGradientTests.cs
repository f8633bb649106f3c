using AlignThenUnlearn.Onnx;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Tests.Support;

namespace AlignThenUnlearn.Tests.Autodiff;

/// <summary>MatMul, Gemm and LayerNormalization rules against central differences in double precision.</summary>
public class LinearAlgebraGradientTests
{
    /// <summary>MatMul operand layouts: plain matrices, a linear layer over a symbolic batch, attention
    /// scores, static and symbolic batch broadcasting, and the vector forms that MatMul lifts to matrices.</summary>
    static readonly Dictionary<string, Action<OpTest>> MatMulCases = new()
    {
        ["matrix [M,K]@[K,N]"] = t => t.Input("a", t.Rand(2, 3)).Input("b", t.Rand(3, 4)),
        ["linear layer [B,S,K]@[K,N]"] = t => t.Input("x", t.Rand(2, 3, 4)).Input("w", t.Rand(4, 5)),
        ["linear layer [B,S,K]@[K,N], symbolic B and S"] = t =>
            t.Input("x", t.Rand(2, 3, 4), declared: ["batch", "seq", 4]).Input("w", t.Rand(4, 5)),
        ["attention scores [B,H,S,D]@[B,H,D,S], symbolic B and S"] = t =>
            t.Input("q", t.Rand(2, 2, 3, 4), declared: ["batch", 2, "seq", 4]).Input("k", t.Rand(2, 2, 4, 3), declared: ["batch", 2, 4, "seq"]),
        ["static batch broadcast [2,1,3,4]@[1,5,4,2]"] = t => t.Input("a", t.Rand(2, 1, 3, 4)).Input("b", t.Rand(1, 5, 4, 2)),
        ["symbolic batch dim that is 1 at run time broadcasts"] = t =>
            t.Input("a", t.Rand(1, 3, 4), declared: ["batch", 3, 4]).Input("b", t.Rand(2, 4, 5)),
        ["matrix broadcast over a batched right operand [M,K]@[B,K,N]"] = t => t.Input("a", t.Rand(3, 4)).Input("b", t.Rand(2, 4, 2)),
        ["vector [K]@[K,N]"] = t => t.Input("a", t.Rand(3)).Input("b", t.Rand(3, 4)),
        ["vector [K]@[B,K,N]"] = t => t.Input("a", t.Rand(3)).Input("b", t.Rand(2, 3, 4)),
        ["vector [B,M,K]@[K]"] = t => t.Input("a", t.Rand(2, 3, 4)).Input("b", t.Rand(4)),
        ["dot product [K]@[K]"] = t => t.Input("a", t.Rand(5)).Input("b", t.Rand(5)),
    };

    public static TheoryData<string> MatMulCaseNames => [.. MatMulCases.Keys];

    [Theory]
    [MemberData(nameof(MatMulCaseNames))]
    public void MatMul_gradients_match_central_differences(string layout)
    {
        var t = new OpTest("MatMul");
        MatMulCases[layout](t);
        t.Check();
    }

    [Theory]
    [InlineData(false, false, "N")]
    [InlineData(false, true, "N")]
    [InlineData(true, false, "N")]
    [InlineData(true, true, "N")]
    [InlineData(false, false, "MN")]
    [InlineData(false, true, "MN")]
    [InlineData(true, false, "MN")]
    [InlineData(true, true, "MN")]
    [InlineData(false, false, "1N")]
    [InlineData(true, true, "1N")]
    [InlineData(false, false, "1")]
    [InlineData(true, false, "1")]
    [InlineData(false, true, "none")]
    [InlineData(true, true, "none")]
    public void Gemm_gradients_match_central_differences_for_transposes_scales_and_bias_shapes(bool transA, bool transB, string biasShape)
    {
        const int M = 2, K = 3, N = 4;
        var t = new OpTest("Gemm");
        t.Attr(Attr.Int("transA", transA ? 1 : 0)).Attr(Attr.Int("transB", transB ? 1 : 0))
         .Attr(Attr.Float("alpha", 1.5f)).Attr(Attr.Float("beta", -0.75f));
        t.Input("a", transA ? t.Rand(K, M) : t.Rand(M, K)).Input("b", transB ? t.Rand(N, K) : t.Rand(K, N));
        long[]? c = biasShape switch { "N" => [N], "MN" => [M, N], "1N" => [1, N], "1" => [1], _ => null };
        if (c is not null) t.Input("c", t.Rand(c));
        t.Check();
    }

    [Fact]
    public void Gemm_with_default_alpha_and_beta_passes_the_bias_gradient_through()
    {
        var t = new OpTest("Gemm");
        t.Input("a", t.Rand(2, 3)).Input("b", t.Rand(3, 4)).Input("c", t.Rand(2, 4)).Check();
    }

    [Fact]
    public void LayerNormalization_last_axis_gradients_for_input_scale_and_bias()
    {
        var t = new OpTest("LayerNormalization");
        t.Input("x", t.Rand(2, 3, 4), declared: ["batch", "seq", 4]).Input("scale", t.Rand(4)).Input("bias", t.Rand(4)).Check();
    }

    [Fact]
    public void LayerNormalization_over_the_last_two_axes_of_a_rank_3_input()
    {
        var t = new OpTest("LayerNormalization");
        t.Attr(Attr.Int("axis", 1)).Input("x", t.Rand(2, 3, 4)).Input("scale", t.Rand(3, 4)).Input("bias", t.Rand(3, 4)).Check();
    }

    [Fact]
    public void LayerNormalization_with_a_scale_broadcast_over_the_normalized_axes()
    {
        var t = new OpTest("LayerNormalization");
        t.Attr(Attr.Int("axis", 1)).Input("x", t.Rand(2, 3, 4)).Input("scale", t.Rand(4)).Input("bias", t.Rand(1, 4)).Check();
    }

    [Fact]
    public void LayerNormalization_over_all_axes()
    {
        var t = new OpTest("LayerNormalization");
        t.Attr(Attr.Int("axis", 0)).Input("x", t.Rand(3, 4)).Input("scale", t.Rand(3, 4)).Input("bias", t.Rand(3, 4)).Check();
    }

    [Fact]
    public void LayerNormalization_without_bias()
    {
        var t = new OpTest("LayerNormalization");
        t.Input("x", t.Rand(3, 5)).Input("scale", t.Rand(5)).Check();
    }
}
