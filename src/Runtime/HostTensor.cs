namespace AlignThenUnlearn.Runtime;

/// <summary>A tensor in host memory: a flat array (float, double, long, int, bool, Half) and its shape.</summary>
public sealed record HostTensor(Array Data, long[] Shape)
{
    public static HostTensor Of(float[] data, params long[] shape) => new(data, shape);
    public static HostTensor Of(double[] data, params long[] shape) => new(data, shape);
    public static HostTensor Of(long[] data, params long[] shape) => new(data, shape);
    public static HostTensor Of(bool[] data, params long[] shape) => new(data, shape);

    public long ElementCount => Shape.Aggregate(1L, (p, d) => p * d);
    public float[] Floats => (float[])Data;
    public double[] Doubles => (double[])Data;
    public long[] Longs => (long[])Data;

    /// <summary>The values widened to double, whatever the element type.</summary>
    public double[] AsDoubles() => Data switch
    {
        double[] d => d,
        float[] f => Array.ConvertAll(f, v => (double)v),
        long[] l => Array.ConvertAll(l, v => (double)v),
        int[] i => Array.ConvertAll(i, v => (double)v),
        bool[] b => Array.ConvertAll(b, v => v ? 1.0 : 0.0),
        Half[] h => Array.ConvertAll(h, v => (double)v),
        _ => throw new NotSupportedException($"element type {Data.GetType().GetElementType()}"),
    };

    public override string ToString() => $"{Data.GetType().GetElementType()!.Name}[{string.Join(",", Shape)}]";
}
