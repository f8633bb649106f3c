using AlignThenUnlearn.Onnx;
using Onnx;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Autodiff;

/// <summary>Computes input gradients from output gradients <paramref name="gy"/> (null where an output
/// has none). Returns one entry per node input; null means no gradient.</summary>
public delegate string?[] Backward(GradientContext c, NodeProto n, string?[] gy);

/// <summary>A gradient rule: the backward function, and which inputs and outputs are differentiable
/// (null: all). Non-differentiable inputs are indices, shapes, masks and constant parameters.</summary>
public sealed record GradientRule(Backward Backward, int[]? Inputs = null, int[]? Outputs = null)
{
    public IReadOnlyCollection<int> DifferentiableInputs(NodeProto n) => Inputs ?? Enumerable.Range(0, n.Input.Count).ToArray();
    public IEnumerable<int> DifferentiableOutputs(NodeProto n) => (Outputs ?? Enumerable.Range(0, n.Output.Count)).Where(i => i < n.Output.Count && n.Output[i] != "");
}

/// <summary>The gradient table: one small rule per ONNX op type. Forward values are referenced by
/// name (never recomputed); broadcasting is undone by <see cref="GradientContext.SumTo"/>.</summary>
public static class GradientRules
{
    /// <summary>Ops whose outputs carry no gradient: shapes, index arithmetic, comparisons, masks.</summary>
    public static readonly IReadOnlySet<string> NoGradient = new HashSet<string>
    {
        "Shape", "Size", "Range", "ConstantOfShape", "Constant", "NonZero", "ArgMax", "ArgMin", "OneHot",
        "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "Not", "And", "Or", "Xor", "IsNaN", "IsInf",
        "Floor", "Ceil", "Round", "Sign", "EyeLike", "RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Bernoulli",
    };

    static GradientRule R(Backward f, int[]? inputs = null, int[]? outputs = null) => new(f, inputs, outputs);

