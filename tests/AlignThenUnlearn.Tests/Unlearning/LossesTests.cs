using AlignThenUnlearn.Onnx;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Tests.Support;
using AlignThenUnlearn.Unlearning;
using Onnx;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Tests.Unlearning;

/// <summary>Loss graphs against values worked out by hand.</summary>
public class LossesTests
{
    [Fact]
    public void Cosine_similarity_matches_hand_computed_values_and_is_zero_for_a_zero_vector()
    {
        var b = new GraphBuilder("cos");
        var p = b.Input("p", DataType.Double, 4, 2);
        var t = b.Input("t", DataType.Double, 4, 2);
        var cos = Losses.CosineSimilarity(b, p, t);
        var distance = Losses.CosineDistance(b, p, t);
        b.Output(cos, DataType.Double, 4);
        b.Output(distance, DataType.Double, 4);
        var outputs = GradCheck.Cpu.Run(b.ToModel(), new Dictionary<string, HostTensor>
        {
            ["p"] = HostTensor.Of([1.0, 0, 3, 4, 0, 0, 2, 0], 4, 2),
            ["t"] = HostTensor.Of([1.0, 1, -3, -4, 1, 2, 0, 5], 4, 2),
        });
        // [1,0]·[1,1] = 1 over sqrt(2); opposite vectors -1; a zero vector 0 (eps, not NaN); orthogonal 0.
        Assert.Equal([1 / Math.Sqrt(2), -1, 0, 0], outputs[cos].Doubles, new Tolerance(1e-15));
        Assert.Equal([1 - 1 / Math.Sqrt(2), 2, 1, 1], outputs[distance].Doubles, new Tolerance(1e-15));
    }

    [Fact]
    public void Cosine_similarity_broadcasts_a_target_vector_over_positions()
    {
        var b = new GraphBuilder("cos");
        var p = b.Input("p", DataType.Double, "batch", "seq", 2);
        var t = b.Input("t", DataType.Double, 2);
        var cos = Losses.CosineSimilarity(b, p, t);
        b.Output(cos, DataType.Double, "batch", "seq");
        var result = GradCheck.Cpu.Run(b.ToModel(), new Dictionary<string, HostTensor>
        {
            ["p"] = HostTensor.Of([1.0, 0, 0, 1, -1, 0, 1, 1, 0, -2, 5, 5], 2, 3, 2),
            ["t"] = HostTensor.Of([1.0, 0], 2),
        })[cos];
        Assert.Equal([2L, 3], result.Shape);
        Assert.Equal([1, 0, -1, 1 / Math.Sqrt(2), 0, 1 / Math.Sqrt(2)], result.Doubles, new Tolerance(1e-15));
    }

    [Fact]
    public void Float16_operands_are_compared_in_float32_where_their_squared_norms_overflow_float16()
    {
        // |(300, 400)|^2 = 250000 is beyond float16's 65504; in float32 the cosine with (4, 3) is 24/25.
        var b = new GraphBuilder("cos16");
        var p = b.Cast(b.Input("p", DataType.Float, 2), DataType.Float16);
        var t = b.Cast(b.Input("t", DataType.Float, 2), DataType.Float16);
        var cos = Losses.CosineSimilarity(b, p, t);
        b.Output(cos, DataType.Float);
        var result = GradCheck.Cpu.Run(b.ToModel(), new Dictionary<string, HostTensor>
        {
            ["p"] = HostTensor.Of([300f, 400f], 2), ["t"] = HostTensor.Of([4f, 3f], 2),
        })[cos];
        Assert.Equal(24.0 / 25, result.Floats[0], 1e-6);
    }

    [Fact]
    public void Margin_loss_averages_the_hinge_and_follows_tau_without_rebuilding()
    {
        // Positions with cosines 1, 0, -1, 1/sqrt(2) against t = [1, 0].
        var (model, loss) = MarginGraph(weighted: false);
        using var session = GradCheck.Cpu.Open(model);
        double Loss(double tau) => ExecutionDevice.Run(session, Feeds(tau), [loss])[loss].Doubles[0];
        double s = 1 / Math.Sqrt(2);
        Assert.Equal(((1 - 0.5) + (s - 0.5)) / 4, Loss(0.5), 1e-15);
        Assert.Equal(((1 + 0.5) + 0.5 + (s + 0.5)) / 4, Loss(-0.5), 1e-15);
        Assert.Equal(0, Loss(1.0), 1e-15);
    }

    [Fact]
    public void Weighted_margin_loss_averages_over_weighted_positions_only()
    {
        var (model, loss) = MarginGraph(weighted: true);
        var feeds = Feeds(0.5);
        feeds["mask"] = HostTensor.Of([1.0, 1, 0, 0], 2, 2);   // the second sequence is padding
        Assert.Equal((1 - 0.5) / 2, GradCheck.Cpu.Run(model, feeds, [loss])[loss].Doubles[0], 1e-15);
        feeds["mask"] = HostTensor.Of([0.0, 0, 0, 0], 2, 2);
        Assert.Equal(0, GradCheck.Cpu.Run(model, feeds, [loss])[loss].Doubles[0]);
    }

    [Fact]
    public void Weighted_margin_loss_gradient_matches_finite_differences()
    {
        var (model, loss) = MarginGraph(weighted: true);
        var random = new Random(4);
        var p = Enumerable.Range(0, 8).Select(_ => random.NextDouble() * 2 - 1).ToArray();
        var feeds = new Dictionary<string, HostTensor>
        {
            ["p"] = HostTensor.Of(p, 2, 2, 2), ["t"] = HostTensor.Of([0.6, -0.8], 2), ["tau"] = HostTensor.Of([0.05]),
            ["mask"] = HostTensor.Of([1.0, 0.5, 1, 0], 2, 2),
        };
        for (int i = 0; i < 4; i++)   // every cosine well away from the kink at tau
            Assert.True(Math.Abs((p[2 * i] * 0.6 - p[2 * i + 1] * 0.8) / Math.Sqrt(p[2 * i] * p[2 * i] + p[2 * i + 1] * p[2 * i + 1]) - 0.05) > 1e-3);
        GradCheck.Check(model, loss, feeds, ["p", "t"]);
    }

    static (ModelProto Model, string Loss) MarginGraph(bool weighted)
    {
        var b = new GraphBuilder("margin");
        var p = b.Input("p", DataType.Double, "batch", "seq", 2);
        var t = b.Input("t", DataType.Double, 2);
        var tau = b.Input("tau", DataType.Double);
        var mask = weighted ? b.Input("mask", DataType.Double, "batch", "seq") : null;
        var loss = Losses.MarginLoss(b, p, t, tau, mask);
        b.Output(loss, DataType.Double);
        return (b.ToModel(), loss);
    }

    static Dictionary<string, HostTensor> Feeds(double tau) => new()
    {
        ["p"] = HostTensor.Of([2.0, 0, 0, 3, -1, 0, 1, 1], 2, 2, 2),
        ["t"] = HostTensor.Of([1.0, 0], 2),
        ["tau"] = HostTensor.Of([tau]),
    };

    sealed class Tolerance(double tolerance) : IEqualityComparer<double>
    {
        public bool Equals(double x, double y) => Math.Abs(x - y) <= tolerance;
        public int GetHashCode(double obj) => 0;
    }
}
