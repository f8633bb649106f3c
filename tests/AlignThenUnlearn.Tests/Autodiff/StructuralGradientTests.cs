using AlignThenUnlearn.Autodiff;
using AlignThenUnlearn.Onnx;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Tests.Support;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Tests.Autodiff;

/// <summary>Reductions, shape ops and indexing ops against central differences in double precision,
/// plus the walk's bookkeeping: unreached inputs and fan-out accumulation.</summary>
public class StructuralGradientTests
{
    static HostTensor Longs(long[] values, params long[] shape) => HostTensor.Of(values, shape);
    static HostTensor Longs(params long[] values) => HostTensor.Of(values, values.Length);

    // ---- reductions ----

    /// <summary>(axes: null = no axes input, keepdims, noop_with_empty_axes, symbolic dims).</summary>
    static readonly (long[]? Axes, bool Keep, bool Noop, bool Symbolic)[] ReductionCases =
    [
        ([1], true, false, false),
        ([1], false, false, false),
        ([0, 2], true, false, false),
        ([0, 2], false, false, false),
        ([-1], false, false, false),
        ([-3, -1], true, false, false),
        (null, true, false, false),      // reduce everything
        (null, false, false, false),
        ([], false, false, false),       // empty axes without noop also reduces everything
        ([], false, true, false),        // empty axes with noop: identity
        ([], true, true, false),
        (null, false, true, false),
        ([1], false, false, true),
        ([0, -1], true, false, true),
        (null, false, false, true),
    ];

    public static TheoryData<string, int> Reductions()
    {
        var data = new TheoryData<string, int>();
        foreach (var op in new[] { "ReduceSum", "ReduceMean" })
            for (int i = 0; i < ReductionCases.Length; i++) data.Add(op, i);
        return data;
    }

    [Theory]
    [MemberData(nameof(Reductions))]
    public void Reduction_gradient_spreads_back_over_the_reduced_axes(string op, int caseIndex)
    {
        var (axes, keep, noop, symbolic) = ReductionCases[caseIndex];
        var t = new OpTest(op, seed: caseIndex);
        t.Attr(Attr.Int("keepdims", keep ? 1 : 0));
        if (noop) t.Attr(Attr.Int("noop_with_empty_axes", 1));
        t.Input("x", t.Rand(2, 3, 4), declared: symbolic ? ["batch", "seq", 4] : null);
        if (axes is not null) t.Constant("axes", Longs(axes));
        t.Check();
    }

    [Theory]
    [InlineData("ReduceSum")]
    [InlineData("ReduceMean")]
    public void Reduction_with_axes_known_only_at_run_time(string op)
    {
        // axes is a graph input, so the rule cannot read it while building the backward graph.
        var t = new OpTest(op);
        t.Attr(Attr.Int("keepdims", 0)).Input("x", t.Rand(2, 3, 4)).Input("axes", Longs(0, -1), wrt: false).Check();
    }

    // ---- permutations and reshapes ----

    [Fact]
    public void Transpose_with_explicit_and_default_perm()
    {
        var t = new OpTest("Transpose");
        t.Attr(Attr.Ints("perm", 1, 2, 0)).Input("x", t.Rand(2, 3, 4), declared: ["batch", "seq", 4]).Check();
        var u = new OpTest("Transpose", seed: 2);
        u.Input("x", u.Rand(2, 3, 4)).Check();
    }

    [Fact]
    public void Reshape_with_copied_and_inferred_dims()
    {
        var t = new OpTest("Reshape");
        t.Input("x", t.Rand(2, 3, 4)).Constant("shape", Longs(0, -1)).Check();
        var u = new OpTest("Reshape", seed: 2);
        u.Input("x", u.Rand(2, 3, 4), declared: ["batch", "seq", 4]).Constant("shape", Longs(0, 0, 2, -1)).Check();
        var v = new OpTest("Reshape", seed: 3);
        v.Input("x", v.Rand(2, 3, 4), declared: ["batch", "seq", 4]).Constant("shape", Longs(-1, 4)).Check();
    }

    [Fact]
    public void Unsqueeze_with_negative_axes()
    {
        var t = new OpTest("Unsqueeze");
        t.Input("x", t.Rand(2, 3)).Constant("axes", Longs(-1)).Check();
        var u = new OpTest("Unsqueeze", seed: 2);
        u.Input("x", u.Rand(2, 3), declared: ["batch", 3]).Constant("axes", Longs(0, -2)).Check();
    }

    [Fact]
    public void Squeeze_with_and_without_axes()
    {
        var t = new OpTest("Squeeze");
        t.Input("x", t.Rand(2, 1, 3, 1)).Constant("axes", Longs(-1)).Check();
        var u = new OpTest("Squeeze", seed: 2);
        u.Input("x", u.Rand(2, 1, 3, 1)).Check();
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(-1)]
    public void Flatten_at_each_axis(int axis)
    {
        var t = new OpTest("Flatten");
        t.Attr(Attr.Int("axis", axis)).Input("x", t.Rand(2, 3, 4)).Check();
    }

