using AlignThenUnlearn.Onnx;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Tests.Support;
using Onnx;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Tests.Onnx;

/// <summary>ShapeInference against shapes worked out by hand from the ONNX operator definitions. Where a
/// graph is fully static, ONNX Runtime runs it as well and must produce the same shape.</summary>
public class ShapeInferenceTests
{
    static readonly Dim Unknown = Dim.Unknown;

    /// <summary>Asserts the inferred element type and shape of <paramref name="value"/>; for graphs whose inputs are
    /// all static, also runs ONNX Runtime on zero-filled inputs and compares the shape it produces.</summary>
    static void AssertInferred(GraphBuilder b, string value, DataType type, params Dim[] expected)
    {
        var info = ShapeInference.Run(b.Graph)[value];
        Assert.NotNull(info);
        Assert.Equal(type, info.ElementType);
        Assert.Equal(expected, info.Shape);

        var inputs = b.Graph.Input.Select(i => (i.Name, Info: GraphBuilder.InfoOf(i)!)).ToList();
        if (!inputs.All(i => i.Info.IsFullyStatic)) return;
        var model = b.ToModel().Clone();
        model.Graph.Output.Clear();
        model.Graph.Output.Add(new ValueInfoProto { Name = value });
        var feeds = inputs.ToDictionary(i => i.Name, i => Zeros(i.Info));
        var actual = GradCheck.Cpu.Run(model, feeds)[value];
        Assert.Equal(expected.Select(d => d.Size), actual.Shape);
    }

    static HostTensor Zeros(TensorInfo info)
    {
        var shape = info.Shape!.Select(d => d.Size).ToArray();
        var count = (int)shape.Aggregate(1L, (p, d) => p * d);
        return info.ElementType switch
        {
            DataType.Float => HostTensor.Of(new float[count], shape),
            DataType.Int64 => HostTensor.Of(new long[count], shape),
            DataType.Bool => HostTensor.Of(new bool[count], shape),
            var other => throw new ArgumentException($"no zero inputs of {other}"),
        };
    }

    static (GraphBuilder B, string X) One(params Dim[] shape)
    {
        var b = new GraphBuilder("shapes");
        return (b, b.Input("x", DataType.Float, shape));
    }

    // ---- broadcasting ----

    [Fact]
    public void Broadcasting_a_vector_over_symbolic_batch_and_sequence_keeps_the_symbols()
    {
        var (b, x) = One("batch", "seq", 4);
        var bias = b.Input("bias", DataType.Float, 4);
        AssertInferred(b, b.Add(x, bias), DataType.Float, "batch", "seq", 4);
    }

    [Fact]
    public void Ones_broadcast_against_symbols_and_sizes_on_both_sides()
    {
        var (b, x) = One("batch", 1, 4);
        var y = b.Input("y", DataType.Float, 1, "seq", 1);
        AssertInferred(b, b.Mul(x, y), DataType.Float, "batch", "seq", 4);
    }

    [Fact]
    public void Two_different_symbols_in_one_position_give_an_unknown_dim()
    {
        // seq and seq2 are equal at run time or one of them is 1; which one is not known.
        var (b, x) = One("batch", "seq");
        var y = b.Input("y", DataType.Float, "seq2");
        AssertInferred(b, b.Sub(x, y), DataType.Float, "batch", Unknown);
    }

    [Fact]
    public void Static_broadcast_matches_onnx_runtime()
    {
        var (b, x) = One(3, 1, 5);
        var y = b.Input("y", DataType.Float, 4, 1);
        AssertInferred(b, b.Div(x, y), DataType.Float, 3, 4, 5);
    }

    [Fact]
    public void Comparisons_give_bool_and_where_broadcasts_all_three_inputs()
    {
        var (b, x) = One("batch", "seq", 4);
        var mask = b.Input("mask", DataType.Bool, "seq", 1);
        AssertInferred(b, b.Op("Less", x, b.Scalar(0, DataType.Float)), DataType.Bool, "batch", "seq", 4);
        AssertInferred(b, b.Where(mask, x, b.Scalar(-1, DataType.Float)), DataType.Float, "batch", "seq", 4);
    }

    [Fact]
    public void Expand_to_a_constant_shape_broadcasts_like_an_elementwise_op()
    {
        var (b, x) = One("batch", 1, 4);
        AssertInferred(b, b.Expand(x, b.Ints(1, 3, 1)), DataType.Float, "batch", 3, 4);
    }

    // ---- MatMul ----

    [Fact]
    public void MatMul_with_a_matrix_keeps_the_leading_symbols()
    {
        var (b, x) = One("batch", "seq", 8);
        var w = b.Input("w", DataType.Float, 8, 5);
        AssertInferred(b, b.MatMul(x, w), DataType.Float, "batch", "seq", 5);
    }