    public static readonly IReadOnlyDictionary<string, GradientRule> Table = new Dictionary<string, GradientRule>
    {
        ["Identity"] = R((c, n, g) => [g[0]]),
        ["Neg"] = R((c, n, g) => [c.B.Neg(g[0]!)]),
        ["Add"] = R((c, n, g) => [c.SumTo(g[0]!, n.Input[0], n.Output[0]), c.SumTo(g[0]!, n.Input[1], n.Output[0])]),
        ["Sub"] = R((c, n, g) => [c.SumTo(g[0]!, n.Input[0], n.Output[0]), c.SumTo(c.B.Neg(g[0]!), n.Input[1], n.Output[0])]),
        ["Mul"] = R((c, n, g) => [c.SumTo(c.B.Mul(g[0]!, n.Input[1]), n.Input[0], n.Output[0]), c.SumTo(c.B.Mul(g[0]!, n.Input[0]), n.Input[1], n.Output[0])]),
        ["Div"] = R((c, n, g) => [c.SumTo(c.B.Div(g[0]!, n.Input[1]), n.Input[0], n.Output[0]),
                                   c.SumTo(c.B.Neg(c.B.Div(c.B.Mul(g[0]!, n.Output[0]), n.Input[1])), n.Input[1], n.Output[0])]),
        ["Sum"] = R((c, n, g) => n.Input.Select(x => c.SumTo(g[0]!, x, n.Output[0])).ToArray()),
        ["Pow"] = R(Pow, inputs: [0]),
        ["Sqrt"] = R((c, n, g) => [c.B.Div(g[0]!, c.B.Mul(c.Scalar(2, n.Output[0]), n.Output[0]))]),
        ["Reciprocal"] = R((c, n, g) => [c.B.Neg(c.B.Mul(g[0]!, c.B.Mul(n.Output[0], n.Output[0])))]),
        ["Exp"] = R((c, n, g) => [c.B.Mul(g[0]!, n.Output[0])]),
        ["Log"] = R((c, n, g) => [c.B.Div(g[0]!, n.Input[0])]),
        ["Tanh"] = R((c, n, g) => [c.B.Mul(g[0]!, c.B.Sub(c.Scalar(1, n.Output[0]), c.B.Mul(n.Output[0], n.Output[0])))]),
        ["Sigmoid"] = R((c, n, g) => [c.B.Mul(c.B.Mul(g[0]!, n.Output[0]), c.B.Sub(c.Scalar(1, n.Output[0]), n.Output[0]))]),
        ["Relu"] = R((c, n, g) => [c.B.Where(c.B.Op("Greater", n.Input[0], c.Scalar(0, n.Input[0])), g[0]!, c.Scalar(0, n.Input[0]))]),
        ["Erf"] = R((c, n, g) => [c.B.Mul(g[0]!, c.B.Mul(c.Scalar(2 / Math.Sqrt(Math.PI), n.Input[0]), c.B.Exp(c.B.Neg(c.B.Mul(n.Input[0], n.Input[0])))))]),
        ["Cos"] = R((c, n, g) => [c.B.Neg(c.B.Mul(g[0]!, c.B.Op("Sin", n.Input[0])))]),
        ["Sin"] = R((c, n, g) => [c.B.Mul(g[0]!, c.B.Op("Cos", n.Input[0]))]),
        ["Softmax"] = R((c, n, g) =>
        {
            var axis = n.GetInt("axis", -1);
            var dot = c.B.ReduceSum(c.B.Mul(g[0]!, n.Output[0]), [axis]);
            return [c.B.Mul(n.Output[0], c.B.Sub(g[0]!, dot))];
        }),
        ["LogSoftmax"] = R((c, n, g) =>
        {
            var axis = n.GetInt("axis", -1);
            var total = c.B.ReduceSum(g[0]!, [axis]);
            return [c.B.Sub(g[0]!, c.B.Mul(c.B.Exp(n.Output[0]), total))];
        }),
        ["ReduceSum"] = R((c, n, g) => [ExpandReduced(c, n, g[0]!)], inputs: [0]),
        ["ReduceMean"] = R((c, n, g) =>
        {
            // The count is a constant where the reduced dims are known. Else it is the same reduction summing ones, so it
            // stays on the device: computed from Size it would be host arithmetic whose float result a CUDA session
            // copies to the device at every step.
            if (StaticReducedCount(c, n) is { } k) return [c.B.Div(ExpandReduced(c, n, g[0]!), c.Scalar(k, n.Input[0]))];
            if (n.Find("axes") is null)
            {
                var ones = c.B.Expand(c.Scalar(1, n.Input[0]), c.B.Shape(n.Input[0]));
                var counts = c.B.Node("ReduceSum", [ones, .. n.Input.Skip(1)], 1, n.Attribute.Select(a => a.Clone()))[0];   // shaped as the output
                return [ExpandReduced(c, n, c.B.Div(g[0]!, counts))];
            }
            var count = c.B.Cast(c.B.Div(c.B.Op("Size", n.Input[0]), c.B.Op("Size", n.Output[0])), c.TypeOf(n.Input[0]));
            return [c.B.Div(ExpandReduced(c, n, g[0]!), count)];
        }, inputs: [0]),
        ["Transpose"] = R((c, n, g) =>
        {
            var perm = n.GetInts("perm") ?? Enumerable.Range(0, c.RankOf(n.Input[0], n)).Reverse().Select(i => (long)i).ToArray();
            var inverse = new long[perm.Length];
            for (int i = 0; i < perm.Length; i++) inverse[perm[i]] = i;
            return [c.B.Transpose(g[0]!, inverse)];
        }),
        ["Reshape"] = R((c, n, g) => [c.B.Reshape(g[0]!, c.B.Shape(n.Input[0]))], inputs: [0]),
        ["Flatten"] = R((c, n, g) => [c.B.Reshape(g[0]!, c.B.Shape(n.Input[0]))]),
        ["Squeeze"] = R((c, n, g) => [c.B.Reshape(g[0]!, c.B.Shape(n.Input[0]))], inputs: [0]),
        ["Unsqueeze"] = R((c, n, g) => [c.B.Op("Squeeze", g[0]!, n.Input[1])], inputs: [0]),
        ["Expand"] = R((c, n, g) => [c.SumTo(g[0]!, n.Input[0], n.Output[0])], inputs: [0]),
        ["Concat"] = R(Concat),
        ["Split"] = R(Split, inputs: [0]),
        ["Slice"] = R(Slice, inputs: [0]),
        ["Gather"] = R(Gather, inputs: [0]),
        ["GatherElements"] = R((c, n, g) =>
            [c.B.Op("ScatterElements", [c.ZerosLike(n.Input[0]), n.Input[1], g[0]!], Attr.Int("axis", n.GetInt("axis", 0)), Attr.String("reduction", "add"))], inputs: [0]),
        ["Where"] = R((c, n, g) =>
        {
            var zero = c.Scalar(0, n.Output[0]);
            return [null, c.SumTo(c.B.Where(n.Input[0], g[0]!, zero), n.Input[1], n.Output[0]), c.SumTo(c.B.Where(n.Input[0], zero, g[0]!), n.Input[2], n.Output[0])];
        }, inputs: [1, 2]),
        ["Cast"] = R((c, n, g) => [Tensors.IsFloating(c.TypeOf(n.Input[0])) ? c.B.Cast(g[0]!, c.TypeOf(n.Input[0])) : null]),
        ["Trilu"] = R((c, n, g) => [c.B.Op("Trilu", n.Input.Count > 1 ? [g[0]!, n.Input[1]] : [g[0]!], Attr.Int("upper", n.GetInt("upper", 1)))], inputs: [0]),
        ["Clip"] = R(Clip, inputs: [0]),
        ["Dropout"] = R(Dropout, inputs: [0], outputs: [0]),
        ["LayerNormalization"] = R(LayerNormalization, inputs: [0, 1, 2], outputs: [0]),
        ["MatMul"] = R(MatMul),
        ["Gemm"] = R(Gemm),
    };

