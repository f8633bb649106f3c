using AlignThenUnlearn.Autodiff;
using AlignThenUnlearn.Onnx;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Tests.Support;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Tests.Autodiff;

/// <summary>Elementwise rules against central differences in double precision, including broadcasting.</summary>
public class ElementwiseGradientTests
{
    [Theory]
    [InlineData("Add")]
    [InlineData("Sub")]
    [InlineData("Mul")]
    [InlineData("Div")]
    public void Binary_ops_with_broadcasting(string op)
    {
        var t = new OpTest(op);
        t.Input("a", t.Rand(2, 3, 4)).Input("b", HostTensor.Of(t.RandomDoubles(4, 0.5, 2), 4)).Check();
        var u = new OpTest(op, seed: 2);
        u.Input("a", u.Rand(2, 1, 4)).Input("b", HostTensor.Of(u.RandomDoubles(3, 0.5, 2), 3, 1)).Check();
    }

    [Fact]
    public void Broadcasting_over_symbolic_batch_and_sequence()
    {
        var t = new OpTest("Mul");
        t.Input("x", t.Rand(2, 3, 4), declared: ["batch", "seq", 4])
         .Input("scale", t.Rand(1, 3, 1), declared: [1, "seq", 1]).Check();
        var u = new OpTest("Add", seed: 3);
        u.Input("x", u.Rand(2, 3, 4), declared: ["batch", "seq", 4])
         .Input("bias", u.Rand(2, 1, 4), declared: ["batch", 1, 4]).Check();
    }

    [Theory]
    [InlineData("Add")]
    [InlineData("Sub")]
    [InlineData("Mul")]
    [InlineData("Div")]
    public void Binary_ops_with_the_first_operand_broadcast_or_shapes_equal(string op)
    {
        var t = new OpTest(op, seed: 4);
        t.Input("a", t.Rand(3, 1)).Input("b", Sample(t, Domain.Positive, 2, 3, 4)).Check();
        var u = new OpTest(op, seed: 5);
        u.Input("a", u.Rand(2, 3)).Input("b", Sample(u, Domain.Positive, 2, 3)).Check();
        var s = new OpTest(op, seed: 6);
        s.Input("a", s.Rand()).Input("b", Sample(s, Domain.Positive, 3, 2)).Check();   // rank-0 operand
    }

    /// <summary>Symbols that differ between the operands leave broadcasting undecided until run time,
    /// so the reduction axes of the gradients are computed from the shapes in the graph.</summary>
    [Theory]
    [InlineData("Add")]
    [InlineData("Sub")]
    [InlineData("Mul")]
    [InlineData("Div")]
    public void Binary_ops_over_symbolic_dims_that_broadcast_only_at_run_time(string op)
    {
        var t = new OpTest(op, seed: 7);
        t.Input("a", t.Rand(2, 1, 4), declared: ["n", "m", 4])
         .Input("b", Sample(t, Domain.Positive, 3, 1), declared: ["p", "q"]).Check();
        var u = new OpTest(op, seed: 8);
        u.Input("a", u.Rand(3, 1), declared: ["p", "q"])
         .Input("b", Sample(u, Domain.Positive, 2, 3, 4), declared: ["batch", "seq", "width"]).Check();
    }

    [Fact]
    public void Variadic_sum_of_three_broadcast_inputs()
    {
        var t = new OpTest("Sum");
        t.Input("a", t.Rand(2, 3, 4)).Input("b", t.Rand(3, 1)).Input("c", t.Rand(4)).Check();
        var u = new OpTest("Sum", seed: 2);
        u.Input("a", u.Rand(3, 1)).Input("b", u.Rand(2, 1, 4)).Input("c", u.Rand(2, 3, 1)).Check();   // no input has the output's shape
    }

    [Fact]
    public void Variadic_sum_over_symbolic_dims()
    {
        var t = new OpTest("Sum", seed: 3);
        t.Input("a", t.Rand(2, 3, 4), declared: ["batch", "seq", 4])
         .Input("b", t.Rand(3, 1), declared: ["seq", 1])
         .Input("c", t.Rand(2, 1, 4), declared: ["k", 1, "w"]).Check();
    }

