using AlignThenUnlearn.Onnx;

namespace AlignThenUnlearn.Autodiff;

/// <summary>The one place that undoes numpy-style broadcasting in gradients. When ranks and the
/// relevant dimensions are known (static sizes or matching symbols) the reduction axes are
/// constants; otherwise they are computed at run time from the two shapes.</summary>
public static class Broadcasting
{
    public static string SumTo(GradientContext c, string grad, string input, string output) =>
        SumTo(c, grad, input, c.Shapes[output]?.Shape);

    /// <summary>Reduces <paramref name="grad"/>, whose shape is <paramref name="gradShape"/> (null when unknown), to the shape of <paramref name="input"/>.</summary>
    public static string SumTo(GradientContext c, string grad, string input, Dim[]? gradShape)
    {
        if (c.Shapes[input]?.Shape is { } a && gradShape is { } y && StaticAxes(a, y) is { } plan)
        {
            var (lead, inner) = plan;
            if (lead == 0 && inner.Count == 0) return grad;
            var axes = Enumerable.Range(0, lead).Select(i => (long)i).Concat(inner.Select(i => (long)i)).ToArray();
            var reduced = c.B.ReduceSum(grad, axes, keepDims: true);
            return lead == 0 ? reduced : c.B.Squeeze(reduced, Enumerable.Range(0, lead).Select(i => (long)i).ToArray());
        }
        return Dynamic(c, grad, input);
    }

    /// <summary>Leading axes to drop and inner axes to sum (kept), or null when undecidable statically.</summary>
    static (int Lead, List<int> Inner)? StaticAxes(Dim[] a, Dim[] y)
    {
        if (a.Length > y.Length) return null;
        int lead = y.Length - a.Length;
        var inner = new List<int>();
        for (int k = 0; k < a.Length; k++)
        {
            Dim da = a[k], dy = y[lead + k];
            if (da.IsStatic && da.Size == 1)
            {
                if (!(dy.IsStatic && dy.Size == 1)) inner.Add(lead + k); // summing a size-1 axis is harmless if dy turns out 1
            }
            else if (!(da.IsStatic || da.SameAs(dy))) return null;   // symbolic/unknown input dim that may be 1 at run time
        }
        return (lead, inner);
    }

    /// <summary>axes = nonzero(padded(shape(input)) != shape(grad)); sum them keeping dims, then reshape.</summary>
    static string Dynamic(GradientContext c, string grad, string input)
    {
        var b = c.B;
        var gShape = b.Shape(grad);
        var xShape = b.Shape(input);
        var missing = b.Sub(b.Op("Size", gShape), b.Op("Size", xShape));
        var ones = b.Op("ConstantOfShape", [b.Reshape(missing, 1)], Attr.Tensor("value", Tensors.FromInt64("one", [1], 1)));
        var padded = b.Concat(0, ones, xShape);
        var differs = b.Op("Not", b.Op("Equal", padded, gShape));
        var axes = b.Reshape(b.Op("NonZero", differs), -1);
        var summed = b.ReduceSumDynamic(grad, axes, keepDims: true);
        return b.Reshape(summed, xShape);
    }
}
