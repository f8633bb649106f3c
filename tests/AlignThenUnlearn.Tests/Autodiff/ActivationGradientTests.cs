using AlignThenUnlearn.Autodiff;
using AlignThenUnlearn.Onnx;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Tests.Support;
using Onnx;
using static AlignThenUnlearn.Tests.Autodiff.ElementwiseGradientTests;

namespace AlignThenUnlearn.Tests.Autodiff;

/// <summary>Activation, softmax and dropout rules against central differences (double precision
/// unless the CPU execution provider has only a float kernel).</summary>
public class ActivationGradientTests
{
    [Theory]
    [InlineData("Tanh", Domain.Wide)]
    [InlineData("Sigmoid", Domain.Wide)]
    [InlineData("Relu", Domain.AwayFromZero)]
    public void Activation_matches_central_differences_on_static_and_symbolic_shapes(string op, Domain domain) => CheckUnary(op, domain);

    /// <summary>The CPU execution provider has Erf only for float ("Could not find an implementation for Erf(13)"
    /// with double), so this check runs in float. Central differences then trade truncation against rounding:
    /// truncation is |erf'''| eps^2 / 6 <= 2.26 eps^2 / 6 ~ 4e-5 at eps = 1e-2, while the float loss (24 products
    /// summed, |loss| of a few units) carries rounding of ~1e-6, which dividing by 2 eps turns into ~5e-5.
    /// A smaller eps would multiply the rounding part (eps = 1e-3: ~5e-4), a larger one the truncation part.
    /// So eps = 1e-2 with atol = 5e-4 (for the tails, where erf' is tiny) and rtol = 1e-2: a wrong factor
    /// (2/sqrt(pi) = 1.13) or sign is still far outside.</summary>
    [Fact]
    public void Erf_matches_central_differences_in_float() => CheckUnary("Erf", Domain.Wide, single: true, eps: 1e-2, rtol: 1e-2, atol: 5e-4);

    // ---- Softmax and LogSoftmax along one axis ----

    [Theory]
    [InlineData("Softmax", -1, new long[] { 2, 3, 4 })]
    [InlineData("Softmax", 1, new long[] { 2, 3, 4 })]
    [InlineData("Softmax", 0, new long[] { 2, 3, 4 })]
    [InlineData("Softmax", 0, new long[] { 3, 4 })]
    [InlineData("LogSoftmax", -1, new long[] { 2, 3, 4 })]
    [InlineData("LogSoftmax", 1, new long[] { 2, 3, 4 })]
    [InlineData("LogSoftmax", 0, new long[] { 2, 3, 4 })]
    [InlineData("LogSoftmax", 0, new long[] { 3, 4 })]
    public void Softmax_family_along_an_axis(string op, long axis, long[] shape)
    {
        var t = new OpTest(op).Attr(Attr.Int("axis", axis));
        t.Input("x", Sample(t, Domain.Wide, shape)).Check();
    }

    [Theory]
    [InlineData("Softmax", -1)]
    [InlineData("Softmax", 1)]
    [InlineData("LogSoftmax", -1)]
    [InlineData("LogSoftmax", 1)]
    public void Softmax_family_over_symbolic_dims(string op, long axis)
    {
        var t = new OpTest(op, seed: 2).Attr(Attr.Int("axis", axis));
        t.Input("x", Sample(t, Domain.Wide, 2, 3, 4), declared: ["batch", "seq", "vocab"]).Check();
    }

    // ---- Dropout ----

    const long DropoutSeed = 1234;

    /// <summary>An OpTest of Dropout on a [3,4,5] input (enough elements that both kept and dropped ones occur).</summary>
    /// <param name="ratio">null: the input is omitted (ratio 0.5).</param>
    static OpTest Dropout(float? ratio, bool? training, int outputs = 1, Dim[]? declared = null)
    {
        var t = new OpTest("Dropout").Attr(Attr.Int("seed", DropoutSeed)).Outputs(outputs, 0);
        t.Input("x", t.Rand(3, 4, 5), declared: declared);
        if (ratio is { } r) t.Constant("ratio", HostTensor.Of([r])); else if (training is not null) t.Skip();
        if (training is { } mode) t.Constant("training_mode", HostTensor.Of([mode]));
        return t;
    }

    /// <summary>A seeded Dropout draws a fresh mask on every run of one session, but the same first mask in every
    /// new session: each evaluation opens its own, so the forward and backward graphs see one mask.</summary>
    [Fact]
    public void Dropout_in_training_mode_matches_central_differences_with_a_seeded_mask()
    {
        Dropout(0.3f, training: true).Check(freshSessions: true);
        Dropout(0.3f, training: true, outputs: 2, declared: ["batch", "seq", 5]).Check(freshSessions: true);
        Dropout(ratio: null, training: true).Check(freshSessions: true);
    }

    /// <summary>dL/dx = g * mask / (1 - ratio), with the mask read from the same run. With ratio 0.5 and 0.75
    /// the scale is 2 and 4, so the products are exact and the comparison is equality.</summary>
    [Theory]
    [InlineData(0.5f)]
    [InlineData(0.75f)]
    public void Dropout_gradient_is_the_probe_times_the_mask_over_the_keep_probability(float ratio)
    {
        var (model, feeds, wrt) = Dropout(ratio, training: true, outputs: 2).Build();
        var maskName = model.Graph.Node.Single(n => n.OpType == "Dropout").Output[1];
        var grads = Gradients.Build(model, model.Graph.Output[0].Name, wrt);
        grads.Model.Graph.Output.Add(new ValueInfoProto { Name = maskName });
        var result = GradCheck.Cpu.Run(grads.Model, feeds, [grads.Gradients["x"], maskName]);

        var mask = (bool[])result[maskName].Data;
        Assert.Contains(true, mask);
        Assert.Contains(false, mask);
        var probe = feeds["probe_0"].Doubles;   // the loss is sum(y * probe_0), so dL/dy = probe_0
        var expected = probe.Select((g, i) => mask[i] ? g / (1 - (double)ratio) : 0.0).ToArray();
        Assert.Equal(expected, result[grads.Gradients["x"]].Doubles);
    }

    [Fact]
    public void Dropout_with_training_mode_false_or_absent_is_the_identity()
    {
        Dropout(0.3f, training: false).Check();
        Dropout(0.3f, training: false, outputs: 2).Check();
        Dropout(0.3f, training: null).Check();
    }
}
