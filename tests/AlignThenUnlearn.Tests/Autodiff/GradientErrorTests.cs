using AlignThenUnlearn.Autodiff;
using AlignThenUnlearn.Onnx;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Tests.Support;
using Microsoft.ML.OnnxRuntime;
using Onnx;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Tests.Autodiff;

/// <summary>How Gradients.Build fails (and when it must not): operators without rules, non-differentiable
/// inputs, stop-gradients, and wrt or loss names that are not what they should be.</summary>
public class GradientErrorTests
{
    static readonly double[] XValues = [0.3, -1.2, 0.8, 2.1, -0.5, 1.4];
    static readonly double[] YValues = [1.1, 0.7, -0.9, 0.4, 1.6, -1.3];

    static Dictionary<string, HostTensor> Feeds() => new() { ["x"] = HostTensor.Of(XValues, 2, 3), ["y"] = HostTensor.Of(YValues, 2, 3) };

    static (GraphBuilder B, string X, string Y) Inputs()
    {
        var b = new GraphBuilder("errors");
        return (b, b.Input("x", DataType.Double, 2, 3), b.Input("y", DataType.Double, 2, 3));
    }

    static ModelProto WithLoss(GraphBuilder b, string value)
    {
        var loss = b.ReduceSum(value, [], keepDims: false);
        b.Output(loss, DataType.Double);
        return b.ToModel();
    }

    static string Loss(ModelProto model) => model.Graph.Output[0].Name;

    /// <summary>Mod (with fmod) and HardSigmoid have no gradient rule. ONNX Runtime's CPU HardSigmoid is float only,
    /// hence the casts around it.</summary>
    static string RulelessNode(GraphBuilder b, string op, string x, string y) => op switch
    {
        "Mod" => b.Node("Mod", [x, y], attributes: [Attr.Int("fmod", 1)], name: "remainder")[0],
        "HardSigmoid" => b.Cast(b.Node("HardSigmoid", [b.Cast(x, DataType.Float)], name: "hard_gate")[0], DataType.Double),
        _ => throw new ArgumentException(op),
    };

    [Theory]
    [InlineData("Mod", "remainder")]
    [InlineData("HardSigmoid", "hard_gate")]
    public void Op_without_a_rule_on_the_path_fails_naming_the_node_and_op_type(string op, string nodeName)
    {
        var (b, x, y) = Inputs();
        var model = WithLoss(b, b.Mul(RulelessNode(b, op, x, y), y));
        var message = Assert.Throws<GradientException>(() => Gradients.Build(model, Loss(model), ["x"])).Message;
        Assert.Contains($"'{nodeName}'", message);
        Assert.Contains(op, message);
        Assert.Contains("no gradient rule", message);
    }

    [Fact]
    public void Operator_of_another_domain_on_the_path_fails_naming_the_domain()
    {
        var (b, x, y) = Inputs();
        var gelu = b.Node("Gelu", [x], domain: "com.microsoft", name: "fused_gelu")[0];
        var model = WithLoss(b, b.Mul(gelu, y));
        var message = Assert.Throws<GradientException>(() => Gradients.Build(model, Loss(model), ["x"])).Message;
        Assert.Contains("'fused_gelu'", message);
        Assert.Contains("Gelu", message);
        Assert.Contains("com.microsoft", message);
    }

    [Fact]
    public void Custom_domain_op_is_not_differentiated_with_the_rule_of_a_standard_op_of_the_same_name()
    {
        // The table's rules are for ONNX's own operators; a "Relu" of some other domain may compute anything.
        var (b, x, y) = Inputs();
        var custom = b.Node("Relu", [x], domain: "com.example", name: "custom_relu")[0];
        var model = WithLoss(b, b.Mul(custom, y));
        var message = Assert.Throws<GradientException>(() => Gradients.Build(model, Loss(model), ["x"])).Message;
        Assert.Contains("'custom_relu'", message);
        Assert.Contains("com.example", message);
    }

    [Theory]
    [InlineData("Mod")]
    [InlineData("HardSigmoid")]
    public void Op_without_a_rule_whose_output_the_loss_does_not_use_is_ignored(string op)
    {
        // The op reads x and is a graph output, so it runs, but the loss sum(sin(x) * y) does not depend on it.
        var (b, x, y) = Inputs();
        var side = RulelessNode(b, op, x, y);
        var model = WithLoss(b, b.Mul(b.Op("Sin", x), y));
        model.Graph.Output.Add(new ValueInfoProto { Name = side });
        GradCheck.Check(model, Loss(model), Feeds(), ["x", "y"]);
    }

    [Fact]
    public void Op_without_a_rule_on_the_loss_path_but_not_downstream_of_wrt_is_a_constant()
    {
        // Mod(y, 1.5) feeds the loss but depends only on y, which is not differentiated.
        var (b, x, y) = Inputs();
        var constant = b.Node("Mod", [y, b.Scalar(1.5, DataType.Double)], attributes: [Attr.Int("fmod", 1)], name: "remainder")[0];
        var model = WithLoss(b, b.Mul(b.Op("Sin", x), constant));
        GradCheck.Check(model, Loss(model), Feeds(), ["x"]);
    }

    [Fact]
    public void Dependence_through_a_non_differentiable_input_fails_naming_the_node_and_input()
    {
        // Pow's rule differentiates the base only; here the exponent depends on x.
        var (b, x, y) = Inputs();
        var power = b.Node("Pow", [y, x], name: "power")[0];
        var model = WithLoss(b, power);
        var message = Assert.Throws<GradientException>(() => Gradients.Build(model, Loss(model), ["x"])).Message;
        Assert.Contains("'power'", message);
        Assert.Contains("input 1", message);
    }

