using Onnx;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Onnx;

/// <summary>Emits nodes, constants and value infos into a <see cref="GraphProto"/>. Values are
/// referred to by name; every helper returns the name of the value it produced. Constants are
/// initializers, deduplicated by content so repeated axes and scalars cost one tensor each.</summary>
public sealed class GraphBuilder
{
    readonly HashSet<string> _names = [];
    // Node names live apart from value names (ONNX keeps them apart too), so naming a node after its output is fine.
    readonly HashSet<string> _nodeNames = [];
    readonly Dictionary<string, string> _constants = [];
    int _counter;

    public GraphProto Graph { get; }
    public int OpsetVersion { get; }

    public GraphBuilder(string name, int opset = Opset.Default) : this(new GraphProto { Name = name }, opset) { }

    /// <summary>Wraps an existing graph: new nodes are appended and fresh names avoid all existing ones.</summary>
    public GraphBuilder(GraphProto graph, int opset = Opset.Default)
    {
        Graph = graph;
        OpsetVersion = opset;
        foreach (var v in graph.Input) _names.Add(v.Name);
        foreach (var v in graph.Initializer) _names.Add(v.Name);
        foreach (var n in graph.Node) { _names.UnionWith(n.Output); if (n.Name != "") _nodeNames.Add(n.Name); }
    }

    /// <summary>A name not used in the graph yet, derived from <paramref name="hint"/>.</summary>
    public string Fresh(string hint) => Unique(_names, hint);

    string Unique(HashSet<string> used, string hint)
    {
        if (used.Add(hint)) return hint;
        while (true)
        {
            var candidate = $"{hint}_{++_counter}";
            if (used.Add(candidate)) return candidate;
        }
    }

    /// <summary>Reserves an exact name, failing if the graph already uses it.</summary>
    public string Claim(string name) => _names.Add(name) ? name : throw new ArgumentException($"the name '{name}' is already used in graph '{Graph.Name}'");