    // ---- Pow: the exponent is a constant; only the base gets a gradient ----

    [Fact]
    public void Pow_with_constant_scalar_exponent_two()
    {
        var t = new OpTest("Pow");
        t.Input("x", t.Rand(2, 3, 4)).Constant("p", HostTensor.Of([2.0])).Check();
    }

    [Fact]
    public void Pow_with_constant_scalar_exponent_one_half_on_positive_inputs()
    {
        var t = new OpTest("Pow");
        t.Input("x", Sample(t, Domain.Positive, 2, 3, 4)).Constant("p", HostTensor.Of([0.5])).Check();
    }

    [Fact]
    public void Pow_with_integer_and_float_exponents_on_a_double_base()
    {
        var t = new OpTest("Pow");
        t.Input("x", t.Rand(2, 3)).Constant("p", HostTensor.Of([3L])).Check();
        var u = new OpTest("Pow", seed: 2);
        u.Input("x", Sample(u, Domain.Positive, 2, 3)).Constant("p", HostTensor.Of([-1.5f, 0.5f, 2.5f], 3)).Check();
    }

    [Fact]
    public void Pow_with_constant_tensor_exponent_broadcast_both_ways()
    {
        var t = new OpTest("Pow");
        t.Input("x", Sample(t, Domain.Positive, 2, 3, 4)).Constant("p", HostTensor.Of([-1.5, 0.5, 2, 3], 4)).Check();
        var u = new OpTest("Pow", seed: 2);   // the exponent is the larger operand: the base's gradient sums over its rows
        u.Input("x", Sample(u, Domain.Positive, 4)).Constant("p", HostTensor.Of(u.RandomDoubles(12, -2, 3), 3, 4)).Check();
    }

    [Fact]
    public void Pow_over_symbolic_dims()
    {
        var t = new OpTest("Pow", seed: 3);
        t.Input("x", Sample(t, Domain.Positive, 2, 3, 4), declared: ["batch", "seq", 4]).Constant("p", HostTensor.Of([-0.5, 1.5, 2, 3], 4)).Check();
        var u = new OpTest("Pow", seed: 4);
        u.Input("x", Sample(u, Domain.Positive, 4), declared: ["w"]).Constant("p", HostTensor.Of(u.RandomDoubles(12, -2, 3), 3, 4)).Check();
    }

    [Fact]
    public void Pow_whose_exponent_depends_on_a_differentiated_input_is_refused_naming_the_node()
    {
        var t = new OpTest("Pow");
        var (model, _, wrt) = t.Input("x", Sample(t, Domain.Positive, 2, 3)).Input("p", t.Rand(2, 3)).Build();
        var pow = model.Graph.Node.Single(n => n.OpType == "Pow");
        var error = Assert.Throws<GradientException>(() => Gradients.Build(model, model.Graph.Output[0].Name, wrt));
        Assert.Contains($"'{pow.Name}'", error.Message);
        Assert.Contains("input 1", error.Message);
    }

    // ---- unary elementwise ops ----

    /// <summary>Where a unary op's inputs are drawn: inside its domain and away from kinks and poles.</summary>
    public enum Domain { Unit, Wide, Positive, AwayFromZero }

    [Theory]
    [InlineData("Identity", Domain.Unit)]
    [InlineData("Neg", Domain.Unit)]
    [InlineData("Sqrt", Domain.Positive)]
    [InlineData("Reciprocal", Domain.AwayFromZero)]
    [InlineData("Exp", Domain.Wide)]
    [InlineData("Log", Domain.Positive)]
    [InlineData("Cos", Domain.Wide)]
    [InlineData("Sin", Domain.Wide)]
    public void Unary_op_matches_central_differences_on_static_and_symbolic_shapes(string op, Domain domain) => CheckUnary(op, domain);

