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

    [Fact]
    public void An_identity_to_a_bound_output_is_removed_so_its_producer_writes_the_callers_buffer()
    {
        // a = Exp(x); g = Neg(a) -> Identity -> "w.grad" (bound, as every gradient is written); loss = ReduceSum(a).
        // ONNX Runtime's EliminateIdentity makes Neg write "w.grad" (g has no other reader), so g takes no intermediate:
        // the peak is a (S) + the 4-byte sum. Were g an intermediate that the Identity copies, it would be 2S + 4.
        var b = new GraphBuilder("g");
        var x = b.Input("x", DataType.Float, "batch", 1000);
        var a = b.Op("Exp", x);
        var g = b.Neg(a);
        b.Node("Identity", [g], 1, outputNames: ["w.grad"]);
        b.Output("w.grad", DataType.Float, "batch", 1000);
        b.Output(b.ReduceSum(a, [], keepDims: false), DataType.Float);
        var estimate = GraphMemory.PeakOfIntermediates(b.ToModel(), Batch8, ["w.grad"]);
        Assert.Equal(S + 4, estimate.PeakBytes);
    }

    [Fact]
    public void An_identity_whose_input_has_other_readers_copies_it_and_the_input_dies_after_its_last_reader()
    {
        // a = Exp(x) -> Identity -> "out" (bound); b = Neg(a); c = Exp(b); loss = ReduceSum(c). The Identity stays (a has
        // two readers) and copies a into the caller's buffer. ONNX Runtime's order: Exp, Identity (the last leaf first),
        // Neg (a + b = 2S, a dies), Exp (b + c = 2S, b dies), ReduceSum. Were a aliased to the output and kept, the second
        // Exp would hold a + b + c = 3S.
        var b = new GraphBuilder("g");
        var x = b.Input("x", DataType.Float, "batch", 1000);
        var a = b.Op("Exp", x);
        var c = b.Op("Exp", b.Neg(a));
        b.Output(b.ReduceSum(c, [], keepDims: false), DataType.Float);
        b.Node("Identity", [a], 1, outputNames: ["out"]);
        b.Output("out", DataType.Float, "batch", 1000);
        Assert.Equal(2 * S, GraphMemory.PeakOfIntermediates(b.ToModel(), Batch8, ["out"]).PeakBytes);
    }

    [Fact]
    public void Only_kernels_that_declare_in_place_reuse_take_over_their_input()
    {
        // Binary ops of ONNX Runtime's CPU provider always allocate: a = Exp(x); b = Neg(x); d = Mul(a, b);
        // loss = ReduceSum(d). Order: Exp, Neg, Mul (a + b + d = 3S: a and b die with the Mul but d is new), ReduceSum.
        var m = new GraphBuilder("g");
        var x = m.Input("x", DataType.Float, "batch", 1000);
        m.Output(m.ReduceSum(m.Mul(m.Op("Exp", x), m.Neg(x)), [], keepDims: false), DataType.Float);
        Assert.Equal(3 * S, GraphMemory.PeakOfIntermediates(m.ToModel(), Batch8).PeakBytes);

        // Sigmoid declares MayInplace(0, 0): a = Exp(x); c = Sigmoid(Neg(x)); loss = ReduceSum(a) + ReduceSum(c).
        // Order: Exp, ReduceSum(a) (a dies), Neg, Sigmoid in b's buffer, ReduceSum(c), Add: at most one S tensor and the
        // two 4-byte sums (S + 8); a Sigmoid that allocated would hold b and c at once (2S + 4).
        var s = new GraphBuilder("g");
        var y = s.Input("x", DataType.Float, "batch", 1000);
        var sumA = s.ReduceSum(s.Op("Exp", y), [], keepDims: false);
        var sumC = s.ReduceSum(s.Op("Sigmoid", s.Neg(y)), [], keepDims: false);
        s.Output(s.Add(sumA, sumC), DataType.Float);
        Assert.Equal(S + 8, GraphMemory.PeakOfIntermediates(s.ToModel(), Batch8).PeakBytes);
    }

    [Fact]
    public void A_transpose_of_the_last_two_axes_read_by_a_matmul_is_fused_away()
    {
        // a = Exp(x) [8, 1000]; y = MatMul(x, Transpose(a)) [8, 8]; loss = ReduceSum(y). ONNX Runtime fuses the
        // Transpose into the MatMul (FusedMatMul with transB), so a is read directly: at most a (S) and y (256 bytes).
        // A materialised transpose would hold a and its copy at once (2S).
        var b = new GraphBuilder("g");
        var x = b.Input("x", DataType.Float, "batch", 1000);
        var y = b.MatMul(x, b.Transpose(b.Op("Exp", x), 1, 0));
        b.Output(b.ReduceSum(y, [], keepDims: false), DataType.Float);
        Assert.Equal(S + 8 * 8 * 4, GraphMemory.PeakOfIntermediates(b.ToModel(), Batch8).PeakBytes);
    }
}