    [Fact]
    public void Expand_to_a_larger_rank_and_along_size_1_dims()
    {
        var t = new OpTest("Expand");
        t.Input("x", t.Rand(3, 1)).Constant("shape", Longs(2, 3, 4)).Check();
        var u = new OpTest("Expand", seed: 2);
        u.Input("x", u.Rand(1, 4)).Constant("shape", Longs(3, 1)).Check();   // Expand broadcasts both ways: [3,4]
    }

    [Fact]
    public void Expand_to_a_shape_known_only_at_run_time()
    {
        // The target shape is a graph input, so summing back over the broadcast axes is planned at run time.
        var t = new OpTest("Expand");
        t.Input("x", t.Rand(3, 1), declared: ["seq", 1]).Input("shape", Longs(2, 3, 4), wrt: false).Check();
    }

    // ---- concatenation and splitting ----

    [Fact]
    public void Concat_of_static_sizes()
    {
        var t = new OpTest("Concat");
        t.Attr(Attr.Int("axis", 1)).Input("a", t.Rand(2, 3)).Input("b", t.Rand(2, 1)).Input("c", t.Rand(2, 2)).Check();
        var u = new OpTest("Concat", seed: 2);
        u.Attr(Attr.Int("axis", -3)).Input("a", u.Rand(1, 2, 3)).Input("b", u.Rand(2, 2, 3)).Check();
    }

    [Fact]
    public void Concat_with_a_symbolic_size_along_the_axis_splits_at_run_time()
    {
        var t = new OpTest("Concat");
        t.Attr(Attr.Int("axis", -1)).Input("past", t.Rand(2, 3), declared: [2, "past"]).Input("new", t.Rand(2, 2)).Check();
    }

    [Fact]
    public void Split_by_num_outputs()
    {
        var t = new OpTest("Split");
        t.Attr(Attr.Int("axis", 1)).Attr(Attr.Int("num_outputs", 3)).Outputs(3).Input("x", t.Rand(2, 6)).Check();
        var u = new OpTest("Split", seed: 2);   // 7 = 3 + 3 + 1
        u.Attr(Attr.Int("axis", 1)).Attr(Attr.Int("num_outputs", 3)).Outputs(3).Input("x", u.Rand(2, 7)).Check();
    }

    [Fact]
    public void Split_by_explicit_sizes()
    {
        var t = new OpTest("Split");
        t.Attr(Attr.Int("axis", -1)).Outputs(3).Input("x", t.Rand(2, 6), declared: ["batch", 6]).Constant("split", Longs(1, 3, 2)).Check();
    }

    [Fact]
    public void Split_with_some_outputs_unused_gives_them_zero_gradient()
    {
        var t = new OpTest("Split");
        t.Attr(Attr.Int("axis", 0)).Outputs(3, 0, 2).Input("x", t.Rand(5, 2)).Constant("split", Longs(2, 2, 1)).Check();
        var u = new OpTest("Split", seed: 2);
        u.Attr(Attr.Int("axis", 1)).Attr(Attr.Int("num_outputs", 2)).Outputs(2, 1).Input("x", u.Rand(2, 4)).Check();
    }

    // ---- slicing ----

    [Fact]
    public void Slice_with_constant_starts_ends_and_axes()
    {
        var t = new OpTest("Slice");
        t.Input("x", t.Rand(4, 5)).Constant("starts", Longs(1)).Constant("ends", Longs(3)).Constant("axes", Longs(1)).Check();
        var u = new OpTest("Slice", seed: 2);   // no axes input: starts and ends apply to axes 0 and 1
        u.Input("x", u.Rand(4, 5)).Constant("starts", Longs(1, 2)).Constant("ends", Longs(3, 4)).Check();
    }

    [Fact]
    public void Slice_with_negative_starts_and_axes_and_ends_past_the_end()
    {
        var t = new OpTest("Slice");
        t.Input("x", t.Rand(4, 5)).Constant("starts", Longs(-3, -10)).Constant("ends", Longs(long.MaxValue, 10)).Constant("axes", Longs(-1, 0)).Check();
        var u = new OpTest("Slice", seed: 2);   // negative end, and explicit unit steps
        u.Input("x", u.Rand(4, 5)).Constant("starts", Longs(0)).Constant("ends", Longs(-1)).Constant("axes", Longs(1)).Constant("steps", Longs(1)).Check();
    }

    [Fact]
    public void Slice_of_a_symbolic_dim()
    {
        var t = new OpTest("Slice");
        t.Input("x", t.Rand(4, 3), declared: ["seq", 3]).Constant("starts", Longs(1)).Constant("ends", Longs(long.MaxValue)).Constant("axes", Longs(0)).Check();
        var u = new OpTest("Slice", seed: 2);   // starts and ends as run-time inputs
        u.Input("x", u.Rand(4, 3), declared: ["seq", 3]).Input("starts", Longs(-2), wrt: false).Input("ends", Longs(3), wrt: false).Constant("axes", Longs(0)).Check();
    }