    /// <summary>Checks a unary op on a static [2,3,4] input and on one declared [batch, seq, 4].</summary>
    internal static void CheckUnary(string op, Domain domain, bool single = false, double eps = 1e-6, double rtol = 1e-6, double atol = 1e-9)
    {
        var t = new OpTest(op);
        t.Input("x", Sample(t, domain, single, 2, 3, 4)).Check(eps, rtol, atol);
        var s = new OpTest(op, seed: 2);
        s.Input("x", Sample(s, domain, single, 2, 3, 4), declared: ["batch", "seq", 4]).Check(eps, rtol, atol);
    }

    internal static HostTensor Sample(OpTest t, Domain domain, params long[] shape) => Sample(t, domain, single: false, shape);

    internal static HostTensor Sample(OpTest t, Domain domain, bool single, params long[] shape)
    {
        int n = (int)shape.Aggregate(1L, (p, d) => p * d);
        var values = domain switch
        {
            Domain.Unit => t.RandomDoubles(n),
            Domain.Wide => t.RandomDoubles(n, -3, 3),
            Domain.Positive => t.RandomDoubles(n, 0.5, 2),
            Domain.AwayFromZero => AwayFrom(t.RandomDoubles(n), 0.1, 0),
            _ => throw new ArgumentOutOfRangeException(nameof(domain)),
        };
        return single ? HostTensor.Of(values.Select(v => (float)v).ToArray(), shape) : HostTensor.Of(values, shape);
    }

    /// <summary>Moves values within <paramref name="margin"/> of any of <paramref name="points"/> out by the margin,
    /// so that central differences never straddle a kink there.</summary>
    internal static double[] AwayFrom(double[] values, double margin, params double[] points) =>
        values.Select(v => points.Aggregate(v, (x, p) => Math.Abs(x - p) < margin ? x + (x >= p ? margin : -margin) : x)).ToArray();

    // ---- Where, Clip, Trilu, Cast ----

    [Fact]
    public void Where_with_constant_condition_and_broadcast_branches()
    {
        var t = new OpTest("Where");
        t.Constant("cond", RandomMask(t, 3, 4)).Input("a", t.Rand(2, 3, 4)).Input("b", t.Rand(4)).Check();
        var u = new OpTest("Where", seed: 2);   // the condition is the largest operand
        u.Constant("cond", RandomMask(u, 2, 3, 4)).Input("a", u.Rand(3, 1)).Input("b", u.Rand()).Check();
    }

    [Fact]
    public void Where_over_symbolic_dims()
    {
        var t = new OpTest("Where", seed: 3);
        t.Constant("cond", RandomMask(t, 3, 4))
         .Input("a", t.Rand(2, 3, 4), declared: ["batch", 3, 4])
         .Input("b", t.Rand(2, 1, 4), declared: ["n", "m", "w"]).Check();
    }

    static HostTensor RandomMask(OpTest t, params long[] shape) =>
        HostTensor.Of(t.RandomDoubles((int)shape.Aggregate(1L, (p, d) => p * d)).Select(v => v > 0).ToArray(), shape);

    /// <summary>Clip passes the gradient inside [min, max] and blocks it outside; inputs stay 0.05 away from the bounds.</summary>
    [Theory]
    [InlineData(-0.5, 0.5)]
    [InlineData(-0.5, null)]
    [InlineData(null, 0.5)]
    [InlineData(null, null)]
    public void Clip_with_optional_bounds(double? min, double? max)
    {
        var t = new OpTest("Clip");
        var x = HostTensor.Of(AwayFrom(t.RandomDoubles(24), 0.05, -0.5, 0.5), 2, 3, 4);
        t.Input("x", x);
        if (min is { } lo) t.Constant("min", HostTensor.Of([lo])); else if (max is not null) t.Skip();
        if (max is { } hi) t.Constant("max", HostTensor.Of([hi]));
        t.Check();
    }

    [Fact]
    public void Clip_over_symbolic_dims()
    {
        var t = new OpTest("Clip", seed: 2);
        var x = HostTensor.Of(AwayFrom(t.RandomDoubles(24), 0.05, -0.3, 0.6), 2, 3, 4);
        t.Input("x", x, declared: ["batch", "seq", 4]).Constant("min", HostTensor.Of([-0.3])).Constant("max", HostTensor.Of([0.6])).Check();
    }