    // ---- stop-gradient ----

    [Fact]
    public void Input_reached_only_through_a_stop_gradient_is_unreached()
    {
        // loss = sum(stop(x) * y): d/dy = x, and nothing reaches x.
        var (b, x, y) = Inputs();
        var model = WithLoss(b, b.Mul(b.StopGradient(x), y));
        var grads = Gradients.Build(model, Loss(model), ["x", "y"]);
        Assert.Equal(["x"], grads.Unreached);
        Assert.Equal(["y"], grads.Gradients.Keys);
        Assert.Equal(XValues, GradCheck.Cpu.Run(grads.Model, Feeds())[grads.Gradients["y"]].Doubles);

        Assert.Equal(["x"], Gradients.Build(model, Loss(model), ["x"]).Unreached);
    }

    [Fact]
    public void Stop_gradient_leaves_exactly_the_gradient_of_the_other_path()
    {
        // loss = sum(stop(x) * sin(x)). With stop(x) frozen the gradient is the one of sum(c * sin(x)) at c = x,
        // measured here by central differences on a copy of the graph where c is a separate input.
        var (b, x, _) = Inputs();
        var model = WithLoss(b, b.Mul(b.StopGradient(x), b.Op("Sin", x)));
        var grads = Gradients.Build(model, Loss(model), ["x"]);
        var analytic = GradCheck.Cpu.Run(grads.Model, Feeds())[grads.Gradients["x"]].Doubles;

        var (f, fx, _) = Inputs();
        var frozen = f.Input("frozen", DataType.Double, 2, 3);
        var otherPath = WithLoss(f, f.Mul(frozen, f.Op("Sin", fx)));
        var feeds = new Dictionary<string, HostTensor>(Feeds()) { ["frozen"] = HostTensor.Of(XValues, 2, 3) };
        using var otherSession = GradCheck.Cpu.Open(otherPath);
        using var fullSession = GradCheck.Cpu.Open(model);
        for (int i = 0; i < XValues.Length; i++)
        {
            var otherPathGradient = GradCheck.CentralDifference(SummedOutput(otherSession, Loss(otherPath)), feeds, "x", i);
            Assert.True(Math.Abs(otherPathGradient - analytic[i]) <= 1e-8, $"element {i}: backward graph {analytic[i]}, other path alone {otherPathGradient}");
            // The full derivative (through both factors) is larger by sin(x): the stop-gradient is what makes them agree.
            var fullGradient = GradCheck.CentralDifference(SummedOutput(fullSession, Loss(model)), Feeds(), "x", i);
            Assert.True(Math.Abs(fullGradient - analytic[i] - Math.Sin(XValues[i])) <= 1e-8);
        }
    }

    static Func<IReadOnlyDictionary<string, HostTensor>, double> SummedOutput(InferenceSession session, string output) =>
        inputs => ExecutionDevice.Run(session, inputs, [output])[output].AsDoubles().Sum();

    // ---- names ----

    [Theory]
    [InlineData("hidden")]       // a value computed inside the graph
    [InlineData("not_there")]    // no value at all
    public void Wrt_that_is_not_an_input_or_initializer_fails_naming_it(string wrt)
    {
        var (b, x, y) = Inputs();
        var hidden = b.Node("Sin", [x], outputNames: ["hidden"])[0];
        var model = WithLoss(b, b.Mul(hidden, y));
        var message = Assert.Throws<GradientException>(() => Gradients.Build(model, Loss(model), ["x", wrt])).Message;
        Assert.Contains($"'{wrt}'", message);
        Assert.Contains("not an input or initializer", message);
    }

    [Fact]
    public void Initializers_can_be_differentiated()
    {
        // loss = sum(x * w) with w an initializer: d/dw = x.
        var (b, x, _) = Inputs();
        var w = b.Initializer(Tensors.FromDouble("w", YValues, 2, 3));
        var model = WithLoss(b, b.Mul(x, w));
        var grads = Gradients.Build(model, Loss(model), [w]);
        Assert.Equal(XValues, GradCheck.Cpu.Run(grads.Model, new Dictionary<string, HostTensor> { ["x"] = HostTensor.Of(XValues, 2, 3) })[grads.Gradients[w]].Doubles);
    }

    [Fact]
    public void Loss_that_is_not_a_value_of_the_graph_fails_naming_it()
    {
        var (b, x, y) = Inputs();
        var model = WithLoss(b, b.Mul(x, y));
        var message = Assert.Throws<GradientException>(() => Gradients.Build(model, "lsos", ["x"])).Message;
        Assert.Contains("'lsos'", message);
    }

    [Fact]
    public void Loss_independent_of_an_input_reports_it_unreached_without_failing()
    {
        var (b, x, y) = Inputs();
        var model = WithLoss(b, b.Op("Sin", y));
        var grads = Gradients.Build(model, Loss(model), ["x"]);
        Assert.Equal(["x"], grads.Unreached);
        Assert.Empty(grads.Gradients);
    }

    [Fact]
    public void Graphs_older_than_opset_18_are_refused_naming_the_opset()
    {
        var b = new GraphBuilder("old", opset: 13);
        var x = b.Input("x", DataType.Float, 3);
        b.Output(b.ReduceSum(b.Mul(x, x), [], keepDims: false), DataType.Float);
        var model = b.ToModel();
        var e = Assert.Throws<GradientException>(() => Gradients.Build(model, model.Graph.Output[0].Name, ["x"]));
        Assert.Contains("opset 13", e.Message);
    }
}
