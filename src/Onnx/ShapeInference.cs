using Onnx;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Onnx;

/// <summary>Element types and symbolic shapes of every value in a graph, propagated through the
/// operators this project emits. Unknown operators give unknown shapes, never an error: the
/// information is used to choose cheaper static code paths, with dynamic fallbacks.</summary>
public sealed class ShapeInference
{
    readonly Dictionary<string, TensorInfo> _info = [];
    readonly Dictionary<string, long[]> _intConstants = [];
    // Values that hold shapes or dims of other values (Shape(x), Gather(Shape(x), k)): a Range, Expand or Reshape that
    // reads them gets the symbolic dims they stand for instead of unknown ones.
    readonly Dictionary<string, Dim[]> _shapeValues = [];
    readonly Dictionary<string, Dim> _dimValues = [];

    public IReadOnlyDictionary<string, TensorInfo> Info => _info;

    public TensorInfo? this[string name] => _info.GetValueOrDefault(name);

    /// <summary>The value of an integer constant (initializer or Constant node), if it is one.</summary>
    public long[]? IntConstant(string name) => _intConstants.GetValueOrDefault(name);

    public static ShapeInference Run(GraphProto graph)
    {
        var s = new ShapeInference();
        foreach (var v in graph.Input.Concat(graph.ValueInfo).Concat(graph.Output))
            if (GraphBuilder.InfoOf(v) is { } i) s._info[v.Name] = i;
        foreach (var t in graph.Initializer) s.AddConstant(t.Name, t);
        foreach (var n in graph.Node) s.Visit(n);
        return s;
    }

    void AddConstant(string name, TensorProto t)
    {
        var type = (DataType)t.DataType;
        _info[name] = new TensorInfo(type, t.Dims.Select(d => new Dim(d, null)).ToArray());
        if (type is DataType.Int64 or DataType.Int32 && t.DataLocation != TensorProto.Types.DataLocation.External && Tensors.ElementCount(t) <= 64)
            _intConstants[name] = Tensors.ToIntegers(t);
    }

    TensorInfo? In(NodeProto n, int i) => i < n.Input.Count && n.Input[i] != "" ? _info.GetValueOrDefault(n.Input[i]) : null;

    void Set(NodeProto n, int i, TensorInfo? info)
    {
        if (info is not null && i < n.Output.Count && n.Output[i] != "" && !_info.ContainsKey(n.Output[i])) _info[n.Output[i]] = info;
    }

