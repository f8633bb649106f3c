using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Models;

/// <summary>Parameter values in host memory: <c>float[]</c>, <c>double[]</c> or <c>Half[]</c> (by the spec's element type) and a shape.</summary>
public sealed record ParameterArray(Array Data, long[] Shape);

/// <summary>Random decoder parameters for tests and benchmarks: normal(0, std) for matrices and biases, ones for
/// norms (plus normal(0, normStd) when asked, so that norm weights are not all equal). Deterministic: each
/// parameter's values depend only on the seed and its name, so a truncated graph sees the same values as the full one.</summary>
public static class RandomInit
{
    public static Dictionary<string, ParameterArray> Create(IEnumerable<ParameterSpec> specs, int seed = 0, double std = 0.02, double normStd = 0)
    {
        var values = new Dictionary<string, ParameterArray>();
        foreach (var spec in specs)
        {
            var random = new Random(unchecked(seed * 486187739 + StableHash(spec.Name)));
            bool norm = spec.Shape.Length == 1 && spec.Name.EndsWith("norm.weight", StringComparison.Ordinal);
            var data = new double[spec.ElementCount];
            for (long i = 0; i < data.Length; i++)
                data[i] = norm ? 1 + normStd * Normal(random) : std * Normal(random);
            values[spec.Name] = new ParameterArray(Convert(data, spec.ElementType), spec.Shape);
        }
        return values;
    }

    public static Dictionary<string, ParameterArray> Create(DecoderConfig config, DataType elementType = DataType.Float, int seed = 0, double std = 0.02) =>
        Create(DecoderBuilder.Parameters(config, elementType), seed, std);

    static double Normal(Random random)
    {
        // Box-Muller; 1 - u keeps the logarithm finite.
        double u = 1 - random.NextDouble(), v = random.NextDouble();
        return Math.Sqrt(-2 * Math.Log(u)) * Math.Cos(2 * Math.PI * v);
    }

    static Array Convert(double[] data, DataType type) => type switch
    {
        DataType.Double => data,
        DataType.Float => Array.ConvertAll(data, v => (float)v),
        DataType.Float16 => Array.ConvertAll(data, v => (Half)v),
        _ => throw new ArgumentException($"no random parameters of element type {type}"),
    };

    /// <summary>FNV-1a: string.GetHashCode differs between processes.</summary>
    public static int StableHash(string s)
    {
        uint h = 2166136261;
        foreach (var ch in s) h = (h ^ ch) * 16777619;
        return unchecked((int)h);
    }
}
