using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Tests.Support;
using O = AlignThenUnlearn.Runtime.OptimizerGraphs;

namespace AlignThenUnlearn.Tests.Runtime;

/// <summary>The optimizer graphs against plain C# implementations of torch.optim's update rules (double precision),
/// over 20 steps with fresh random gradients, clipping active on some steps and a gradient scale (the 1 / micro-batches
/// of accumulated gradients) other than 1 on others.</summary>
public class OptimizerGraphTests
{
    static readonly OptimizerParameter[] Parameters = [new("w", [3, 4]), new("b", [5])];

    sealed class State(Random random)
    {
        public Dictionary<string, double[]> P = Parameters.ToDictionary(p => p.Name, p => Rand(random, p));
        public Dictionary<string, double[]> M = Parameters.ToDictionary(p => p.Name, p => new double[Size(p)]);
        public Dictionary<string, double[]> V = Parameters.ToDictionary(p => p.Name, p => new double[Size(p)]);
    }

    static int Size(OptimizerParameter p) => (int)p.Shape.Aggregate(1L, (a, d) => a * d);
    static double[] Rand(Random r, OptimizerParameter p, double scale = 1) => Enumerable.Range(0, Size(p)).Select(_ => scale * (2 * r.NextDouble() - 1)).ToArray();
    static HostTensor F(double[] v, long[] shape) => HostTensor.Of(v.Select(x => (float)x).ToArray(), shape);
    static HostTensor S(double v) => HostTensor.Of([v]);

    /// <summary>Gradients multiplied by <paramref name="gradScale"/> (as dividing the loss of each micro-batch would),
    /// then clip_grad_norm_: total 2-norm over all gradients, scaled by min(1, max / (norm + 1e-6)).</summary>
    static Dictionary<string, double[]> ScaleAndClip(Dictionary<string, double[]> grads, double gradScale, double maxNorm)
    {
        var scaled = grads.ToDictionary(kv => kv.Key, kv => kv.Value.Select(x => x * gradScale).ToArray());
        double norm = Norm(scaled);
        double clip = maxNorm > 0 ? Math.Min(1, maxNorm / (norm + 1e-6)) : 1;
        return scaled.ToDictionary(kv => kv.Key, kv => kv.Value.Select(x => x * clip).ToArray());
    }

    static double Norm(Dictionary<string, double[]> grads) => Math.Sqrt(grads.Values.Sum(g => g.Sum(x => x * x)));

    /// <summary>1, 1/2, 1/3, 1, ...: averaging over 1, 2 or 3 accumulated micro-batches.</summary>
    static double GradScaleAt(int t) => 1.0 / (1 + t % 3);

    /// <summary>Norm-wise relative error ‖graph − reference‖ / ‖reference‖ ≤ 1e-6 per tensor. The graph computes in
    /// float32 and the reference in double, so single elements that an update drives close to zero carry float32
    /// rounding of the magnitude-1 values they came from; the norm-wise measure is the standard one for that.</summary>
    static void AssertClose(double[] expected, float[] actual, string what)
    {
        double diff = Math.Sqrt(expected.Zip(actual).Sum(p => (p.First - p.Second) * (p.First - p.Second)));
        double norm = Math.Sqrt(expected.Sum(x => x * x));
        Assert.True(diff <= 1e-6 * norm, $"{what}: relative error {diff / norm:G3} (reference norm {norm:G6})");
    }