    void Visit(NodeProto n)
    {
        if (n.Domain == "com.microsoft" && n.OpType == "FusedMatMul")
        {
            // ONNX Runtime's MatMul with transposed operands (what its optimiser makes of Transpose + MatMul).
            TensorInfo? T(TensorInfo? t, string attribute) => n.GetInt(attribute, 0) == 1 && t?.Shape is { Length: >= 2 } d
                ? t with { Shape = [.. d[..^2], d[^1], d[^2]] } : t;
            if (n.GetInt("transBatchA", 0) == 0 && n.GetInt("transBatchB", 0) == 0) Set(n, 0, MatMul(T(In(n, 0), "transA"), T(In(n, 1), "transB")));
            return;
        }
        if (n.OpType is "SimplifiedLayerNormalization" or "SkipSimplifiedLayerNormalization" or "SkipLayerNormalization"
            or "Gelu" or "FastGelu" or "BiasGelu" or "QuickGelu" && n.Domain is "" or "com.microsoft")
        {
            // ONNX Runtime's fused normalisations and activations: the first output has the first input's shape.
            Set(n, 0, In(n, 0));
            return;
        }
        if (n.Domain is not ("" or "ai.onnx")) return;
        var x = In(n, 0);
        switch (n.OpType)
        {
            case "Constant":
                if (n.Find("value") is { T: { } t }) AddConstant(n.Output[0], t);
                else if (n.Find("value_ints") is { } vi) { _intConstants[n.Output[0]] = [.. vi.Ints]; _info[n.Output[0]] = new(DataType.Int64, [vi.Ints.Count]); }
                else if (n.Find("value_int") is { } v1) { _intConstants[n.Output[0]] = [v1.I]; _info[n.Output[0]] = new(DataType.Int64, []); }
                break;
            case "Identity" or "Neg" or "Sqrt" or "Reciprocal" or "Exp" or "Log" or "Tanh" or "Sigmoid" or "Relu" or "Erf" or "Abs"
                or "Softmax" or "LogSoftmax" or "Clip" or "Cos" or "Sin" or "Trilu" or "CumSum" or "Not" or "Floor" or "Ceil" or "Sign":
                Set(n, 0, x);
                if (n.OpType == "Identity" && _intConstants.TryGetValue(n.Input[0], out var c)) _intConstants[n.Output[0]] = c;
                break;
            case "Dropout":
                Set(n, 0, x);
                if (x is not null) Set(n, 1, x with { ElementType = DataType.Bool });
                break;
            case "LayerNormalization":
                Set(n, 0, x);
                if (x?.Shape is { } ls)
                {
                    var axis = Norm(n.GetInt("axis", -1), ls.Length);
                    var stat = ls.Select((d, k) => k < axis ? d : new Dim(1, null)).ToArray();
                    Set(n, 1, new TensorInfo(DataType.Float, stat));
                    Set(n, 2, new TensorInfo(DataType.Float, stat));
                }
                break;
            case "Add" or "Sub" or "Mul" or "Div" or "Pow" or "Max" or "Min" or "Mod":
                Set(n, 0, Broadcast(x?.ElementType, n.Input.Select((_, i) => In(n, i)).ToArray()));
                break;
            case "Sum" or "Mean":
                Set(n, 0, Broadcast(x?.ElementType, n.Input.Select((_, i) => In(n, i)).ToArray()));
                break;
            case "Equal" or "Less" or "Greater" or "LessOrEqual" or "GreaterOrEqual" or "And" or "Or" or "Xor":
                Set(n, 0, Broadcast(DataType.Bool, [x, In(n, 1)]));
                break;
            case "Where":
                Set(n, 0, Broadcast(In(n, 1)?.ElementType, [x, In(n, 1), In(n, 2)]));
                break;
            case "MatMul":
                Set(n, 0, MatMul(x, In(n, 1)));
                break;
            case "Gemm":
                if (x?.Shape is { Length: 2 } a && In(n, 1)?.Shape is { Length: 2 } b)
                    Set(n, 0, new TensorInfo(x.ElementType, [a[n.GetInt("transA", 0) == 1 ? 1 : 0], b[n.GetInt("transB", 0) == 1 ? 0 : 1]]));
                break;
            case "ReduceSum" or "ReduceMean" or "ReduceMax" or "ReduceMin" or "ReduceProd" or "ReduceL2" or "ReduceSumSquare":
                Set(n, 0, Reduce(n, x));
                break;
            case "Transpose":
                if (x?.Shape is { } ts)
                {
                    var perm = n.GetInts("perm") ?? Enumerable.Range(0, ts.Length).Reverse().Select(i => (long)i).ToArray();
                    Set(n, 0, x with { Shape = perm.Select(p => ts[p]).ToArray() });
                }
                break;
            case "Reshape":
                Set(n, 0, Reshape(x, IntConstant(n.Input[1]), n.GetInt("allowzero", 0) == 1));
                break;
            case "Unsqueeze":
                if (x?.Shape is { } us && IntConstant(n.Input[1]) is { } uax)
                {
                    var rank = us.Length + uax.Length;
                    var axes = uax.Select(a => Norm(a, rank)).ToHashSet();
                    var dims = new List<Dim>();
                    int src = 0;
                    for (int k = 0; k < rank; k++) dims.Add(axes.Contains(k) ? new Dim(1, null) : us[src++]);
                    Set(n, 0, x with { Shape = [.. dims] });
                }
                break;
            case "Squeeze":
                if (x?.Shape is { } ss)
                {
                    // Without axes every dim of size 1 goes, so a symbolic dim (which may be 1) leaves the rank unknown.
                    var sax = n.Input.Count > 1 && n.Input[1] != "" ? IntConstant(n.Input[1])
                        : ss.All(d => d.IsStatic) ? ss.Select((d, k) => d.Size == 1 ? (long)k : -99).Where(k => k >= 0).ToArray() : null;
                    if (sax is null) Set(n, 0, x with { Shape = null });
                    else
                    {
                        var drop = sax.Select(a => Norm(a, ss.Length)).ToHashSet();
                        Set(n, 0, x with { Shape = ss.Where((_, k) => !drop.Contains(k)).ToArray() });
                    }
                }
                break;
            case "Flatten":
                if (x?.Shape is { } fs && fs.All(d => d.IsStatic))
                {
                    var axis = Norm(n.GetInt("axis", 1), fs.Length);
                    Set(n, 0, x with { Shape = [fs[..axis].Aggregate(1L, (p, d) => p * d.Size), fs[axis..].Aggregate(1L, (p, d) => p * d.Size)] });
                }
                break;
            case "Concat":
                Set(n, 0, Concat(n));
                break;
            case "Split":
                Split(n, x);
                break;
            case "Slice":
                Set(n, 0, Slice(n, x));
                break;
            case "Gather":
                if (x?.Shape is { } gs && In(n, 1)?.Shape is { } gi)
                {
                    var axis = Norm(n.GetInt("axis", 0), gs.Length);
                    Set(n, 0, x with { Shape = [.. gs[..axis], .. gi, .. gs[(axis + 1)..]] });
                }
                if (_shapeValues.TryGetValue(n.Input[0], out var gathered) && In(n, 1)?.Shape is [] && IntConstant(n.Input[1]) is [var index]
                    && index >= -gathered.Length && index < gathered.Length)
                    _dimValues[n.Output[0]] = gathered[Norm(index, gathered.Length)];
                break;
            case "GatherElements":
                if (x is not null && In(n, 1) is { } ge) Set(n, 0, x with { Shape = ge.Shape });
                break;
            case "ScatterND" or "ScatterElements":
                Set(n, 0, x);
                break;
            case "Expand":
                if (x is not null && IntConstant(n.Input[1]) is { } es)
                    Set(n, 0, Broadcast(x.ElementType, [x, new TensorInfo(x.ElementType, es.Select(v => new Dim(v, null)).ToArray())]));
                else if (x is not null && _shapeValues.TryGetValue(n.Input[1], out var target))
                    Set(n, 0, Broadcast(x.ElementType, [x, new TensorInfo(x.ElementType, target)]));
                else if (x is not null) Set(n, 0, x with { Shape = null });
                break;
            case "Cast":
                if (x is not null) Set(n, 0, x with { ElementType = (DataType)n.GetIntRequired("to") });
                break;
            case "CastLike":
                if (x is not null && In(n, 1) is { } like) Set(n, 0, x with { ElementType = like.ElementType });
                break;
            case "Shape":
                Set(n, 0, new TensorInfo(DataType.Int64, [x?.Shape is { } sh ? new Dim(sh.Length, null) : Dim.Unknown]));
                if (x?.Shape is { } whole && n.Find("start") is null && n.Find("end") is null) _shapeValues[n.Output[0]] = whole;
                break;
            case "Size":
                Set(n, 0, new TensorInfo(DataType.Int64, []));
                break;
            case "Range":
                // Range(0, d, 1) with d a dim of some value (Gather(Shape(x), k)) has that dim's length.
                if (x is not null)
                    Set(n, 0, new TensorInfo(x.ElementType, [IntConstant(n.Input[0]) is [0] && IntConstant(n.Input[2]) is [1]
                        && _dimValues.TryGetValue(n.Input[1], out var length) ? length : Dim.Unknown]));
                break;
            case "ConstantOfShape":
                {
                    var type = n.Find("value")?.T is { } v ? (DataType)v.DataType : DataType.Float;
                    var shape = IntConstant(n.Input[0])?.Select(d => new Dim(d, null)).ToArray();
                    Set(n, 0, new TensorInfo(type, shape ?? (x?.Shape is [{ IsStatic: true } len] ? Enumerable.Repeat(Dim.Unknown, (int)len.Size).ToArray() : null)));
                    break;
                }
        }
    }