    [Fact]
    public void MatMul_broadcasts_the_batch_dims_of_both_sides()
    {
        // batch dims [2, 1] and [heads] broadcast to [2, heads]; then [seq, 8] x [8, seq].
        var (b, q) = One(2, 1, "seq", 8);
        var k = b.Input("k", DataType.Float, "heads", 8, "seq");
        AssertInferred(b, b.MatMul(q, k), DataType.Float, 2, "heads", "seq", "seq");
    }

    [Fact]
    public void Static_batched_MatMul_matches_onnx_runtime()
    {
        var (b, x) = One(2, 1, 3, 4);
        var y = b.Input("y", DataType.Float, 5, 4, 6);
        AssertInferred(b, b.MatMul(x, y), DataType.Float, 2, 5, 3, 6);
    }

    // ---- Reshape ----

    [Fact]
    public void Reshape_copies_dims_for_zero_and_computes_minus_one_from_static_sizes()
    {
        var (b, x) = One(2, 3, 4);
        AssertInferred(b, b.Reshape(x, 0, -1), DataType.Float, 2, 12);
        AssertInferred(b, b.Reshape(x, -1), DataType.Float, 24);
        AssertInferred(b, b.Reshape(x, 4, 0, -1), DataType.Float, 4, 3, 2);
    }

    [Fact]
    public void Reshape_splitting_the_last_dim_keeps_copied_symbols()
    {
        var (b, x) = One("batch", "seq", 12);
        AssertInferred(b, b.Reshape(x, 0, 0, 3, 4), DataType.Float, "batch", "seq", 3, 4);
    }

    [Fact]
    public void Reshape_minus_one_is_the_one_input_dim_not_kept_elsewhere()
    {
        // seq * batch * 4 / (seq * 4) = batch
        var (b, x) = One("seq", "batch", 4);
        AssertInferred(b, b.Reshape(x, 0, 4, -1), DataType.Float, "seq", 4, "batch");
    }

    [Fact]
    public void Reshape_merging_static_dims_after_symbols_multiplies_them()
    {
        // batch * seq * 3 * 4 / (batch * seq) = 12
        var (b, x) = One("batch", "seq", 3, 4);
        AssertInferred(b, b.Reshape(x, 0, 0, -1), DataType.Float, "batch", "seq", 12);
        // Ones on either side change nothing: batch * 1 * 3 * 4 / (batch * 1) = 12.
        var (c, y) = One("batch", 1, 3, 4);
        AssertInferred(c, c.Reshape(y, 0, 1, -1), DataType.Float, "batch", 1, 12);
        AssertInferred(c, c.Reshape(y, 0, -1), DataType.Float, "batch", 12);
    }

    [Fact]
    public void Reshape_minus_one_is_unknown_when_the_other_dims_do_not_account_for_the_input()
    {
        // 4 * batch * 4 / (2 * 4) = 2 * batch: no dim of the input, but a single symbol among static dims names its
        // multiple (the same expression wherever the same reshape of that symbol is made).
        var (b, x) = One(4, "batch", 4);
        AssertInferred(b, b.Reshape(x, 2, 4, -1), DataType.Float, 2, 4, "batch*16/8");
        AssertInferred(b, b.Reshape(x, 8, -1), DataType.Float, 8, "batch*16/8");
        // batch * batch * 6 / (batch * 3) = 2 * batch.
        var (c, y) = One("batch", "batch", 6);
        AssertInferred(c, c.Reshape(y, 0, 3, -1), DataType.Float, "batch", 3, Unknown);
    }

    // ---- Unsqueeze / Squeeze ----

    [Fact]
    public void Unsqueeze_axes_count_in_the_output_rank()
    {
        // Output rank 2 + 2 = 4; axis -1 is 3.
        var (b, x) = One("batch", 4);
        AssertInferred(b, b.Unsqueeze(x, 0, -1), DataType.Float, 1, "batch", 4, 1);
        AssertInferred(b, b.Unsqueeze(x, 1), DataType.Float, "batch", 1, 4);
    }

    [Fact]
    public void Squeeze_removes_the_given_axes()
    {
        var (b, x) = One(1, "batch", 1, 4);
        AssertInferred(b, b.Squeeze(x, 0, -2), DataType.Float, "batch", 4);
    }

    [Fact]
    public void Squeeze_without_axes_removes_every_static_one()
    {
        var (b, x) = One(1, 3, 1, 2);
        AssertInferred(b, b.Op("Squeeze", x), DataType.Float, 3, 2);
    }

    [Fact]
    public void Squeeze_without_axes_of_a_symbolic_shape_has_unknown_rank()
    {
        // batch may be 1 at run time, in which case it is removed as well.
        var (b, x) = One("batch", 1, 4);
        var y = b.Op("Squeeze", x);
        var info = ShapeInference.Run(b.Graph)[y];
        Assert.NotNull(info);
        Assert.False(info.HasRank);
    }

