using Onnx;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Onnx;

/// <summary>The most bytes a graph's intermediate values hold at once when it runs with concrete sizes for its
/// symbolic dimensions: the nodes run in ONNX Runtime's order, each output is allocated when its node runs and freed
/// after its last consumer, which is what ONNX Runtime's allocation planner does for a graph of fixed shapes
/// (onnxruntime/core/framework/allocation_planner.cc). What it does besides, modelled here:
/// <list type="bullet">
/// <item>Shape-only ops (Reshape, Squeeze, Unsqueeze, Flatten, Identity) alias their input (their kernels declare
/// Alias(0, 0)), except where the output is a graph output: a graph output gets a buffer of its own (kAllocateOutput),
/// the caller's where the output is bound.</item>
/// <item>An Identity whose output is a graph output is removed by the graph optimiser when its input is a node's
/// output read by nothing else (EliminateIdentity's graph-output case): that node then writes the graph output itself,
/// so a gradient or an optimizer update bound to the caller's buffer takes no intermediate at all.</item>
/// <item>In place: the output of a kernel that declares MayInplace(0, 0) takes over its first input's buffer when this
/// node is that buffer's last reader and the sizes agree (FindReusableInput). In the CPU provider these are the
/// activations (Relu, Sigmoid, Tanh, ...), Clip and Cast; Add, Mul, Sub, Div, Exp, Where ... always allocate.</item>
/// </list>
/// Graph inputs (parameters, the batch) and the outputs bound to buffers of their own are not intermediates and are
/// left out.</summary>
public static class GraphMemory
{
    /// <summary>The peak, the node at which it happens, and how many values had a size that could not be inferred
    /// (counted with the size of their largest input, an element-wise guess). <see cref="ArenaBytes"/>: what ONNX
    /// Runtime's arena holds after the same allocations and frees (<see cref="ArenaModel"/>: best fit with unsplit
    /// chunks up to twice a request, fragmentation), the memory a session's intermediates really take.</summary>
    public sealed record Estimate(long PeakBytes, string PeakNode, int UnknownValues, long UnknownBytes, long ArenaBytes = 0);

    static readonly HashSet<string> Aliasing = ["Reshape", "Squeeze", "Unsqueeze", "Flatten", "Identity"];
    /// <summary>Ops whose CPU kernels declare MayInplace(0, 0) (onnxruntime/core/providers/cpu/activation/activations.cc,
    /// math/clip.cc, tensor/cast_op.cc).</summary>
    static readonly HashSet<string> InPlace =
    [
        "Relu", "Sigmoid", "Tanh", "Elu", "LeakyRelu", "Selu", "Celu", "Softplus", "Softsign", "HardSigmoid", "ThresholdedRelu",
        "Clip", "Cast",
    ];

