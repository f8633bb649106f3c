using AlignThenUnlearn.Onnx;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Tests.Onnx;

/// <summary>GraphMemory's liveness walk against peaks worked out by hand for small graphs (S = one [batch, 1000] float
/// tensor = 4000 x batch bytes).</summary>
public class GraphMemoryTests
{
    static readonly Dictionary<string, long> Batch8 = new() { ["batch"] = 8 };
    const long S = 8 * 1000 * 4;

    [Fact]
    public void Peak_follows_onnx_runtimes_order_and_frees_each_value_after_its_last_reader()
    {
        // a = Exp(x); b = Transpose(a); c = Concat(a, a); out = ReduceSum(b) + ReduceSum(c). ONNX Runtime's order walks
        // from the output into its inputs, lowest-numbered first: Exp, Transpose, ReduceSum(b) (b dies), Concat (a dies),
        // ReduceSum(c), Add. At Concat: a (S) + c (2S) + the scalar ReduceSum(b) (4 bytes) = 3S + 4. In the order the
        // nodes were written, b would still be alive at Concat: 4S.
        var b = new GraphBuilder("g");
        var x = b.Input("x", DataType.Float, "batch", 1000);
        var a = b.Op("Exp", x);
        var t = b.Transpose(a, [1, 0]);
        var c = b.Concat(0, a, a);
        var loss = b.Add(b.ReduceSum(t, [], keepDims: false), b.ReduceSum(c, [], keepDims: false));
        b.Output(loss, DataType.Float);
        var estimate = GraphMemory.PeakOfIntermediates(b.ToModel(), Batch8);
        Assert.Equal(3 * S + 4, estimate.PeakBytes);
        Assert.Equal(0, estimate.UnknownValues);
    }

    [Fact]
    public void Reshape_aliases_its_input_and_bound_outputs_are_not_counted()
    {
        var b = new GraphBuilder("g");
        var x = b.Input("x", DataType.Float, "batch", 1000);
        var a = b.Op("Exp", x);
        var flat = b.Reshape(a, [-1]);
        var sum = b.ReduceSum(flat, [], keepDims: false);
        var grad = b.Op("Sigmoid", x);
        b.Output(sum, DataType.Float);
        b.Output(grad, DataType.Float, "batch", 1000);
        // Exp: S; Reshape: nothing new; ReduceSum: +4, then a dies; Sigmoid writes into the caller's buffer.
        Assert.Equal(S + 4, GraphMemory.PeakOfIntermediates(b.ToModel(), Batch8, [grad]).PeakBytes);
        // Counted when not bound: ONNX Runtime's order starts from the last output-producing node, Sigmoid, whose output
        // stays (a graph output): S, then Exp S more, then the sum's 4 bytes.
        Assert.Equal(2 * S + 4, GraphMemory.PeakOfIntermediates(b.ToModel(), Batch8).PeakBytes);
        // Twice the batch, twice the tensor.
        Assert.Equal(2 * S + 4, GraphMemory.PeakOfIntermediates(b.ToModel(), new Dictionary<string, long> { ["batch"] = 16 }, [grad]).PeakBytes);
    }

    [Fact]
    public void Shape_arithmetic_is_evaluated_so_a_range_over_the_sequence_has_its_size()
    {
        // positions = Range(0, Shape(x)[1], 1) as float, [seq]; scores = positions (as a row) + x: [batch, seq].
        var b = new GraphBuilder("g");
        var x = b.Input("x", DataType.Float, "batch", "seq");
        var length = b.Op("Gather", b.Shape(x), b.Ints(1));
        var positions = b.Cast(b.Op("Range", b.Scalar(0, DataType.Int64), b.Reshape(length, b.Ints()), b.Scalar(1, DataType.Int64)), DataType.Float);
        var scores = b.Add(x, positions);
        b.Output(b.ReduceSum(scores, [], keepDims: false), DataType.Float);
        var estimate = GraphMemory.PeakOfIntermediates(b.ToModel(), new Dictionary<string, long> { ["batch"] = 4, ["seq"] = 100 });
        Assert.Equal(0, estimate.UnknownValues);
        // At the Add: the int64 range (800 bytes) is dead after the Cast; positions (400) and scores (1,600) live.
        Assert.Equal(400 + 1600, estimate.PeakBytes);
    }
}