    // ---- Concat ----

    [Fact]
    public void Concat_adds_static_sizes_along_the_axis_and_keeps_the_rest()
    {
        var (b, x) = One(2, "seq", 3);
        var y = b.Input("y", DataType.Float, 2, "seq", 5);
        AssertInferred(b, b.Concat(-1, x, y), DataType.Float, 2, "seq", 8);
    }

    [Fact]
    public void Concat_along_a_symbolic_axis_is_unknown_there()
    {
        var (b, x) = One(2, "seq", 3);
        var y = b.Input("y", DataType.Float, 2, 1, 3);
        AssertInferred(b, b.Concat(1, x, y), DataType.Float, 2, Unknown, 3);
    }

    [Fact]
    public void Static_concat_matches_onnx_runtime()
    {
        var (b, x) = One(2, 3);
        var y = b.Input("y", DataType.Float, 4, 3);
        AssertInferred(b, b.Concat(0, x, y, x), DataType.Float, 8, 3);
    }

    // ---- Slice ----

    /// <summary>(size, start, end, step, elements): the count of indices start, start+step, ... before end after
    /// ONNX's clamping (starts to [0, size] or [0, size-1] for negative steps, ends to [0, size] or [-1, size-1]).</summary>
    public static TheoryData<long, long, long, long, long> SliceCases => new()
    {
        { 10, 1, 7, 2, 3 },                        // 1 3 5
        { 8, -3, long.MaxValue, 1, 3 },            // 5 6 7
        { 5, 0, -1, 1, 4 },                        // 0 1 2 3
        { 6, -100, 100, 4, 2 },                    // 0 4
        { 5, 3, 3, 1, 0 },                         // empty
        { 5, 4, 1, 1, 0 },                         // end before start
        { 10, -1, long.MinValue, -1, 10 },         // 9 8 ... 0
        { 10, 8, 2, -3, 2 },                       // 8 5
        { 10, 20, 0, -1, 9 },                      // start clamped to 9: 9 8 ... 1
        { 5, 2, -100, -1, 3 },                     // end clamped to -1: 2 1 0
        { 5, -100, long.MinValue, -1, 1 },         // start clamped to 0: 0
    };

    [Theory]
    [MemberData(nameof(SliceCases))]
    public void Slice_of_a_static_dim_counts_the_selected_indices(long size, long start, long end, long step, long elements)
    {
        var (b, x) = One(size, 2);
        var y = b.Op("Slice", x, b.Ints(start), b.Ints(end), b.Ints(0), b.Ints(step));
        AssertInferred(b, y, DataType.Float, elements, 2);
    }

    [Fact]
    public void Slice_over_several_axes_with_default_steps_and_axes()
    {
        var (b, x) = One(10, 8);
        AssertInferred(b, b.Op("Slice", x, b.Ints(1, -3), b.Ints(7, long.MaxValue)), DataType.Float, 6, 3);
        AssertInferred(b, b.Op("Slice", x, b.Ints(2), b.Ints(5)), DataType.Float, 3, 8);
    }

    [Fact]
    public void Slice_keeps_a_symbol_when_taking_all_of_it_and_names_any_other_constant_slice_of_it()
    {
        var (b, x) = One("batch", 10, 8);
        AssertInferred(b, b.Op("Slice", x, b.Ints(0, 1, -3), b.Ints(long.MaxValue, 7, long.MaxValue), b.Ints(0, 1, 2), b.Ints(1, 2, 1)),
            DataType.Float, "batch", 3, 3);
        // batch - 1 rows: a symbol of its own, the same for the same slice of the same symbol.
        AssertInferred(b, b.Op("Slice", x, b.Ints(1), b.Ints(long.MaxValue), b.Ints(0)), DataType.Float, "batch[1::1]", 10, 8);
        AssertInferred(b, b.Op("Slice", x, b.Ints(0), b.Ints(-1), b.Ints(0), b.Ints(1)), DataType.Float, "batch[0:-1:1]", 10, 8);
        // An unknown dim stays unknown.
        var (c, y) = One(Unknown, 4);
        AssertInferred(c, c.Op("Slice", y, c.Ints(1), c.Ints(long.MaxValue), c.Ints(0)), DataType.Float, Unknown, 4);
    }

    [Fact]
    public void Range_over_a_dim_read_from_a_shape_has_that_dims_length()
    {
        // Range(0, shape(x)[1], 1): the positions of x's sequence; and Expand to shape(x) takes x's dims.
        var (b, x) = One("batch", "sequence", 8);
        var positions = b.Op("Range", b.IntScalar(0), b.Gather(b.Shape(x), b.IntScalar(1)), b.IntScalar(1));
        AssertInferred(b, positions, DataType.Int64, "sequence");
        AssertInferred(b, b.Op("Range", b.IntScalar(1), b.Gather(b.Shape(x), b.IntScalar(1)), b.IntScalar(1)), DataType.Int64, Unknown);
        AssertInferred(b, b.Expand(b.Scalar(1, DataType.Float), b.Shape(x)), DataType.Float, "batch", "sequence", 8);
    }

