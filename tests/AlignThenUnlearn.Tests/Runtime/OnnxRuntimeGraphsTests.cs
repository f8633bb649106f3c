using AlignThenUnlearn.Onnx;
using AlignThenUnlearn.Runtime;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Tests.Runtime;

/// <summary>The graph ONNX Runtime saves after optimising: the rewrites the memory plan walks instead of ours.</summary>
public class OnnxRuntimeGraphsTests
{
    [Fact]
    public void Onnx_runtime_fuses_the_transpose_into_the_matmul_and_folds_constant_zeros_into_an_initializer()
    {
        // y = MatMul(x, Transpose(w)) and z = ConstantOfShape([16]) (zeros) + v: the Transpose of the last two axes
        // becomes FusedMatMul's transB, and the zeros, whose shape is a constant, a 16-float initializer (64 bytes).
        var b = new GraphBuilder("g");
        var x = b.Input("x", DataType.Float, "batch", 4, 8);
        var w = b.Input("w", DataType.Float, 16, 8);
        var v = b.Input("v", DataType.Float, 16);
        var zeros = b.Op("ConstantOfShape", [b.Ints(16)], Attr.Tensor("value", Tensors.FromFloat("value", [0f], 1)));
        b.Output(b.MatMul(x, b.Transpose(w, 1, 0)), DataType.Float, "batch", 4, 16);
        b.Output(b.Add(zeros, v), DataType.Float, 16);
        var optimized = OnnxRuntimeGraphs.Optimized(b.ToModel());
        Assert.DoesNotContain(optimized.Graph.Node, n => n.OpType == "Transpose");
        var fused = Assert.Single(optimized.Graph.Node, n => n.OpType == "FusedMatMul");
        Assert.Equal(1, fused.GetInt("transB", 0));
        Assert.Equal(64, GraphMemory.InitializerBytes(optimized));
    }
}