    [Fact]
    public void Slice_with_a_step_other_than_1_is_refused_naming_the_node()
    {
        var b = new GraphBuilder("strided");
        var x = b.Input("x", DataType.Double, 6);
        var y = b.Node("Slice", [x, b.Ints(0), b.Ints(6), b.Ints(0), b.Ints(2)], name: "every_other_token")[0];
        var loss = b.ReduceSum(y, [], keepDims: false);
        b.Output(loss, DataType.Double);
        var error = Assert.Throws<GradientException>(() => Gradients.Build(b.ToModel(), loss, ["x"]));
        Assert.Contains("'every_other_token'", error.Message);
        Assert.Contains("step", error.Message);
    }

    // ---- indexing ----

    [Fact]
    public void Gather_embedding_lookup_accumulates_repeated_and_negative_indices()
    {
        // Row 2 is looked up three times (once as -3); row 0 twice; row 1 never.
        var t = new OpTest("Gather");
        t.Input("table", t.Rand(5, 3)).Input("ids", Longs([0, 2, 2, -3, 4, 0], 2, 3), wrt: false, declared: ["batch", "seq"]).Check();
    }

    [Fact]
    public void Gather_embedding_rows_sum_their_uses()
    {
        // Hand-computed: d sum(Gather(table, ids)) / d table[r, :] is the number of times row r is used.
        var b = new GraphBuilder("embedding");
        b.Input("table", DataType.Double, 4, 2);
        var ids = b.Initializer(Tensors.FromInt64("ids", [3, 1, 3, -1, 0], 5));
        var loss = b.ReduceSum(b.Gather("table", ids), [], keepDims: false);
        b.Output(loss, DataType.Double);
        var grads = Gradients.Build(b.ToModel(), loss, ["table"]);
        var table = HostTensor.Of(new double[8], 4, 2);
        var g = GradCheck.Cpu.Run(grads.Model, new Dictionary<string, HostTensor> { ["table"] = table })[grads.Gradients["table"]];
        Assert.Equal(new double[] { 1, 1, 1, 1, 0, 0, 3, 3 }, g.Doubles);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(-1)]
    public void Gather_along_an_inner_axis_with_rank_2_indices(int axis)
    {
        var t = new OpTest("Gather");
        t.Attr(Attr.Int("axis", axis)).Input("x", t.Rand(2, 3, 4)).Constant("idx", Longs([2, 0, -1, 2, 1, 2], 2, 3)).Check();
    }

    [Fact]
    public void GatherElements_along_each_axis_accumulates_repeats()
    {
        var t = new OpTest("GatherElements");
        t.Attr(Attr.Int("axis", 0)).Input("x", t.Rand(3, 4)).Constant("idx", Longs([0, 2, 2, 1, 0, -1, 2, 0], 2, 4)).Check();
        var u = new OpTest("GatherElements", seed: 2);
        u.Attr(Attr.Int("axis", 1)).Input("x", u.Rand(3, 4)).Constant("idx", Longs([3, 3, 0, 1, 2, 0], 3, 2)).Check();
    }

    // ---- the walk ----

    [Fact]
    public void Inputs_the_loss_does_not_depend_on_are_unreached_and_get_no_gradient_output()
    {
        var b = new GraphBuilder("partial");
        b.Input("used", DataType.Double, 3);
        b.Input("unused", DataType.Double, 3);
        var loss = b.ReduceSum(b.Mul("used", "used"), [], keepDims: false);
        b.Identity("unused");   // consumed, but not on the way to the loss
        b.Output(loss, DataType.Double);
        var grads = Gradients.Build(b.ToModel(), loss, ["used", "unused"]);
        Assert.Equal(new[] { "unused" }, grads.Unreached);
        Assert.Equal(new[] { "used" }, grads.Gradients.Keys);
        Assert.DoesNotContain(grads.Model.Graph.Output, o => o.Name == Gradients.GradientName("unused"));
        Assert.Contains(grads.Model.Graph.Output, o => o.Name == Gradients.GradientName("used"));

        var none = Gradients.Build(b.ToModel(), loss, ["unused"]);
        Assert.Equal(new[] { "unused" }, none.Unreached);
        Assert.Empty(none.Gradients);
    }

    [Fact]
    public void Fan_out_sums_the_contributions_of_every_consumer()
    {
        // y = x*x + sin(x): x feeds Mul twice and Sin once, so dy/dx = 2x + cos(x).
        var b = new GraphBuilder("fan_out");
        b.Input("x", DataType.Double, 5);
        var y = b.Add(b.Mul("x", "x"), b.Op("Sin", "x"));
        b.Output(y, DataType.Double, 5);
        var x = HostTensor.Of([-1.3, -0.2, 0.0, 0.7, 2.1], 5);
        var feeds = new Dictionary<string, HostTensor> { ["x"] = x };
        GradCheck.Check(b.ToModel(), y, feeds, ["x"]);

        var grads = Gradients.Build(b.ToModel(), y, ["x"]);
        var g = GradCheck.Cpu.Run(grads.Model, feeds)[grads.Gradients["x"]].Doubles;
        for (int i = 0; i < 5; i++)
            Assert.Equal(2 * x.Doubles[i] + Math.Cos(x.Doubles[i]), g[i], 1e-12);
    }
}
