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
}
