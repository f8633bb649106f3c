using AlignThenUnlearn.Onnx;
using AlignThenUnlearn.Runtime;
using Onnx;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Tests.Support;

/// <summary>Builds a one-node graph with loss = sum over outputs of sum(output * random probe) and
/// checks its gradients with <see cref="GradCheck"/>. Inputs can be declared with symbolic dims.</summary>
public sealed class OpTest
{
    readonly string _op;
    readonly List<AttributeProto> _attrs = [];
    readonly List<(string Name, HostTensor Value, Dim[]? Declared, bool Wrt, bool Constant)> _inputs = [];
    int _outputs = 1;
    int[]? _probed;
    readonly Random _random;

    public OpTest(string op, int seed = 1) { _op = op; _random = new Random(seed); }

    public OpTest Attr(AttributeProto a) { _attrs.Add(a); return this; }
    public OpTest Outputs(int count, params int[] probed) { _outputs = count; _probed = probed.Length > 0 ? probed : null; return this; }

    /// <summary>A graph input; <paramref name="declared"/> overrides the declared shape (symbols such as "batch").</summary>
    public OpTest Input(string name, HostTensor value, bool wrt = true, Dim[]? declared = null) { _inputs.Add((name, value, declared, wrt, false)); return this; }

    /// <summary>A constant input (initializer): axes, shapes, indices, exponents.</summary>
    public OpTest Constant(string name, HostTensor value) { _inputs.Add((name, value, null, false, true)); return this; }

    /// <summary>An omitted optional input.</summary>
    public OpTest Skip() { _inputs.Add(("", HostTensor.Of(Array.Empty<double>(), 0), null, false, true)); return this; }

    public double[] RandomDoubles(int n, double lo = -1, double hi = 1) => Enumerable.Range(0, n).Select(_ => lo + (hi - lo) * _random.NextDouble()).ToArray();
    public HostTensor Rand(params long[] shape) => HostTensor.Of(RandomDoubles((int)shape.Aggregate(1L, (p, d) => p * d)), shape);
    public HostTensor RandFloat(params long[] shape) => HostTensor.Of(RandomDoubles((int)shape.Aggregate(1L, (p, d) => p * d)).Select(v => (float)v).ToArray(), shape);

    public (ModelProto Model, Dictionary<string, HostTensor> Feeds, List<string> Wrt) Build()
    {
        var b = new GraphBuilder("op_test");
        var nodeInputs = new List<string>();
        var feeds = new Dictionary<string, HostTensor>();
        foreach (var (name, value, declared, _, constant) in _inputs)
        {
            if (name == "") { nodeInputs.Add(""); continue; }
            if (constant) { nodeInputs.Add(b.Initializer(ToProto(name, value))); continue; }
            b.Input(name, TypeOf(value), declared ?? value.Shape.Select(d => (Dim)d).ToArray());
            nodeInputs.Add(name);
            feeds[name] = value;
        }
        var outputs = b.Node(_op, nodeInputs, _outputs, _attrs);

        // Probe weights make every output element matter differently; their shapes come from one forward run.
        var shapes = GradCheck.Cpu.Run(WithOutputs(b, outputs), feeds);
        var terms = new List<string>();
        foreach (var (o, k) in outputs.Select((o, k) => (o, k)))
        {
            if (_probed is not null && !_probed.Contains(k)) continue;
            var y = shapes[o];
            if (y.Data is not (double[] or float[])) continue;
            var weights = $"probe_{k}";
            var type = y.Data is double[] ? DataType.Double : DataType.Float;
            b.Graph.Input.Add(GraphBuilder.ValueInfo(weights, type, null));
            feeds[weights] = type == DataType.Double ? HostTensor.Of(RandomDoubles((int)y.ElementCount), y.Shape)
                : HostTensor.Of(RandomDoubles((int)y.ElementCount).Select(v => (float)v).ToArray(), y.Shape);
            terms.Add(b.ReduceSum(b.Mul(o, weights), [], keepDims: false));
        }
        var loss = b.Sum([.. terms]);
        b.Graph.Output.Add(GraphBuilder.ValueInfo(loss, TypeOf(shapes[outputs[0]]), []));
        return (b.ToModel(), feeds, _inputs.Where(i => i.Wrt).Select(i => i.Name).ToList());
    }

    static ModelProto WithOutputs(GraphBuilder b, string[] outputs)
    {
        var model = b.ToModel().Clone();
        foreach (var o in outputs) model.Graph.Output.Add(new ValueInfoProto { Name = o });
        return model;
    }

    public void Check(double eps = 1e-6, double rtol = 1e-6, double atol = 1e-9, bool freshSessions = false)
    {
        var (model, feeds, wrt) = Build();
        GradCheck.Check(model, model.Graph.Output[0].Name, feeds, wrt, eps, rtol, atol, freshSessions);
    }

    public static DataType TypeOf(HostTensor t) => t.Data switch
    {
        double[] => DataType.Double,
        float[] => DataType.Float,
        long[] => DataType.Int64,
        int[] => DataType.Int32,
        bool[] => DataType.Bool,
        _ => throw new ArgumentException("unsupported element type"),
    };

    static TensorProto ToProto(string name, HostTensor t) => t.Data switch
    {
        double[] d => Tensors.FromDouble(name, d, t.Shape),
        float[] f => Tensors.FromFloat(name, f, t.Shape),
        long[] l => Tensors.FromInt64(name, l, t.Shape),
        int[] i => Tensors.FromInt32(name, i, t.Shape),
        bool[] bo => Tensors.FromBool(name, bo, t.Shape),
        _ => throw new ArgumentException("unsupported element type"),
    };
}
