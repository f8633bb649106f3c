using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Tests.Support;
using O = AlignThenUnlearn.Runtime.OptimizerGraphs;
using R = AlignThenUnlearn.Tests.Runtime.TorchOptimizerReference;

namespace AlignThenUnlearn.Tests.Runtime;

/// <summary>The optimizer graphs against plain C# implementations of torch.optim's update rules (double precision),
/// over 20 steps with fresh random gradients, clipping active on some steps and a gradient scale (the 1 / micro-batches
/// of accumulated gradients) other than 1 on others.</summary>
public class OptimizerGraphTests
{
    static readonly OptimizerParameter[] Parameters = [new("w", [3, 4]), new("b", [5])];

    static int Size(OptimizerParameter p) => (int)p.Shape.Aggregate(1L, (a, d) => a * d);
    static double[] Rand(Random r, OptimizerParameter p, double scale = 1) => Enumerable.Range(0, Size(p)).Select(_ => scale * (2 * r.NextDouble() - 1)).ToArray();
    static HostTensor F(double[] v, long[] shape) => HostTensor.Of(v.Select(x => (float)x).ToArray(), shape);
    static HostTensor S(double v) => HostTensor.Of([v]);

    /// <summary>Random values rounded to float32, so that graph and reference start from the same numbers.</summary>
    static Dictionary<string, double[]> RandomFloats(Random random, double scale = 1) =>
        Parameters.ToDictionary(p => p.Name, p => Rand(random, p, scale).Select(x => (double)(float)x).ToArray());

    /// <summary>1, 1/2, 1/3, 1, ...: averaging over 1, 2 or 3 accumulated micro-batches.</summary>
    static double GradScaleAt(int t) => 1.0 / (1 + t % 3);

    /// <summary>Clipping on even steps (gradient norms are ~2 or ~20 there).</summary>
    static double MaxNormAt(int t) => t % 2 == 0 ? 1.0 : 0;

    /// <summary>Small gradients, and large ones every third step.</summary>
    static Dictionary<string, double[]> GradientsAt(Random random, int t) => RandomFloats(random, t % 3 == 0 ? 5 : 0.5);

    [Theory]
    [InlineData(0.01)]   // AdamW
    [InlineData(0.0)]    // Adam
    public void AdamW_graph_matches_torch_update_rule_for_20_steps(double weightDecay)
    {
        var random = new Random(7);
        var reference = new R(RandomFloats(random));
        var graph = reference.Parameters.ToDictionary(kv => kv.Key, kv => kv.Value.Select(x => (float)x).ToArray());
        var m = Parameters.ToDictionary(p => p.Name, p => new float[Size(p)]);
        var v = Parameters.ToDictionary(p => p.Name, p => new float[Size(p)]);
        double lr = 0.05, b1 = 0.9, b2 = 0.999, eps = 1e-8;
        using var session = GradCheck.Cpu.Open(O.AdamW(Parameters));
        for (int t = 1; t <= 20; t++)
        {
            var grads = GradientsAt(random, t);
            reference.AdamWStep(grads, lr, b1, b2, eps, weightDecay, GradScaleAt(t), MaxNormAt(t));
            var feeds = new Dictionary<string, HostTensor>
            {
                [O.LearningRate] = S(lr), [O.Beta1] = S(b1), [O.Beta2] = S(b2), [O.Epsilon] = S(eps),
                [O.WeightDecay] = S(weightDecay), [O.Step] = S(t), [O.MaxGradNorm] = S(MaxNormAt(t)), [O.GradScale] = S(GradScaleAt(t)),
            };
            foreach (var p in Parameters)
            {
                feeds[p.Name] = HostTensor.Of(graph[p.Name], p.Shape);
                feeds[O.Grad(p.Name)] = F(grads[p.Name], p.Shape);
                feeds[O.ExpAvg(p.Name)] = HostTensor.Of(m[p.Name], p.Shape);
                feeds[O.ExpAvgSq(p.Name)] = HostTensor.Of(v[p.Name], p.Shape);
            }
            var outputs = ExecutionDevice.Run(session, feeds);
            Assert.Equal(GradScaleAt(t) * R.Norm(grads), outputs[O.GradNorm].Floats[0], 4);   // the scaled gradients' norm, before clipping
            foreach (var p in Parameters)
            {
                graph[p.Name] = outputs[O.Next(p.Name)].Floats;
                m[p.Name] = outputs[O.Next(O.ExpAvg(p.Name))].Floats;
                v[p.Name] = outputs[O.Next(O.ExpAvgSq(p.Name))].Floats;
            }
        }
        foreach (var p in Parameters)
        {
            R.AssertClose(reference.Parameters[p.Name], graph[p.Name], p.Name);
            R.AssertClose(reference.ExpAvg[p.Name], m[p.Name], O.ExpAvg(p.Name));
            R.AssertClose(reference.ExpAvgSq[p.Name], v[p.Name], O.ExpAvgSq(p.Name));
        }
    }

    [Theory]
    [InlineData(0.0, 0.0)]   // plain SGD (the unlearning phase)
    [InlineData(0.9, 0.01)]  // momentum and weight decay
    public void Sgd_graph_matches_torch_update_rule_for_20_steps(double momentum, double weightDecay)
    {
        var random = new Random(11);
        var reference = new R(RandomFloats(random));
        var graph = reference.Parameters.ToDictionary(kv => kv.Key, kv => kv.Value.Select(x => (float)x).ToArray());
        var graphBuffers = Parameters.ToDictionary(p => p.Name, p => new float[Size(p)]);
        double lr = 0.1;
        using var session = GradCheck.Cpu.Open(O.Sgd(Parameters, momentum > 0));
        for (int t = 1; t <= 20; t++)
        {
            var grads = GradientsAt(random, t);
            reference.SgdStep(grads, lr, momentum, weightDecay, GradScaleAt(t), MaxNormAt(t));
            var feeds = new Dictionary<string, HostTensor>
            {
                [O.LearningRate] = S(lr), [O.WeightDecay] = S(weightDecay), [O.MaxGradNorm] = S(MaxNormAt(t)), [O.GradScale] = S(GradScaleAt(t)),
            };
            if (momentum > 0) feeds[O.Momentum] = S(momentum);
            foreach (var p in Parameters)
            {
                feeds[p.Name] = HostTensor.Of(graph[p.Name], p.Shape);
                feeds[O.Grad(p.Name)] = F(grads[p.Name], p.Shape);
                if (momentum > 0) feeds[O.MomentumBuffer(p.Name)] = HostTensor.Of(graphBuffers[p.Name], p.Shape);
            }
            var outputs = ExecutionDevice.Run(session, feeds);
            foreach (var p in Parameters)
            {
                graph[p.Name] = outputs[O.Next(p.Name)].Floats;
                if (momentum > 0) graphBuffers[p.Name] = outputs[O.Next(O.MomentumBuffer(p.Name))].Floats;
            }
        }
        foreach (var p in Parameters) R.AssertClose(reference.Parameters[p.Name], graph[p.Name], p.Name);
    }
}