    static int Norm(long axis, int rank) => (int)(axis < 0 ? axis + rank : axis);

    static TensorInfo? Broadcast(DataType? type, TensorInfo?[] inputs)
    {
        if (type is null) return null;
        if (inputs.Any(i => i?.Shape is null)) return new TensorInfo(type.Value, null);
        var rank = inputs.Max(i => i!.Shape!.Length);
        var result = new Dim[rank];
        for (int k = 0; k < rank; k++)
        {
            Dim? d = null;
            bool conflict = false;
            foreach (var i in inputs)
            {
                var s = i!.Shape!;
                var off = k - (rank - s.Length);
                if (off < 0) continue;
                var e = s[off];
                if (e.Size == 1) continue;
                if (d is null) d = e;
                else if (!d.Value.SameAs(e)) { if (e.IsStatic) d = e; else if (!d.Value.IsStatic) conflict = true; }
            }
            result[k] = conflict ? Dim.Unknown : d ?? new Dim(1, null);
        }
        return new TensorInfo(type.Value, result);
    }

    static TensorInfo? MatMul(TensorInfo? a, TensorInfo? b)
    {
        if (a is null) return null;
        if (a.Shape is not { Length: >= 2 } sa || b?.Shape is not { Length: >= 2 } sb) return new TensorInfo(a.ElementType, null);
        var batchA = new TensorInfo(a.ElementType, sa[..^2]);
        var batchB = new TensorInfo(a.ElementType, sb[..^2]);
        var batch = Broadcast(a.ElementType, [batchA, batchB])!.Shape!;
        return new TensorInfo(a.ElementType, [.. batch, sa[^2], sb[^1]]);
    }