    /// <param name="dims">A size for each symbolic dimension of the graph's inputs (e.g. batch 16, seq 256).</param>
    /// <param name="boundOutputs">Graph outputs written into buffers the caller owns (gradients): not counted.</param>
    /// <param name="inGivenOrder">The nodes run in the order the model lists them (a graph ONNX Runtime saved after
    /// optimising it lists them in its execution order); otherwise in the order ONNX Runtime derives for a graph as
    /// built (<see cref="ExecutionOrder"/>).</param>
    public static Estimate PeakOfIntermediates(ModelProto model, IReadOnlyDictionary<string, long> dims, IEnumerable<string>? boundOutputs = null, bool inGivenOrder = false)
    {
        var graph = Concrete(model.Graph, dims);
        EliminateOutputIdentities(graph);
        var shapes = ShapeInference.Run(graph);
        var bound = (boundOutputs ?? []).ToHashSet();
        var inputs = graph.Input.Select(i => i.Name).Concat(graph.Initializer.Select(i => i.Name)).ToHashSet();
        var outputs = graph.Output.Select(o => o.Name).ToHashSet();
        FuseTransposesIntoMatMul(graph, outputs);   // after shape inference: the MatMuls keep their outputs' shapes
        var nodes = inGivenOrder ? graph.Node.ToList() : ExecutionOrder(graph);

        // The bytes of every node output; an unknown size takes its largest input's (element-wise ops dominate).
        var bytes = new Dictionary<string, long>();
        int unknown = 0;
        long unknownBytes = 0;
        long SizeOf(string name) => bytes.TryGetValue(name, out var b) ? b : Bytes(shapes[name]) ?? 0;
        foreach (var n in nodes)
            foreach (var o in n.Output.Where(o => o != ""))
            {
                if (Bytes(shapes[o]) is { } known) { bytes[o] = known; continue; }
                var guess = n.Input.Where(i => i != "").Select(SizeOf).DefaultIfEmpty(0).Max();
                bytes[o] = guess;
                unknown++;
                unknownBytes += guess;
            }

        // Each buffer (aliases share their source's) dies after the last node that reads any value in it.
        var buffer = new Dictionary<string, string>();
        string BufferOf(string value) => buffer.TryGetValue(value, out var b) ? b : value;
        var lastUse = new Dictionary<string, int>();
        var bufferBytes = new Dictionary<string, long>();
        long live = 0, peak = 0;
        string peakNode = "";
        var pinned = new HashSet<string>();   // buffers that are (or alias) inputs or graph outputs: never freed here
        for (int k = 0; k < nodes.Count; k++)
            foreach (var i in nodes[k].Input.Where(i => i != "")) lastUse[i] = k;

        // Buffer lifetimes need the aliases resolved first, so a first pass assigns buffers and lifetimes.
        var bufferEnd = new Dictionary<string, int>();
        for (int k = 0; k < nodes.Count; k++)
        {
            var n = nodes[k];
            for (int j = 0; j < n.Output.Count; j++)
            {
                var o = n.Output[j];
                if (o == "") continue;
                buffer[o] = j == 0 && Aliasing.Contains(n.OpType) && n.Input.Count > 0 && !outputs.Contains(o) ? BufferOf(n.Input[0]) : o;
            }
        }
        foreach (var (value, buf) in buffer)
        {
            int end = lastUse.TryGetValue(value, out var e) ? e : -1;
            bufferEnd[buf] = Math.Max(bufferEnd.GetValueOrDefault(buf, -1), end);
        }
        foreach (var value in outputs.Concat(inputs)) pinned.Add(BufferOf(value));
        foreach (var (value, buf) in buffer) if (inputs.Contains(buf)) pinned.Add(buf);

        var dying = new Dictionary<int, List<string>>();
        var arena = new ArenaModel();
        var address = new Dictionary<string, long>();
        for (int k = 0; k < nodes.Count; k++)
        {
            var n = nodes[k];
            // Only the first input, and only where this node is the last to read its buffer.
            var reusable = InPlace.Contains(n.OpType) && n.Input.Count > 0 && n.Input[0] is { Length: > 0 } first
                && !pinned.Contains(BufferOf(first)) && bufferEnd.GetValueOrDefault(BufferOf(first)) == k && bufferBytes.ContainsKey(BufferOf(first))
                ? new List<string> { BufferOf(first) }
                : [];
            foreach (var o in n.Output.Where(o => o != "" && n.OpType != "Constant"))   // constants are initializers in ONNX Runtime
            {
                var buf = BufferOf(o);
                if (buf != o) continue;   // an alias allocates nothing
                if (bound.Contains(o)) continue;   // written into the caller's buffer
                var size = bytes[o];
                var reuse = reusable.FirstOrDefault(r => bufferBytes[r] == size);
                if (reuse is not null)
                {
                    // The output takes over the input's buffer: the bytes stay, the lifetime becomes the output's.
                    reusable.Remove(reuse);
                    bufferBytes.Remove(reuse);
                    if (address.Remove(reuse, out var reused)) address[o] = reused;
                    bufferEnd[reuse] = -1;
                    bufferBytes[o] = size;
                    if (pinned.Contains(o)) continue;
                    Schedule(dying, o, bufferEnd.GetValueOrDefault(o, -1), k);
                    continue;
                }
                bufferBytes[o] = size;
                live += size;
                if (size > 0) address[o] = arena.Allocate(size);
                if (!pinned.Contains(o)) Schedule(dying, o, bufferEnd.GetValueOrDefault(o, -1), k);
            }
            if (live > peak) (peak, peakNode) = (live, n.Name == "" ? n.OpType : n.Name);
            if (dying.TryGetValue(k, out var free))
                foreach (var buf in free)
                    if (bufferBytes.Remove(buf, out var size))
                    {
                        live -= size;
                        if (address.Remove(buf, out var at)) arena.Free(at);
                    }
        }
        return new Estimate(peak, peakNode, unknown, unknownBytes, arena.TouchedBytes);
    }