    static string?[] Pow(GradientContext c, NodeProto n, string?[] g)
    {
        // d/da a^p = p * a^(p-1); the exponent is a constant (its gradient is refused by the walk).
        var p = c.B.Cast(n.Input[1], c.TypeOf(n.Input[0]));
        var dy = c.B.Mul(p, c.B.Op("Pow", n.Input[0], c.B.Sub(p, c.Scalar(1, n.Input[0]))));
        return [c.SumTo(c.B.Mul(g[0]!, dy), n.Input[0], n.Output[0]), null];
    }

    /// <summary>Broadcasts the gradient of a reduction back over the reduced axes.</summary>
    static string ExpandReduced(GradientContext c, NodeProto n, string g)
    {
        bool keep = n.GetInt("keepdims", 1) == 1;
        var axes = n.Input.Count > 1 && n.Input[1] != "" ? n.Input[1] : null;
        bool noop = n.GetInt("noop_with_empty_axes", 0) == 1;
        if (axes is null && noop) return g;
        if (axes is not null && !keep)
        {
            if (c.Shapes.IntConstant(axes) is { Length: 0 } && noop) return g;
            if (c.Shapes.IntConstant(axes) is not { Length: 0 }) g = c.B.Op("Unsqueeze", g, axes);
        }
        return c.B.Expand(g, c.B.Shape(n.Input[0]));
    }

    static string?[] Concat(GradientContext c, NodeProto n, string?[] g)
    {
        var axis = n.GetIntRequired("axis");
        var sizes = n.Input.Select(x => c.Shapes[x]?.Shape is { } s ? s[axis < 0 ? (int)axis + s.Length : (int)axis] : Dim.Unknown).ToArray();
        string split = sizes.All(d => d.IsStatic)
            ? c.B.Ints(sizes.Select(d => d.Size).ToArray())
            : c.B.Concat(0, n.Input.Select(x => c.B.Gather(c.B.Shape(x), c.B.Ints(axis))).ToArray());
        return c.B.Node("Split", [g[0]!, split], n.Input.Count, [Attr.Int("axis", axis)]);
    }

    static string?[] Split(GradientContext c, NodeProto n, string?[] g)
    {
        var parts = n.Output.Select((o, i) => g[i] ?? c.ZerosLike(o)).ToArray();
        return [c.B.Concat(n.GetInt("axis", 0), parts)];
    }