    TensorInfo? Reduce(NodeProto n, TensorInfo? x)
    {
        if (x is null) return null;
        if (x.Shape is null) return x with { Shape = null };
        long[]? axes = n.Input.Count > 1 && n.Input[1] != "" ? IntConstant(n.Input[1]) : n.GetInts("axes") ?? [];
        if (axes is null) return x with { Shape = null };
        bool keep = n.GetInt("keepdims", 1) == 1;
        if (axes.Length == 0 && n.GetInt("noop_with_empty_axes", 0) == 1) return x;
        var set = axes.Length == 0 ? Enumerable.Range(0, x.Rank).ToHashSet() : axes.Select(a => Norm(a, x.Rank)).ToHashSet();
        var dims = new List<Dim>();
        for (int k = 0; k < x.Rank; k++)
            if (!set.Contains(k)) dims.Add(x.Shape[k]);
            else if (keep) dims.Add(1);
        return x with { Shape = [.. dims] };
    }

    static TensorInfo? Reshape(TensorInfo? x, long[]? target, bool allowZero)
    {
        if (x is null) return null;
        if (target is null) return x with { Shape = null };
        var dims = new Dim[target.Length];
        int inferred = -1;
        for (int k = 0; k < target.Length; k++)
        {
            if (target[k] == 0 && !allowZero) dims[k] = x.Shape is { } s && k < s.Length ? s[k] : Dim.Unknown;
            else if (target[k] == -1) { inferred = k; dims[k] = Dim.Unknown; }
            else dims[k] = target[k];
        }
        if (inferred >= 0 && x.IsFullyStatic && dims.Where((_, k) => k != inferred).All(d => d.IsStatic))
        {
            long total = x.Shape!.Aggregate(1L, (p, d) => p * d.Size);
            long known = dims.Where((_, k) => k != inferred).Aggregate(1L, (p, d) => p * d.Size);
            dims[inferred] = known == 0 ? 0 : total / known;
        }
        else if (inferred >= 0 && x.Shape is { } xs)
        {
            // When each other target dim takes one input dim of its own, the input dims left over make up the -1:
            // a single one as it is (symbol or size), several static ones as their product. Ones are factors of 1.
            var leftover = xs.Where(d => d.Size != 1).ToList();
            foreach (var r in dims.Where((d, k) => k != inferred && d.Size != 1))
            {
                var at = leftover.FindIndex(d => d.SameAs(r));
                if (at < 0) { leftover = null; break; }
                leftover.RemoveAt(at);
            }
            if (leftover is [var only]) dims[inferred] = only;
            else if (leftover is not null && leftover.All(d => d.IsStatic)) dims[inferred] = leftover.Aggregate(1L, (p, d) => p * d.Size);
            else if (xs.Count(d => !d.IsStatic) == 1 && xs.Single(d => !d.IsStatic) is { IsSymbolic: true } symbol
                && target.Where((_, k) => k != inferred).All(t => t > 0))
            {
                // One symbol S among static dims: the -1 holds S * (the input's static product) / (the target's), exactly
                // (a reshape that does not divide fails), e.g. [batch] -> [2, -1] gives "batch*1/2".
                long have = xs.Where(d => d.IsStatic).Aggregate(1L, (p, d) => p * d.Size), want = target.Where((_, k) => k != inferred).Aggregate(1L, (p, t) => p * t);
                dims[inferred] = have == want ? symbol : new Dim(-1, $"{symbol.Symbol}*{have}/{want}");
            }
        }
        return x with { Shape = dims };
    }