    /// <summary>ONNX Runtime's EliminateIdentity for an Identity that writes a graph output (onnxruntime/core/optimizer/
    /// identity_elimination.cc): when its input is the output of a node (not a graph input, not a constant, which ONNX
    /// Runtime makes an initializer), is not itself a graph output and is read by the Identity alone, the producer is
    /// made to write the graph output and the Identity goes.</summary>
    static void EliminateOutputIdentities(GraphProto graph)
    {
        var outputs = graph.Output.Select(o => o.Name).ToHashSet();
        var readers = new Dictionary<string, int>();
        foreach (var n in graph.Node)
            foreach (var i in n.Input.Where(i => i != "")) readers[i] = readers.GetValueOrDefault(i) + 1;
        var producer = new Dictionary<string, NodeProto>();
        foreach (var n in graph.Node)
            foreach (var o in n.Output.Where(o => o != "")) producer[o] = n;
        var removed = new HashSet<NodeProto>(ReferenceEqualityComparer.Instance);
        foreach (var n in graph.Node)
        {
            if (n.OpType != "Identity" || n.Domain is not ("" or "ai.onnx") || n.Input.Count != 1 || n.Output.Count != 1 || !outputs.Contains(n.Output[0])) continue;
            var input = n.Input[0];
            if (!producer.TryGetValue(input, out var source) || source.OpType == "Constant" || outputs.Contains(input) || readers.GetValueOrDefault(input) != 1) continue;
            int at = source.Output.IndexOf(input);
            source.Output[at] = n.Output[0];
            producer[n.Output[0]] = source;
            removed.Add(n);
        }
        if (removed.Count == 0) return;
        var kept = graph.Node.Where(n => !removed.Contains(n)).ToList();
        graph.Node.Clear();
        graph.Node.AddRange(kept);
    }

    /// <summary>ONNX Runtime's MatmulTransposeFusion (onnxruntime/core/optimizer/matmul_transpose_fusion.cc): a MatMul that
    /// reads a Transpose of the last two axes (not a graph output) becomes a FusedMatMul that reads the Transpose's input
    /// with transA/transB, and the Transpose goes once no reader is left. Its output is never materialised, while its input
    /// lives until the fused product.</summary>
    static void FuseTransposesIntoMatMul(GraphProto graph, HashSet<string> outputs)
    {
        var transposeOf = new Dictionary<string, NodeProto>();
        foreach (var n in graph.Node)
        {
            if (n.OpType != "Transpose" || n.Domain is not ("" or "ai.onnx") || n.Output.Count != 1 || outputs.Contains(n.Output[0])) continue;
            var perm = n.Find("perm")?.Ints;
            if (perm is null || perm.Count < 2) continue;
            int rank = perm.Count;
            bool lastTwo = perm[rank - 2] == rank - 1 && perm[rank - 1] == rank - 2 && Enumerable.Range(0, rank - 2).All(i => perm[i] == i);
            if (lastTwo) transposeOf[n.Output[0]] = n;
        }
        if (transposeOf.Count == 0) return;
        foreach (var n in graph.Node)
        {
            if (n.OpType != "MatMul" || n.Domain is not ("" or "ai.onnx") || n.Input.Count != 2) continue;
            for (int i = 0; i < 2; i++)
                if (transposeOf.TryGetValue(n.Input[i], out var t)) n.Input[i] = t.Input[0];
        }
        var read = graph.Node.SelectMany(n => n.Input).ToHashSet();
        var kept = graph.Node.Where(n => !(transposeOf.ContainsKey(n.Output.FirstOrDefault() ?? "") && !read.Contains(n.Output[0]))).ToList();
        if (kept.Count == graph.Node.Count) return;
        graph.Node.Clear();
        graph.Node.AddRange(kept);
    }