    static string?[] Slice(GradientContext c, NodeProto n, string?[] g)
    {
        // Zero-pad the gradient back to the input's extent: pads = clamp(start), dim - clamp(end) on each sliced axis.
        var x = n.Input[0];
        var rank = c.RankOf(x, n);
        var b = c.B;
        if (n.Input.Count > 4 && n.Input[4] != "" && (c.Shapes.IntConstant(n.Input[4]) is not { } steps || steps.Any(v => v != 1)))
            throw new GradientException($"node '{n.Name}' (Slice): gradients need constant steps of 1");
        var starts = b.Cast(n.Input[1], DataType.Int64);
        var ends = b.Cast(n.Input[2], DataType.Int64);
        var axes = n.Input.Count > 3 && n.Input[3] != "" ? b.Cast(n.Input[3], DataType.Int64) : b.Op("Range", b.IntScalar(0), b.Op("Size", starts), b.IntScalar(1));
        axes = b.Op("Mod", b.Add(axes, b.Ints(rank)), b.Ints(rank));          // non-negative axes
        var dims = b.Gather(b.Shape(x), axes);
        string Clamp(string v) => b.Op("Min", b.Op("Max", b.Where(b.Op("Less", v, b.Ints(0)), b.Add(v, dims), v), b.Ints(0)), dims);
        var begin = Clamp(starts);
        var finish = b.Op("Max", Clamp(ends), begin);
        var zeros = b.Op("ConstantOfShape", [b.Ints(rank)], Attr.Tensor("value", Tensors.FromInt64("z", [0], 1)));
        var padBegin = b.Op("ScatterElements", zeros, axes, begin);
        var padEnd = b.Op("ScatterElements", zeros, axes, b.Sub(dims, finish));
        var pads = b.Concat(0, padBegin, padEnd);
        return [b.Op("Pad", g[0]!, pads)];
    }

    static string?[] Gather(GradientContext c, NodeProto n, string?[] g)
    {
        // Scatter-add rows back into zeros: repeated indices (tokens seen twice) accumulate. RowScatterAdd marks the
        // scatter so that a device needing deterministic sums can rewrite it into a one-hot product.
        var b = c.B;
        var data = n.Input[0];
        var rankData = c.RankOf(data, n);
        var axis = (int)n.GetInt("axis", 0);
        if (axis < 0) axis += rankData;
        var dim = b.Gather(b.Shape(data), b.Ints(axis));
        var idx = b.Cast(n.Input[1], DataType.Int64);
        idx = b.Where(b.Op("Less", idx, b.IntScalar(0)), b.Add(idx, b.Reshape(dim, [])), idx);
        var update = g[0]!;
        if (axis == 0)
            return [RowScatterAdd.Emit(b, c.ZerosLike(data), b.Unsqueeze(idx, -1), update), null];

        // Move the gathered axis to the front, scatter, move it back.
        var rankIdx = c.RankOf(n.Input[1], n);
        var toFront = new long[rankData];
        toFront[0] = axis;
        for (int i = 1, k = 0; i < rankData; i++, k++) toFront[i] = k == axis ? ++k : k;
        var updatePerm = Enumerable.Range(axis, rankIdx).Concat(Enumerable.Range(0, axis)).Concat(Enumerable.Range(axis + rankIdx, rankData - axis - 1)).Select(i => (long)i).ToArray();
        var zerosFront = b.Transpose(c.ZerosLike(data), toFront);   // ZerosLike needs a forward value (its type is inferred)
        var scattered = RowScatterAdd.Emit(b, zerosFront, b.Unsqueeze(idx, -1), b.Transpose(update, updatePerm));
        var back = new long[rankData];
        for (int i = 0; i < rankData; i++) back[toFront[i]] = i;
        return [b.Transpose(scattered, back), null];
    }

    static string?[] Clip(GradientContext c, NodeProto n, string?[] g)
    {
        var b = c.B;
        var x = n.Input[0];
        string? inside = null;
        if (n.Input.Count > 1 && n.Input[1] != "") inside = b.Op("GreaterOrEqual", x, n.Input[1]);
        if (n.Input.Count > 2 && n.Input[2] != "")
        {
            var below = b.Op("LessOrEqual", x, n.Input[2]);
            inside = inside is null ? below : b.Op("And", inside, below);
        }
        return [inside is null ? g[0] : b.Where(inside, g[0]!, c.Scalar(0, x))];
    }