    public static ValueInfoProto ValueInfo(string name, DataType type, IReadOnlyList<Dim>? shape)
    {
        var tensor = new TypeProto.Types.Tensor { ElemType = (int)type };
        if (shape is not null)
        {
            tensor.Shape = new TensorShapeProto();
            foreach (var d in shape)
            {
                var dim = new TensorShapeProto.Types.Dimension();
                if (d.IsStatic) dim.DimValue = d.Size;
                else if (d.IsSymbolic) dim.DimParam = d.Symbol;
                tensor.Shape.Dim.Add(dim);
            }
        }
        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = tensor } };
    }

    public static TensorInfo? InfoOf(ValueInfoProto v)
    {
        if (v.Type?.TensorType is not { } t) return null;
        Dim[]? shape = t.Shape is null ? null : t.Shape.Dim.Select(d =>
            d.ValueCase == TensorShapeProto.Types.Dimension.ValueOneofCase.DimValue ? new Dim(d.DimValue, null)
            : d.ValueCase == TensorShapeProto.Types.Dimension.ValueOneofCase.DimParam && d.DimParam != "" ? new Dim(-1, d.DimParam)
            : Dim.Unknown).ToArray();
        return new TensorInfo((DataType)t.ElemType, shape);
    }

    public string Input(string name, DataType type, params Dim[] shape)
    {
        if (!_names.Add(name)) throw new ArgumentException($"graph input '{name}' clashes with an existing value");
        Graph.Input.Add(ValueInfo(name, type, shape));
        return name;
    }

    public void Output(string value, DataType type, params Dim[]? shape) => Graph.Output.Add(ValueInfo(value, type, shape));

    public string Initializer(TensorProto tensor)
    {
        tensor.Name = Fresh(tensor.Name == "" ? "const" : tensor.Name);
        Graph.Initializer.Add(tensor);
        return tensor.Name;
    }

    /// <summary>Appends a node and returns its output names.</summary>
    public string[] Node(string opType, IEnumerable<string> inputs, int outputCount = 1, IEnumerable<AttributeProto>? attributes = null,
        string domain = "", string? name = null, string? docString = null, IReadOnlyList<string>? outputNames = null)
    {
        var nodeName = Unique(_nodeNames, name ?? opType);
        var node = new NodeProto { OpType = opType, Name = nodeName, Domain = domain };
        node.Input.AddRange(inputs);
        for (int i = 0; i < outputCount; i++)
            node.Output.Add(outputNames is not null ? Claim(outputNames[i]) : Fresh(outputCount == 1 ? nodeName : $"{nodeName}_out{i}"));
        if (attributes is not null) node.Attribute.AddRange(attributes);
        if (docString is not null) node.DocString = docString;
        Graph.Node.Add(node);
        return [.. node.Output];
    }

    public string Op(string opType, params string[] inputs) => Node(opType, inputs)[0];
    public string Op(string opType, string[] inputs, params AttributeProto[] attributes) => Node(opType, inputs, 1, attributes)[0];

    // ---- constants ----
    public string Scalar(double value, DataType type) => Constant($"{type}:{value:R}", () => Tensors.Scalar("c", type, value));
    public string Ints(params long[] values) => Constant("i64:" + string.Join(",", values), () => Tensors.FromInt64("c", values, values.Length));
    public string IntScalar(long value) => Constant($"i64s:{value}", () => Tensors.FromInt64("c", [value]));

    string Constant(string key, Func<TensorProto> make)
    {
        if (_constants.TryGetValue(key, out var name)) return name;
        name = Initializer(make());
        _constants[key] = name;
        return name;
    }

    // ---- typed helpers ----
    public string Add(string a, string b) => Op("Add", a, b);
    public string Sub(string a, string b) => Op("Sub", a, b);
    public string Mul(string a, string b) => Op("Mul", a, b);
    public string Div(string a, string b) => Op("Div", a, b);
    public string Neg(string a) => Op("Neg", a);
    public string Sqrt(string a) => Op("Sqrt", a);
    public string Exp(string a) => Op("Exp", a);
    public string Log(string a) => Op("Log", a);
    public string Reciprocal(string a) => Op("Reciprocal", a);
    public string Sigmoid(string a) => Op("Sigmoid", a);
    public string Tanh(string a) => Op("Tanh", a);
    public string Relu(string a) => Op("Relu", a);
    public string Identity(string a) => Op("Identity", a);
    public string MatMul(string a, string b) => Op("MatMul", a, b);
    public string Shape(string a) => Op("Shape", a);
    public string Sum(params string[] terms) => terms.Length == 1 ? terms[0] : Op("Sum", terms);
    public string Where(string cond, string a, string b) => Op("Where", cond, a, b);
    public string Expand(string a, string shape) => Op("Expand", a, shape);
    public string Reshape(string a, string shape) => Op("Reshape", a, shape);
    public string Reshape(string a, params long[] shape) => Op("Reshape", a, Ints(shape));
    public string Cast(string a, DataType to) => Op("Cast", [a], Attr.Int("to", (long)to));
    public string Transpose(string a, params long[] perm) => Op("Transpose", [a], Attr.Ints("perm", perm));
    public string Softmax(string a, long axis = -1) => Op("Softmax", [a], Attr.Int("axis", axis));
    public string Unsqueeze(string a, params long[] axes) => Op("Unsqueeze", a, Ints(axes));
    public string Squeeze(string a, params long[] axes) => Op("Squeeze", a, Ints(axes));
    public string Concat(long axis, params string[] parts) => Op("Concat", parts, Attr.Int("axis", axis));
    public string Gather(string data, string indices, long axis = 0) => Op("Gather", [data, indices], Attr.Int("axis", axis));

    public string Gemm(string a, string b, bool transA = false, bool transB = false) =>
        Op("Gemm", [a, b], Attr.Int("transA", transA ? 1 : 0), Attr.Int("transB", transB ? 1 : 0));

    public string ReduceSum(string a, long[] axes, bool keepDims = true) => Reduce("ReduceSum", a, axes, keepDims);
    public string ReduceMean(string a, long[] axes, bool keepDims = true) => Reduce("ReduceMean", a, axes, keepDims);

    string Reduce(string op, string a, long[] axes, bool keepDims) =>
        Op(op, [a, Ints(axes)], Attr.Int("keepdims", keepDims ? 1 : 0));

    /// <summary>Sums over a runtime list of axes; an empty list leaves the value as it is.</summary>
    public string ReduceSumDynamic(string a, string axes, bool keepDims) =>
        Op("ReduceSum", [a, axes], Attr.Int("keepdims", keepDims ? 1 : 0), Attr.Int("noop_with_empty_axes", 1));

    public ModelProto ToModel(string producer = "AlignThenUnlearn")
    {
        var model = new ModelProto { IrVersion = Opset.IrVersion, ProducerName = producer, Graph = Graph };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = OpsetVersion });
        if (Graph.Node.Any(n => n.Domain == "com.microsoft"))
            model.OpsetImport.Add(new OperatorSetIdProto { Domain = "com.microsoft", Version = 1 });
        return model;
    }
}
