using AlignThenUnlearn.Autodiff;
using AlignThenUnlearn.Onnx;
using Onnx;

namespace AlignThenUnlearn.Runtime;

/// <summary>Rewrites of joint training graphs that the runtime needs.</summary>
public static class TrainGraphs
{
    /// <summary>Adds an input <c>p.grad.accumulated</c> per gradient and outputs <c>p.grad = new + accumulated</c>.</summary>
    public static ModelProto WithAccumulation(GradientGraph graph)
    {
        var model = graph.Model.Clone();
        var g = model.Graph;
        // First the producers of the gradients get new output names, then a builder over the renamed graph may
        // give the gradient names to the Adds (a builder reserves every name the graph uses when it is created).
        var renaming = new GraphBuilder(g, Opset.DefaultDomainVersion(model));
        var fresh = new Dictionary<string, string>();
        foreach (var gradName in graph.Gradients.Values)
        {
            var producer = g.Node.Single(n => n.Output.Contains(gradName));
            fresh[gradName] = renaming.Fresh(gradName + ".new");
            producer.Output[producer.Output.IndexOf(gradName)] = fresh[gradName];
        }
        var b = new GraphBuilder(g, Opset.DefaultDomainVersion(model));
        foreach (var gradName in graph.Gradients.Values)
        {
            var output = g.Output.Single(o => o.Name == gradName);
            var accumulated = gradName + TrainSession.AccumulatedSuffix;
            g.Input.Add(new ValueInfoProto { Name = b.Claim(accumulated), Type = output.Type.Clone() });
            b.Node("Add", [fresh[gradName], accumulated], 1, name: "Accumulate", outputNames: [gradName]);
        }
        return model;
    }

    /// <summary>The input of <see cref="PieceSum"/> that holds piece <paramref name="piece"/>'s gradient <paramref name="gradName"/>.</summary>
    public static string PieceInput(string gradName, int piece) => $"{gradName}.piece{piece}";

    /// <summary>A graph that adds the gradients of <paramref name="pieces"/> pieces of a batch: per gradient (name to shape,
    /// float32), output <c>p.grad = ((piece0 + piece1) + piece2) ...</c>, the order in which <see cref="WithAccumulation"/>
    /// adds pieces run one after the other (float addition commutes), so pieces run at once sum to the same bits.</summary>
    public static ModelProto PieceSum(IReadOnlyDictionary<string, long[]> gradients, int pieces)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(pieces, 2);
        var b = new GraphBuilder("piece_sum");
        foreach (var (gradName, shape) in gradients)
        {
            var dims = shape.Select(d => (Dim)d).ToArray();
            var sum = b.Input(PieceInput(gradName, 0), TensorProto.Types.DataType.Float, dims);
            for (int k = 1; k < pieces; k++)
            {
                var term = b.Input(PieceInput(gradName, k), TensorProto.Types.DataType.Float, dims);
                sum = k == pieces - 1 ? b.Node("Add", [sum, term], 1, outputNames: [gradName])[0] : b.Add(sum, term);
            }
            b.Output(sum, TensorProto.Types.DataType.Float, dims);
        }
        return b.ToModel();
    }

    /// <summary>The graph with every Dropout node's <c>seed</c> attribute derived from <paramref name="seed"/> and the
    /// node's position. ONNX Runtime seeds a Dropout kernel's generator once, when the session is created, and advances
    /// it with every run, so a session continued after a restart would draw other masks than the one that was
    /// interrupted. A run that opens its dropout session afresh at each checkpoint with seeds from (run seed, chunk)
    /// therefore draws the same masks whether or not it was resumed in between.</summary>
    public static GradientGraph WithDropoutSeed(GradientGraph graph, ulong seed)
    {
        var model = graph.Model.Clone();
        var mixer = new SplitMix64(seed);
        foreach (var node in model.Graph.Node.Where(n => n.OpType == "Dropout" && n.Domain is "" or "ai.onnx"))
        {
            var value = (long)(mixer.Next() >> 33);   // 31 bits: non-negative
            var attribute = node.Attribute.FirstOrDefault(a => a.Name == "seed");
            if (attribute is null) node.Attribute.Add(Attr.Int("seed", value));
            else attribute.I = value;
        }
        return graph with { Model = model };
    }
}
