using AlignThenUnlearn.Onnx;
using Onnx;

namespace AlignThenUnlearn.Autodiff;

/// <summary>The result of differentiating a graph: the joint forward+backward model and, for each
/// requested input, the name of its gradient output (absent when the loss does not depend on it).</summary>
public sealed record GradientGraph(ModelProto Model, IReadOnlyDictionary<string, string> Gradients, IReadOnlyList<string> Unreached);

/// <summary>Reverse-mode differentiation of ONNX graphs into standard ONNX operators.</summary>
public static class Gradients
{
    /// <summary>Doc string that marks an Identity node as a stop-gradient: nothing flows back through it.</summary>
    public const string StopGradientMarker = "atu:stop_gradient";

    /// <summary>Emits <c>y = x</c> through which no gradient flows (frozen sub-graphs, detached targets).</summary>
    public static string StopGradient(this GraphBuilder b, string x) =>
        b.Node("Identity", [x], 1, name: "StopGradient", docString: StopGradientMarker)[0];

    public static string GradientName(string input) => input + ".grad";

    /// <summary>Returns a copy of <paramref name="forward"/> that also outputs d<paramref name="loss"/>/d(each of <paramref name="wrt"/>).
    /// A non-scalar loss is summed. Only nodes between the inputs and the loss get backward nodes.</summary>
    public static GradientGraph Build(ModelProto forward, string loss, IEnumerable<string> wrt)
    {
        var version = Opset.DefaultDomainVersion(forward);
        if (version != 0 && version < Opset.Oldest)
            throw new GradientException($"graph '{forward.Graph.Name}' uses opset {version}; gradients are built for opset {Opset.Oldest} or newer (reduction axes as inputs)");
        var model = forward.Clone();
        var graph = model.Graph;
        var wrtList = wrt.Distinct().ToList();
        var known = graph.Input.Select(i => i.Name).Concat(graph.Initializer.Select(i => i.Name)).ToHashSet();
        foreach (var w in wrtList)
            if (!known.Contains(w)) throw new GradientException($"cannot differentiate with respect to '{w}': it is not an input or initializer of graph '{graph.Name}'");
        if (!known.Contains(loss) && !graph.Node.Any(n => n.Output.Contains(loss)))
            throw new GradientException($"the loss '{loss}' is not a value of graph '{graph.Name}'");

        var shapes = ShapeInference.Run(graph);
        var b = new GraphBuilder(graph, Opset.DefaultDomainVersion(model));
        var c = new GradientContext(b, shapes);
        var forwardNodes = graph.Node.ToList();

        // Forward sweep: which values depend (differentiably) on the requested inputs.
        var depends = new HashSet<string>(wrtList);
        foreach (var n in forwardNodes)
        {
            if (!n.Input.Any(depends.Contains) || IsStopGradient(n)) continue;
            if (IsStandard(n) && GradientRules.NoGradient.Contains(n.OpType)) continue;
            if (RuleFor(n) is { } rule)
                foreach (var i in rule.DifferentiableOutputs(n)) depends.Add(n.Output[i]);
            else
                depends.UnionWith(n.Output.Where(o => o != ""));   // no rule: an error if it turns out to lie on the path
        }
        if (!depends.Contains(loss))
            return new GradientGraph(model, new Dictionary<string, string>(), wrtList);

        // Backward sweep: which of those values the loss needs.
        var needed = new HashSet<string> { loss };
        var onPath = new List<NodeProto>();
        for (int k = forwardNodes.Count - 1; k >= 0; k--)
        {
            var n = forwardNodes[k];
            if (!n.Output.Any(o => needed.Contains(o) && depends.Contains(o))) continue;
            if (RuleFor(n) is not { } rule)
                throw new GradientException($"node '{n.Name}' (op type {n.OpType}{(n.Domain == "" ? "" : ", domain " + n.Domain)}) lies between the inputs and the loss '{loss}' but has no gradient rule");
            var diffInputs = rule.DifferentiableInputs(n);
            for (int i = 0; i < n.Input.Count; i++)
            {
                if (!depends.Contains(n.Input[i])) continue;
                if (!diffInputs.Contains(i))
                    throw new GradientException($"node '{n.Name}' ({n.OpType}): its input {i} ('{n.Input[i]}') depends on a differentiated input, but this rule has no gradient for that input");
                needed.Add(n.Input[i]);
            }
            onPath.Add(n);
        }

        // Reverse walk: accumulate each value's gradient contributions, summed once when consumed.
        var contributions = new Dictionary<string, List<string>>();
        void Accumulate(string value, string grad)
        {
            if (!contributions.TryGetValue(value, out var list)) contributions[value] = list = [];
            list.Add(grad);
        }
        string? Total(string value) => contributions.TryGetValue(value, out var list) ? b.Sum([.. list]) : null;

        Accumulate(loss, LossSeed(c, loss));
        foreach (var n in onPath)   // already in reverse topological order
        {
            var gy = n.Output.Select(o => depends.Contains(o) ? Total(o) : null).ToArray();
            var gx = RuleFor(n)!.Backward(c, n, gy);
            for (int i = 0; i < n.Input.Count; i++)
                if (i < gx.Length && gx[i] is { } g && needed.Contains(n.Input[i]) && depends.Contains(n.Input[i])) Accumulate(n.Input[i], g);
        }

        var gradients = new Dictionary<string, string>();
        var unreached = new List<string>();
        foreach (var w in wrtList)
        {
            if (Total(w) is not { } g) { unreached.Add(w); continue; }
            var name = GradientName(w);
            b.Node("Identity", [g], 1, name: "GradientOutput", outputNames: [name]);
            var info = shapes[w];
            graph.Output.Add(GraphBuilder.ValueInfo(name, info?.ElementType ?? c.TypeOf(w), info?.Shape));
            gradients[w] = name;
        }
        RemoveUnusedBackwardNodes(graph, forwardNodes.Count, forward.Graph.Initializer.Count);
        return new GradientGraph(model, gradients, unreached);
    }