    /// <summary>The order ONNX Runtime runs a graph's nodes in (its GraphViewer's default order): a depth-first walk
    /// from the nodes whose outputs nobody reads, the highest-numbered first, into each node's producers, lowest-numbered
    /// first, each node emitted after its producers (Graph::ReverseDFSFrom with NodeCompare). Constant nodes become
    /// initializers when ONNX Runtime loads a graph, so they come first here.</summary>
    static List<NodeProto> ExecutionOrder(GraphProto graph)
    {
        var nodes = graph.Node;
        var producer = new Dictionary<string, int>();
        for (int k = 0; k < nodes.Count; k++)
            foreach (var o in nodes[k].Output.Where(o => o != "")) producer[o] = k;
        var consumed = new bool[nodes.Count];
        var inputsOf = new int[nodes.Count][];
        for (int k = 0; k < nodes.Count; k++)
        {
            inputsOf[k] = nodes[k].Input.Where(i => i != "" && producer.ContainsKey(i)).Select(i => producer[i]).Distinct().ToArray();
            foreach (var p in inputsOf[k]) consumed[p] = true;
        }
        var order = new List<NodeProto>(nodes.Count);
        var visited = new bool[nodes.Count];
        var stack = new Stack<(int Node, bool Leave)>();
        for (int k = 0; k < nodes.Count; k++) if (!consumed[k]) stack.Push((k, false));
        while (stack.Count > 0)
        {
            var (k, leave) = stack.Pop();
            if (leave) { order.Add(nodes[k]); continue; }
            if (visited[k]) continue;
            visited[k] = true;
            stack.Push((k, true));
            foreach (var p in inputsOf[k].OrderByDescending(p => p)) if (!visited[p]) stack.Push((p, false));
        }
        return [.. order.Where(n => n.OpType == "Constant"), .. order.Where(n => n.OpType != "Constant")];
    }

    static void Schedule(Dictionary<int, List<string>> dying, string buffer, int lastUse, int produced)
    {
        int at = Math.Max(lastUse, produced);   // an output nobody reads is freed right after its node
        (dying.TryGetValue(at, out var list) ? list : dying[at] = []).Add(buffer);
    }

    /// <summary>Bytes of a value whose shape is fully known, else null.</summary>
    public static long? Bytes(TensorInfo? info) =>
        info is { IsFullyStatic: true } ? info.Shape!.Aggregate((long)Tensors.ElementSize(info.ElementType), (p, d) => p * d.Size) : null;

    /// <summary>A copy of the graph's structure whose declared symbolic dimensions have the given sizes, with its shape
    /// arithmetic evaluated: with every size known, the Shape, Gather, Concat, Range ... nodes that compute shapes and
    /// indices are constants, and replacing them by Constant nodes lets shape inference size what they shape.</summary>
    static GraphProto Concrete(GraphProto graph, IReadOnlyDictionary<string, long> dims)
    {
        var copy = graph.Clone();
        foreach (var v in copy.Input.Concat(copy.ValueInfo).Concat(copy.Output))
            if (v.Type?.TensorType?.Shape is { } shape)
                foreach (var d in shape.Dim)
                    if (d.ValueCase == TensorShapeProto.Types.Dimension.ValueOneofCase.DimParam && dims.TryGetValue(d.DimParam, out var size))
                        d.DimValue = size;
        var folded = new ShapeFolding(copy);
        for (int pass = 0; pass < 16 && folded.Pass(ShapeInference.Run(copy)); pass++) { }
        return copy;
    }

    /// <summary>Evaluates int64 and bool nodes whose inputs are known (small index tensors only) and replaces them by
    /// Constant nodes.</summary>
    sealed class ShapeFolding(GraphProto graph)
    {
        const long MaxElements = 1 << 16;
        readonly Dictionary<string, (long[] Values, long[] Dims, bool Bool)> _known = [];