    [Theory]
    [InlineData(0.01)]   // AdamW
    [InlineData(0.0)]    // Adam
    public void AdamW_graph_matches_torch_update_rule_for_20_steps(double weightDecay)
    {
        var random = new Random(7);
        var reference = new State(random);
        var graph = Parameters.ToDictionary(p => p.Name, p => reference.P[p.Name].Select(x => (double)(float)x).ToArray());
        foreach (var k in graph.Keys) reference.P[k] = (double[])graph[k].Clone();
        var m = Parameters.ToDictionary(p => p.Name, p => new float[Size(p)]);
        var v = Parameters.ToDictionary(p => p.Name, p => new float[Size(p)]);
        double lr = 0.05, b1 = 0.9, b2 = 0.999, eps = 1e-8;
        using var session = GradCheck.Cpu.Open(O.AdamW(Parameters));
        for (int t = 1; t <= 20; t++)
        {
            var grads = Parameters.ToDictionary(p => p.Name, p => Rand(random, p, t % 3 == 0 ? 5 : 0.5).Select(x => (double)(float)x).ToArray());
            double maxNorm = t % 2 == 0 ? 1.0 : 0;   // clipping on even steps (norms are ~2 or ~20 there)
            double gradScale = GradScaleAt(t);

            // Reference: torch.optim.AdamW.step() after clip_grad_norm_.
            var g = ScaleAndClip(grads, gradScale, maxNorm);
            foreach (var p in Parameters)
            {
                var (P, M, V, G) = (reference.P[p.Name], reference.M[p.Name], reference.V[p.Name], g[p.Name]);
                for (int i = 0; i < P.Length; i++)
                {
                    P[i] *= 1 - lr * weightDecay;
                    M[i] = b1 * M[i] + (1 - b1) * G[i];
                    V[i] = b2 * V[i] + (1 - b2) * G[i] * G[i];
                    double mHat = M[i] / (1 - Math.Pow(b1, t)), vHat = V[i] / (1 - Math.Pow(b2, t));
                    P[i] -= lr * mHat / (Math.Sqrt(vHat) + eps);
                }
            }

            var feeds = new Dictionary<string, HostTensor>
            {
                [O.LearningRate] = S(lr), [O.Beta1] = S(b1), [O.Beta2] = S(b2), [O.Epsilon] = S(eps),
                [O.WeightDecay] = S(weightDecay), [O.Step] = S(t), [O.MaxGradNorm] = S(maxNorm), [O.GradScale] = S(gradScale),
            };
            foreach (var p in Parameters)
            {
                feeds[p.Name] = F(graph[p.Name], p.Shape);
                feeds[O.Grad(p.Name)] = F(grads[p.Name], p.Shape);
                feeds[O.ExpAvg(p.Name)] = HostTensor.Of(m[p.Name], p.Shape);
                feeds[O.ExpAvgSq(p.Name)] = HostTensor.Of(v[p.Name], p.Shape);
            }
            var outputs = ExecutionDevice.Run(session, feeds);
            double norm = gradScale * Norm(grads);   // the norm of the scaled gradients, before clipping
            Assert.Equal(norm, outputs[O.GradNorm].Floats[0], 4);
            foreach (var p in Parameters)
            {
                graph[p.Name] = outputs[O.Next(p.Name)].Floats.Select(x => (double)x).ToArray();
                m[p.Name] = outputs[O.Next(O.ExpAvg(p.Name))].Floats;
                v[p.Name] = outputs[O.Next(O.ExpAvgSq(p.Name))].Floats;
            }
        }
        foreach (var p in Parameters)
        {
            AssertClose(reference.P[p.Name], graph[p.Name].Select(x => (float)x).ToArray(), p.Name);
            AssertClose(reference.M[p.Name], m[p.Name], O.ExpAvg(p.Name));
            AssertClose(reference.V[p.Name], v[p.Name], O.ExpAvgSq(p.Name));
        }
    }

    [Theory]
    [InlineData(0.0, 0.0)]   // plain SGD (the unlearning phase)
    [InlineData(0.9, 0.01)]  // momentum and weight decay
    public void Sgd_graph_matches_torch_update_rule_for_20_steps(double momentum, double weightDecay)
    {
        var random = new Random(11);
        var reference = Parameters.ToDictionary(p => p.Name, p => Rand(random, p).Select(x => (double)(float)x).ToArray());
        var buffers = Parameters.ToDictionary(p => p.Name, p => (double[]?)null);
        var graph = reference.ToDictionary(kv => kv.Key, kv => kv.Value.Select(x => (float)x).ToArray());
        var graphBuffers = Parameters.ToDictionary(p => p.Name, p => new float[Size(p)]);
        double lr = 0.1;
        using var session = GradCheck.Cpu.Open(O.Sgd(Parameters, momentum > 0));
        for (int t = 1; t <= 20; t++)
        {
            var grads = Parameters.ToDictionary(p => p.Name, p => Rand(random, p, t % 3 == 0 ? 5 : 0.5).Select(x => (double)(float)x).ToArray());
            double maxNorm = t % 2 == 0 ? 1.0 : 0;
            double gradScale = GradScaleAt(t);
            var g = ScaleAndClip(grads, gradScale, maxNorm);
            foreach (var p in Parameters)
            {
                // torch.optim.SGD: d = g + wd * p; buf = d on the first step, else momentum * buf + d; p -= lr * buf.
                var P = reference[p.Name];
                var d = g[p.Name].Select((x, i) => x + weightDecay * P[i]).ToArray();
                if (momentum > 0) d = buffers[p.Name] = buffers[p.Name] is { } buf ? buf.Select((x, i) => momentum * x + d[i]).ToArray() : d;
                for (int i = 0; i < P.Length; i++) P[i] -= lr * d[i];
            }
            var feeds = new Dictionary<string, HostTensor>
            {
                [O.LearningRate] = S(lr), [O.WeightDecay] = S(weightDecay), [O.MaxGradNorm] = S(maxNorm), [O.GradScale] = S(gradScale),
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
        foreach (var p in Parameters) AssertClose(reference[p.Name], graph[p.Name], p.Name);
    }
}