    /// <summary>The table's rules are for ONNX's own operators: an op of another domain has none, whatever its name.</summary>
    static bool IsStandard(NodeProto n) => n.Domain is "" or "ai.onnx";

    static GradientRule? RuleFor(NodeProto n) => IsStandard(n) && GradientRules.Table.TryGetValue(n.OpType, out var rule) ? rule : null;

    /// <summary>Rules emit a gradient for each differentiable input, also where the walk then finds it unneeded (a
    /// rotary table, a frozen input); ONNX Runtime would still run those nodes, so drop the backward nodes and
    /// constants that no output reads. Forward nodes stay as they are.</summary>
    static void RemoveUnusedBackwardNodes(GraphProto graph, int forwardCount, int forwardConstants)
    {
        var used = graph.Output.Select(o => o.Name).ToHashSet();
        var kept = new List<NodeProto>();
        for (int k = graph.Node.Count - 1; k >= 0; k--)
        {
            var n = graph.Node[k];
            if (k >= forwardCount && !n.Output.Any(used.Contains)) continue;
            used.UnionWith(n.Input);
            kept.Add(n);
        }
        if (kept.Count == graph.Node.Count) return;
        kept.Reverse();
        graph.Node.Clear();
        graph.Node.AddRange(kept);
        var unusedConstants = graph.Initializer.Skip(forwardConstants).Where(t => !used.Contains(t.Name)).ToList();
        foreach (var t in unusedConstants) graph.Initializer.Remove(t);
    }

    static bool IsStopGradient(NodeProto n) => n.OpType == "Identity" && n.DocString == StopGradientMarker;

    static string LossSeed(GradientContext c, string loss)
    {
        var info = c.Shapes[loss];
        if (info?.Shape is { Length: 0 }) return c.Scalar(1, loss);
        return c.B.Expand(c.Scalar(1, loss), c.B.Shape(loss));
    }
}