        /// <summary>One pass in node order; true when some node was folded (shape inference then knows more).</summary>
        public bool Pass(ShapeInference shapes)
        {
            bool changed = false;
            foreach (var t in graph.Initializer)
                if (!_known.ContainsKey(t.Name) && (DataType)t.DataType == DataType.Int64 && t.DataLocation != TensorProto.Types.DataLocation.External && Tensors.ElementCount(t) <= MaxElements)
                    _known[t.Name] = (Tensors.ToIntegers(t), [.. t.Dims], false);
            for (int k = 0; k < graph.Node.Count; k++)
            {
                var n = graph.Node[k];
                if (n.Domain is not ("" or "ai.onnx") || n.Output.Count != 1) continue;
                if (n.OpType == "Constant")
                {
                    if (!_known.ContainsKey(n.Output[0]) && n.Find("value")?.T is { } t && (DataType)t.DataType is DataType.Int64 or DataType.Bool && Tensors.ElementCount(t) <= MaxElements)
                        _known[n.Output[0]] = ((DataType)t.DataType == DataType.Bool ? Tensors.Bytes(t).Select(b => (long)b).ToArray() : Tensors.ToIntegers(t), [.. t.Dims], (DataType)t.DataType == DataType.Bool);
                    else if (!_known.ContainsKey(n.Output[0]) && shapes.IntConstant(n.Output[0]) is { } c && shapes[n.Output[0]] is { IsFullyStatic: true } ci)
                        _known[n.Output[0]] = (c, [.. ci.Shape!.Select(d => d.Size)], false);
                    continue;
                }
                if (Evaluate(n, shapes) is not { } value || value.Values.Length > MaxElements) continue;
                _known[n.Output[0]] = value;
                var tensor = value.Bool ? Tensors.FromBool("", value.Values.Select(v => v != 0).ToArray(), value.Dims) : Tensors.FromInt64("", value.Values, value.Dims);
                var constant = new NodeProto { OpType = "Constant", Name = n.Name };
                constant.Output.Add(n.Output[0]);
                constant.Attribute.Add(Attr.Tensor("value", tensor));
                graph.Node[k] = constant;
                changed = true;
            }
            return changed;
        }