    static string?[] Dropout(GradientContext c, NodeProto n, string?[] g)
    {
        var training = n.Input.Count > 2 && n.Input[2] != "";
        if (!training) return [g[0]];
        // Reuse the forward mask: add it as the node's second output when the graph did not ask for it.
        if (n.Output.Count < 2 || n.Output[1] == "")
        {
            var mask = c.B.Fresh(n.Output[0] + "_mask");
            if (n.Output.Count < 2) n.Output.Add(mask); else n.Output[1] = mask;
        }
        var b = c.B;
        var x = n.Input[0];
        var ratio = n.Input.Count > 1 && n.Input[1] != "" ? b.Cast(n.Input[1], c.TypeOf(x)) : c.Scalar(0.5, x);
        var keep = b.Cast(n.Output[1], c.TypeOf(x));
        // With training_mode false at run time the mask is all ones and the scale must be 1.
        var isTraining = b.Cast(n.Input[2], c.TypeOf(x));
        var scale = b.Reciprocal(b.Sub(c.Scalar(1, x), b.Mul(ratio, isTraining)));
        return [b.Mul(b.Mul(g[0]!, keep), scale)];
    }

    static string?[] LayerNormalization(GradientContext c, NodeProto n, string?[] g)
    {
        var b = c.B;
        var x = n.Input[0];
        var type = c.TypeOf(x);
        var rank = c.RankOf(x, n);
        var axis = (int)n.GetInt("axis", -1);
        if (axis < 0) axis += rank;
        // Reuse the forward statistics: ask the node for Mean and InvStdDev when it does not output them.
        while (n.Output.Count < 3) n.Output.Add("");
        for (int i = 1; i < 3; i++) if (n.Output[i] == "") n.Output[i] = b.Fresh(n.Output[0] + (i == 1 ? "_mean" : "_invstd"));
        var mean = b.Cast(n.Output[1], type);
        var invStd = b.Cast(n.Output[2], type);
        var normAxes = Enumerable.Range(axis, rank - axis).Select(i => (long)i).ToArray();
        var xHat = b.Mul(b.Sub(x, mean), invStd);
        var gy = g[0]!;
        // Scale and bias broadcast against the output (possibly also along normalized axes): sum back to their shapes.
        var gScale = c.SumTo(b.Mul(gy, xHat), n.Input[1], n.Output[0]);
        var gBias = n.Input.Count > 2 && n.Input[2] != "" ? c.SumTo(gy, n.Input[2], n.Output[0]) : null;
        var gxHat = b.Mul(gy, n.Input[1]);
        var meanG = b.ReduceMean(gxHat, normAxes);
        var meanGx = b.ReduceMean(b.Mul(gxHat, xHat), normAxes);
        var gx = b.Mul(invStd, b.Sub(b.Sub(gxHat, meanG), b.Mul(xHat, meanGx)));
        return [gx, gScale, gBias];
    }

    /// <summary>How many elements a ReduceMean averages, when its input's reduced dims are static; else null.</summary>
    static long? StaticReducedCount(GradientContext c, NodeProto n)
    {
        if (c.Shapes[n.Input[0]]?.Shape is not { } shape) return null;
        long[]? axes = n.Input.Count > 1 && n.Input[1] != "" ? c.Shapes.IntConstant(n.Input[1]) : n.GetInts("axes") ?? [];
        if (axes is null) return null;
        if (axes.Length == 0) axes = n.GetInt("noop_with_empty_axes", 0) == 1 ? [] : Enumerable.Range(0, shape.Length).Select(i => (long)i).ToArray();
        var dims = axes.Select(a => shape[(int)(a < 0 ? a + shape.Length : a)]).ToList();
        return dims.All(d => d.IsStatic) ? dims.Aggregate(1L, (p, d) => p * d.Size) : null;
    }