    [Theory]
    [InlineData(null, null)]
    [InlineData(1, null)]
    [InlineData(0, null)]
    [InlineData(1, 1)]
    [InlineData(0, -1)]
    public void Trilu_upper_and_lower_with_and_without_diagonal_offset(int? upper, int? k)   // upper null: the attribute's default (upper)
    {
        foreach (var (seed, declared) in new (int, Dim[]?)[] { (1, null), (2, ["batch", "rows", 4]) })
        {
            var t = new OpTest("Trilu", seed);
            if (upper is { } u) t.Attr(Attr.Int("upper", u));
            t.Input("x", t.Rand(2, 3, 4), declared: declared);
            if (k is { } offset) t.Constant("k", HostTensor.Of([(long)offset]));
            t.Check();
        }
    }

    /// <summary>double -> float -> double: the gradient passes back through both casts to a double gradient.
    /// The forward rounds x to float, so central differences use eps = 1e-2: the chain is linear (no truncation
    /// error), and rounding x +- eps to float (|error| <= 2^-25 for |x| < 2) moves the quotient by at most
    /// 2 * 2^-24 / 2e-2 ~ 6e-6 relative, inside rtol = 1e-5.</summary>
    [Fact]
    public void Cast_chain_double_to_float_to_double() =>
        CheckGraph("cast_chain", (b, x) => b.Cast(b.Cast(x, DataType.Float), DataType.Double), eps: 1e-2, rtol: 1e-5);

    /// <summary>A value used as both operands gets the sum of both operands' gradients (x/x and x-x: they cancel).</summary>
    [Theory]
    [InlineData("Add")]
    [InlineData("Sub")]
    [InlineData("Mul")]
    [InlineData("Div")]
    public void Binary_op_of_a_value_with_itself_accumulates_both_gradients(string op) =>
        CheckGraph("self_" + op, (b, x) => b.Op(op, x, x));

    /// <summary>Checks a hand-built graph loss = sum(body(x) * w) with x (positive) and w declared [batch, 3].</summary>
    static void CheckGraph(string name, Func<GraphBuilder, string, string> body, double eps = 1e-6, double rtol = 1e-6)
    {
        var t = new OpTest(name);   // only for its random numbers
        var b = new GraphBuilder(name);
        b.Input("x", DataType.Double, "batch", 3);
        b.Input("w", DataType.Double, "batch", 3);
        var loss = b.ReduceSum(b.Mul(body(b, "x"), "w"), [], keepDims: false);
        b.Output(loss, DataType.Double, []);
        var feeds = new Dictionary<string, HostTensor> { ["x"] = Sample(t, Domain.Positive, 2, 3), ["w"] = t.Rand(2, 3) };
        GradCheck.Check(b.ToModel(), loss, feeds, ["x"], eps, rtol);
    }

    /// <summary>Single casts (a sign error would cancel in the chain above). float -> double has a double loss,
    /// so the bound above holds. double -> float has a float loss (24 float products summed, rounding ~1e-6),
    /// which central differences over 2 eps = 2e-2 turn into ~5e-5: atol 1e-4, rtol 1e-3.</summary>
    [Fact]
    public void Cast_between_double_and_float_in_either_direction()
    {
        var toDouble = new OpTest("Cast").Attr(Attr.Int("to", (long)DataType.Double));
        toDouble.Input("x", toDouble.RandFloat(2, 3, 4), declared: ["batch", "seq", 4]).Check(eps: 1e-2, rtol: 1e-5);
        var toFloat = new OpTest("Cast", seed: 2).Attr(Attr.Int("to", (long)DataType.Float));
        toFloat.Input("x", toFloat.Rand(2, 3, 4), declared: ["batch", "seq", 4]).Check(eps: 1e-2, rtol: 1e-3, atol: 1e-4);
    }
}