        (long[] Values, long[] Dims, bool Bool)? Evaluate(NodeProto n, ShapeInference shapes)
        {
            (long[] Values, long[] Dims, bool Bool)? In(int i) => i < n.Input.Count && n.Input[i] != "" && _known.TryGetValue(n.Input[i], out var v) ? v : null;
            bool AllKnown() => n.Input.All(i => i == "" || _known.ContainsKey(i));
            switch (n.OpType)
            {
                case "Shape":
                    if (shapes[n.Input[0]] is not { IsFullyStatic: true } x) return null;
                    var all = x.Shape!.Select(d => d.Size).ToArray();
                    int rank = all.Length, start = (int)n.GetInt("start", 0), end = (int)n.GetInt("end", rank);
                    start = Math.Clamp(start < 0 ? start + rank : start, 0, rank);
                    end = Math.Clamp(end < 0 ? end + rank : end, 0, rank);
                    var sliced = all[start..Math.Max(start, end)];
                    return (sliced, [sliced.Length], false);
                case "Size":
                    return shapes[n.Input[0]] is { IsFullyStatic: true } sx ? ([sx.Shape!.Aggregate(1L, (p, d) => p * d.Size)], [], false) : null;
            }
            if (!AllKnown() || n.Input.Count == 0) return null;
            var a = In(0)!.Value;
            switch (n.OpType)
            {
                case "Identity": return a;
                case "Cast":
                    var to = (DataType)n.GetIntRequired("to");
                    return to is DataType.Int64 or DataType.Int32 ? (a.Values, a.Dims, false) : to == DataType.Bool ? (a.Values.Select(v => v != 0 ? 1L : 0).ToArray(), a.Dims, true) : null;
                case "Reshape" or "Squeeze" or "Unsqueeze" or "Flatten":
                    return shapes[n.Output[0]] is { IsFullyStatic: true } o ? (a.Values, [.. o.Shape!.Select(d => d.Size)], a.Bool) : null;
                case "Gather" when n.GetInt("axis", 0) == 0 && a.Dims.Length == 1:
                    var idx = In(1)!.Value;
                    return (idx.Values.Select(i => a.Values[i < 0 ? i + a.Values.Length : i]).ToArray(), idx.Dims, a.Bool);
                case "Concat" when n.Input.All(i => _known[i].Dims.Length == 1):
                    var parts = n.Input.Select(i => _known[i].Values).ToList();
                    return (parts.SelectMany(v => v).ToArray(), [parts.Sum(v => v.Length)], a.Bool);
                case "Slice" when a.Dims.Length == 1:
                    long len = a.Values.Length, step = n.Input.Count > 4 && n.Input[4] != "" ? In(4)!.Value.Values[0] : 1;
                    if (step != 1) return null;
                    long s = In(1)!.Value.Values[0], e = In(2)!.Value.Values[0];
                    s = Math.Clamp(s < 0 ? s + len : s, 0, len);
                    e = Math.Clamp(e < 0 ? e + len : e, 0, len);
                    var slice = a.Values[(int)s..(int)Math.Max(s, e)];
                    return (slice, [slice.Length], a.Bool);
                case "Range":
                    long first = a.Values[0], limit = In(1)!.Value.Values[0], delta = In(2)!.Value.Values[0];
                    if (delta == 0) return null;
                    long count = Math.Max(0, (limit - first + delta - (delta > 0 ? 1 : -1)) / delta);
                    if (count > MaxElements) return null;
                    return (Enumerable.Range(0, (int)count).Select(i => first + i * delta).ToArray(), [count], false);
                case "ConstantOfShape" when n.Find("value")?.T is { } fill && (DataType)fill.DataType is DataType.Int64 or DataType.Bool:
                    long elements = a.Values.Aggregate(1L, (p, d) => p * d);
                    if (elements > MaxElements) return null;
                    long filler = (DataType)fill.DataType == DataType.Bool ? Tensors.Bytes(fill)[0] : Tensors.ToIntegers(fill)[0];
                    return (Enumerable.Repeat(filler, (int)elements).ToArray(), a.Values, (DataType)fill.DataType == DataType.Bool);
                case "Not": return (a.Values.Select(v => v != 0 ? 0L : 1).ToArray(), a.Dims, true);
                case "NonZero" when a.Dims.Length == 1:
                    var at = a.Values.Select((v, i) => (v, i)).Where(p => p.v != 0).Select(p => (long)p.i).ToArray();
                    return (at, [1, at.Length], false);
                case "Add" or "Sub" or "Mul" or "Div" or "Max" or "Min" or "Equal" or "Less" or "Greater":
                    var b = In(1)!.Value;
                    if (a.Values.Length != b.Values.Length && a.Values.Length != 1 && b.Values.Length != 1) return null;
                    int size = Math.Max(a.Values.Length, b.Values.Length);
                    var dims = a.Values.Length >= b.Values.Length ? a.Dims : b.Dims;
                    long A(int i) => a.Values[a.Values.Length == 1 ? 0 : i];
                    long B(int i) => b.Values[b.Values.Length == 1 ? 0 : i];
                    Func<long, long, long> f = n.OpType switch
                    {
                        "Add" => (x, y) => x + y, "Sub" => (x, y) => x - y, "Mul" => (x, y) => x * y,
                        "Div" => (x, y) => y == 0 ? 0 : x / y, "Max" => Math.Max, "Min" => Math.Min,
                        "Equal" => (x, y) => x == y ? 1 : 0, "Less" => (x, y) => x < y ? 1 : 0, _ => (x, y) => x > y ? 1 : 0,
                    };
                    bool boolean = n.OpType is "Equal" or "Less" or "Greater";
                    if (n.OpType == "Div" && b.Values.Any(v => v == 0)) return null;
                    return (Enumerable.Range(0, size).Select(i => f(A(i), B(i))).ToArray(), dims, boolean);
                default: return null;
            }
        }
    }

    /// <summary>Bytes of a graph's initializers (a session holds them while it lives).</summary>
    public static long InitializerBytes(ModelProto model) =>
        model.Graph.Initializer.Sum(t => Tensors.ElementCount(t) * Tensors.ElementSize((DataType)t.DataType));

    /// <summary>Bytes of the values of a graph's inputs at the given sizes (the batch a step binds), skipping <paramref name="except"/>.</summary>
    public static long InputBytes(ModelProto model, IReadOnlyDictionary<string, long> dims, ISet<string> except)
    {
        var graph = Concrete(model.Graph, dims);
        return graph.Input.Where(i => !except.Contains(i.Name)).Sum(i => Bytes(GraphBuilder.InfoOf(i)) ?? 0);
    }

}