    static string?[] MatMul(GradientContext c, NodeProto n, string?[] g)
    {
        var b = c.B;
        string a = n.Input[0], w = n.Input[1], gy = g[0]!;
        int ra = c.RankOf(a, n), rw = c.RankOf(w, n);
        if (ra == 1 || rw == 1)
        {
            // Lift vectors to matrices as MatMul does ([K] -> [1,K] on the left, [K,1] on the right),
            // restore the dropped output axes on the gradient, then sum the lifted axes away again.
            var a2 = ra == 1 ? b.Unsqueeze(a, 0) : a;
            var w2 = rw == 1 ? b.Unsqueeze(w, -1) : w;
            long[] dropped = ra == 1 && rw == 1 ? [-2, -1] : ra == 1 ? [-2] : [-1];
            var g2 = b.Unsqueeze(gy, dropped);
            int ra2 = Math.Max(ra, 2), rw2 = Math.Max(rw, 2);
            var ga2 = b.MatMul(g2, b.Transpose(w2, SwapLast(rw2)));
            var gw2 = b.MatMul(b.Transpose(a2, SwapLast(ra2)), g2);
            var ga = ra == 1 ? b.ReduceSum(ga2, Enumerable.Range(0, Math.Max(ra2, rw2) - 1).Select(i => (long)i).ToArray(), keepDims: false) : ga2;
            var gw = rw == 1 ? b.ReduceSum(gw2, Enumerable.Range(0, Math.Max(ra2, rw2) - 2).Select(i => (long)i).Append(Math.Max(ra2, rw2) - 1).ToArray(), keepDims: false) : gw2;
            return [ga, gw];
        }
        if (ra == 2 && rw == 2)
            return [b.Gemm(gy, w, transB: true), b.Gemm(a, gy, transA: true)];
        if (rw == 2)
        {
            // Linear layer over a batch: dW = flatten(a)^T @ flatten(g) without a materialised transpose.
            var gA = b.MatMul(gy, b.Transpose(w, 1, 0));
            var flatA = b.Op("Flatten", [a], Attr.Int("axis", ra - 1));
            var flatG = b.Op("Flatten", [gy], Attr.Int("axis", ra - 1));
            return [gA, b.Gemm(flatA, flatG, transA: true)];
        }
        // Batched products (attention): transposes of the last two axes fuse into MatMul in ONNX Runtime.
        var gAfull = b.MatMul(gy, b.Transpose(w, SwapLast(rw)));
        var gWfull = b.MatMul(b.Transpose(a, SwapLast(ra)), gy);
        return [SumBatch(c, gAfull, a, n.Output[0]), SumBatch(c, gWfull, w, n.Output[0])];
    }

    /// <summary>Sums a batched matrix gradient over the batch axes its operand was broadcast along: the gradient
    /// has the output's batch axes and the operand's matrix axes.</summary>
    static string SumBatch(GradientContext c, string grad, string operand, string output)
    {
        var gradShape = c.Shapes[output]?.Shape is { } y && c.Shapes[operand]?.Shape is { } x ? [.. y[..^2], x[^2], x[^1]] : (Dim[]?)null;
        return Broadcasting.SumTo(c, grad, operand, gradShape);
    }

    static string?[] Gemm(GradientContext c, NodeProto n, string?[] g)
    {
        var b = c.B;
        bool tA = n.GetInt("transA", 0) == 1, tB = n.GetInt("transB", 0) == 1;
        float alpha = n.GetFloat("alpha", 1f), beta = n.GetFloat("beta", 1f);
        string A = n.Input[0], Bm = n.Input[1], gy = g[0]!;
        AttributeProto[] Attrs(bool ta, bool tb) => [Attr.Int("transA", ta ? 1 : 0), Attr.Int("transB", tb ? 1 : 0), Attr.Float("alpha", alpha)];
        var gA = tA ? b.Op("Gemm", [Bm, gy], Attrs(tB, true)) : b.Op("Gemm", [gy, Bm], Attrs(false, !tB));
        var gB = tB ? b.Op("Gemm", [gy, A], Attrs(true, tA)) : b.Op("Gemm", [A, gy], Attrs(!tA, false));
        string? gC = null;
        if (n.Input.Count > 2 && n.Input[2] != "")
            gC = c.SumTo(beta == 1f ? gy : b.Mul(gy, c.Scalar(beta, n.Output[0])), n.Input[2], n.Output[0]);
        return [gA, gB, gC];
    }

    static long[] SwapLast(int rank)
    {
        var perm = Enumerable.Range(0, rank).Select(i => (long)i).ToArray();
        (perm[^1], perm[^2]) = (perm[^2], perm[^1]);
        return perm;
    }
}