    // ---- Gather ----

    [Fact]
    public void Gather_replaces_the_axis_with_the_indices_shape()
    {
        var b = new GraphBuilder("shapes");
        var table = b.Input("table", DataType.Float, 100, 16);
        var ids = b.Input("ids", DataType.Int64, "batch", "seq");
        AssertInferred(b, b.Gather(table, ids), DataType.Float, "batch", "seq", 16);
    }

    [Fact]
    public void Gather_with_a_scalar_index_drops_the_axis()
    {
        var (b, x) = One(2, 5, 3);
        AssertInferred(b, b.Gather(x, b.IntScalar(4), axis: 1), DataType.Float, 2, 3);
        AssertInferred(b, b.Gather(x, b.Ints(0, 2, 1, 0), axis: -1), DataType.Float, 2, 5, 4);
    }

    // ---- reductions ----

    [Fact]
    public void Reductions_keep_ones_or_drop_the_reduced_axes()
    {
        var (b, x) = One("batch", "seq", 8);
        AssertInferred(b, b.ReduceMean(x, [-1]), DataType.Float, "batch", "seq", 1);
        AssertInferred(b, b.ReduceSum(x, [0, 2], keepDims: false), DataType.Float, "seq");
    }

    [Fact]
    public void Reduction_without_axes_reduces_everything_unless_told_to_do_nothing()
    {
        var (b, x) = One(2, 3, 4);
        AssertInferred(b, b.Op("ReduceSum", [x], Attr.Int("keepdims", 1)), DataType.Float, 1, 1, 1);
        AssertInferred(b, b.Op("ReduceMax", [x], Attr.Int("keepdims", 0)), DataType.Float);
        AssertInferred(b, b.ReduceSumDynamic(x, b.Ints(), keepDims: false), DataType.Float, 2, 3, 4);
        AssertInferred(b, b.Op("ReduceMin", [x, b.Ints(1)], Attr.Int("keepdims", 0)), DataType.Float, 2, 4);
    }

    // ---- Transpose ----

    [Fact]
    public void Transpose_permutes_symbols_and_sizes()
    {
        var (b, x) = One("batch", "seq", "heads", 8);
        AssertInferred(b, b.Transpose(x, 0, 2, 1, 3), DataType.Float, "batch", "heads", "seq", 8);
    }

    [Fact]
    public void Transpose_without_perm_reverses_the_axes()
    {
        var (b, x) = One(2, 3, 4);
        AssertInferred(b, b.Op("Transpose", x), DataType.Float, 4, 3, 2);
    }

    // ---- types and unknown operators ----

    [Fact]
    public void Cast_and_Shape_set_the_element_type()
    {
        var (b, x) = One("batch", 4);
        AssertInferred(b, b.Cast(x, DataType.Int64), DataType.Int64, "batch", 4);
        AssertInferred(b, b.Shape(x), DataType.Int64, 2);
    }

    [Fact]
    public void Onnx_runtimes_fused_matmul_and_fused_normalisations_are_sized()
    {
        // FusedMatMul(a [batch, 3, 4], w [5, 4], transB=1) = a @ w^T: [batch, 3, 5]; the fused normalisations and
        // activations ONNX Runtime's optimiser makes keep their first input's shape.
        var b = new GraphBuilder("g");
        var a = b.Input("a", DataType.Float, "batch", 3, 4);
        var w = b.Input("w", DataType.Float, 5, 4);
        AssertInferred(b, b.Node("FusedMatMul", [a, w], attributes: [Attr.Int("transB", 1)], domain: "com.microsoft")[0], DataType.Float, "batch", 3, 5);
        AssertInferred(b, b.Node("SimplifiedLayerNormalization", [a, b.Input("g", DataType.Float, 4)])[0], DataType.Float, "batch", 3, 4);
        AssertInferred(b, b.Node("Gelu", [a], domain: "com.microsoft")[0], DataType.Float, "batch", 3, 4);
    }

    [Fact]
    public void Operators_it_does_not_know_give_no_information_and_no_error()
    {
        var (b, x) = One("batch", 4);
        var custom = b.Node("Attention", [x], domain: "com.microsoft")[0];
        var unknown = b.Op("NoSuchOperator", x);
        var after = b.Add(x, custom);
        var shapes = ShapeInference.Run(b.Graph);
        Assert.Null(shapes[custom]);
        Assert.Null(shapes[unknown]);
        Assert.NotNull(shapes[after]);
        Assert.False(shapes[after]!.HasRank);
    }
}
