using AlignThenUnlearn.Autodiff;
using AlignThenUnlearn.Onnx;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Tests.Autodiff;

/// <summary>The backward graph is what one would write by hand: with symbolic batch and sequence dims whose
/// relation to the output is known, broadcasting is undone with constant axes (no run-time NonZero/Shape
/// arithmetic), and linear-layer weight gradients use Gemm(transA) instead of a batched product and a sum.</summary>
public class BackwardGraphStructureTests
{
    static List<string> BackwardOps(Action<GraphBuilder> build, params string[] wrt)
    {
        var b = new GraphBuilder("g");
        build(b);
        var model = b.ToModel();
        int forwardCount = model.Graph.Node.Count;
        var grads = Gradients.Build(model, model.Graph.Output[0].Name, wrt);
        return grads.Model.Graph.Node.Skip(forwardCount).Select(n => n.OpType).ToList();
    }

    static void Loss(GraphBuilder b, string y) => b.Output(b.ReduceSum(y, [], keepDims: false), DataType.Float);

    [Fact]
    public void Attention_products_with_symbolic_batch_reduce_nothing_at_run_time()
    {
        var ops = BackwardOps(b =>
        {
            var q = b.Input("q", DataType.Float, "batch", 4, "seq", 8);
            var k = b.Input("k", DataType.Float, "batch", 4, 8, "seq");
            Loss(b, b.MatMul(q, k));
        }, "q", "k");
        Assert.DoesNotContain("NonZero", ops);
        Assert.DoesNotContain("ReduceSum", ops.Skip(1));   // only the loss's own ReduceSum is differentiated, via Expand
    }

    [Fact]
    public void Bias_and_scale_broadcast_over_symbolic_dims_use_constant_axes()
    {
        var ops = BackwardOps(b =>
        {
            var x = b.Input("x", DataType.Float, "batch", "seq", 8);
            var w = b.Input("w", DataType.Float, 8);
            var bias = b.Input("bias", DataType.Float, 8);
            Loss(b, b.Add(b.Mul(x, w), bias));
        }, "x", "w", "bias");
        Assert.DoesNotContain("NonZero", ops);
    }

    [Fact]
    public void Mean_over_static_dims_divides_by_a_constant_and_over_symbolic_dims_counts_on_the_device()
    {
        // RMSNorm's mean over the hidden size (8): the count is a constant, no Size arithmetic on the host.
        var overHidden = BackwardOps(b => Loss(b, b.ReduceMean(b.Input("x", DataType.Float, "batch", "seq", 8), [-1])), "x");
        Assert.DoesNotContain("Size", overHidden);
        Assert.DoesNotContain("Cast", overHidden);
        // A mean over the symbolic batch: the count is a float reduction of ones (no int64 Size whose float cast a CUDA
        // session would copy to the device).
        var overBatch = BackwardOps(b => Loss(b, b.ReduceMean(b.Input("x", DataType.Float, "batch", 8), [0])), "x");
        Assert.DoesNotContain("Size", overBatch);
        Assert.DoesNotContain("Cast", overBatch);
    }

    [Fact]
    public void Linear_layer_weight_gradient_is_one_gemm_without_batched_sum()
    {
        var ops = BackwardOps(b =>
        {
            var x = b.Input("x", DataType.Float, "batch", "seq", 8);
            var w = b.Input("w", DataType.Float, 8, 16);
            Loss(b, b.MatMul(x, w));
        }, "x", "w");
        Assert.Contains("Gemm", ops);
        Assert.DoesNotContain("NonZero", ops);
        Assert.Single(ops, o => o == "MatMul");   // dx = g @ w^T only
    }

    [Fact]
    public void Undecidable_broadcast_falls_back_to_run_time_axes()
    {
        // 'n' may be 1 at run time while 'm' is not: only the run-time shapes can tell.
        var ops = BackwardOps(b =>
        {
            var x = b.Input("x", DataType.Float, "m", 3);
            var y = b.Input("y", DataType.Float, "n", 3);
            Loss(b, b.Add(x, y));
        }, "x", "y");
        Assert.Contains("NonZero", ops);
    }
}