    TensorInfo? Concat(NodeProto n)
    {
        var inputs = n.Input.Select((_, i) => In(n, i)).ToArray();
        if (inputs[0] is not { } first) return null;
        if (inputs.Any(i => i?.Shape is null)) return first with { Shape = null };
        var axis = Norm(n.GetIntRequired("axis"), first.Rank);
        var shape = first.Shape!.ToArray();
        shape[axis] = inputs.All(i => i!.Shape![axis].IsStatic) ? inputs.Sum(i => i!.Shape![axis].Size) : Dim.Unknown;
        return first with { Shape = shape };
    }

    void Split(NodeProto n, TensorInfo? x)
    {
        if (x is null) return;
        if (x.Shape is null) { for (int i = 0; i < n.Output.Count; i++) Set(n, i, x); return; }
        var axis = Norm(n.GetInt("axis", 0), x.Rank);
        var sizes = n.Input.Count > 1 && n.Input[1] != "" ? IntConstant(n.Input[1]) : null;
        for (int i = 0; i < n.Output.Count; i++)
        {
            var shape = x.Shape.ToArray();
            shape[axis] = sizes is not null ? sizes[i]
                : x.Shape[axis].IsStatic && x.Shape[axis].Size % n.Output.Count == 0 ? x.Shape[axis].Size / n.Output.Count : Dim.Unknown;
            Set(n, i, x with { Shape = shape });
        }
    }

    TensorInfo? Slice(NodeProto n, TensorInfo? x)
    {
        if (x?.Shape is null) return x;
        var starts = IntConstant(n.Input[1]);
        var ends = IntConstant(n.Input[2]);
        var axes = n.Input.Count > 3 && n.Input[3] != "" ? IntConstant(n.Input[3]) : starts is null ? null : Enumerable.Range(0, starts.Length).Select(i => (long)i).ToArray();
        var steps = n.Input.Count > 4 && n.Input[4] != "" ? IntConstant(n.Input[4]) : starts?.Select(_ => 1L).ToArray();
        var shape = x.Shape.ToArray();
        if (starts is null || ends is null || axes is null || steps is null)
        {
            if (axes is not null) foreach (var a in axes) shape[Norm(a, x.Rank)] = Dim.Unknown;
            else shape = shape.Select(_ => Dim.Unknown).ToArray();
            return x with { Shape = shape };
        }
        for (int k = 0; k < axes.Length; k++)
        {
            var ax = Norm(axes[k], x.Rank);
            var d = shape[ax];
            if (!d.IsStatic)
            {
                // A slice to the end from 0 with step 1 keeps a symbolic dimension as it is; any other constant slice
                // of a symbol has a length of its own, the same wherever that slice of that symbol is taken
                // (e.g. "sequence[0:-1:1]" for the positions that predict a next token).
                if (!(starts[k] == 0 && ends[k] >= int.MaxValue && steps[k] == 1))
                    shape[ax] = d.IsSymbolic ? new Dim(-1, $"{d.Symbol}[{starts[k]}:{(ends[k] >= int.MaxValue ? "" : ends[k])}:{steps[k]}]") : Dim.Unknown;
                continue;
            }
            long size = d.Size, step = steps[k];
            long s = Clamp(starts[k] < 0 ? starts[k] + size : starts[k], 0, step > 0 ? size : size - 1);
            long e = Clamp(ends[k] < 0 ? ends[k] + size : ends[k], step > 0 ? 0 : -1, step > 0 ? size : size - 1);
            shape[ax] = Math.Max(0, step > 0 ? (e - s + step - 1) / step : (s - e - step - 1) / -step);
        }
        return x with { Shape = shape };
    }

    static long Clamp(long v, long lo, long hi) => Math.Min(Math.Max(v, lo), hi);
}
