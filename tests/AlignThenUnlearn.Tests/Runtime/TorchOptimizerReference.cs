namespace AlignThenUnlearn.Tests.Runtime;

/// <summary>torch.optim's update rules in plain C# double precision, the reference for the optimizer graphs and the
/// optimizer that runs them. Tensors are flat arrays keyed by parameter name.</summary>
public sealed class TorchOptimizerReference
{
    public Dictionary<string, double[]> Parameters { get; }
    public Dictionary<string, double[]> ExpAvg { get; }
    public Dictionary<string, double[]> ExpAvgSq { get; }
    /// <summary>torch's momentum buffers: absent until the first step, which sets buf = d.</summary>
    public Dictionary<string, double[]?> MomentumBuffer { get; }
    public int StepsTaken { get; private set; }

    public TorchOptimizerReference(Dictionary<string, double[]> parameters)
    {
        Parameters = parameters.ToDictionary(kv => kv.Key, kv => (double[])kv.Value.Clone());
        ExpAvg = parameters.ToDictionary(kv => kv.Key, kv => new double[kv.Value.Length]);
        ExpAvgSq = parameters.ToDictionary(kv => kv.Key, kv => new double[kv.Value.Length]);
        MomentumBuffer = parameters.ToDictionary(kv => kv.Key, kv => (double[]?)null);
    }

    public static double Norm(Dictionary<string, double[]> grads) => Math.Sqrt(grads.Values.Sum(g => g.Sum(x => x * x)));

    /// <summary>Gradients multiplied by <paramref name="gradScale"/> (as dividing the loss of each micro-batch would),
    /// then clip_grad_norm_: total 2-norm over all gradients, scaled by min(1, max / (norm + 1e-6)).</summary>
    public static Dictionary<string, double[]> ScaleAndClip(Dictionary<string, double[]> grads, double gradScale, double maxNorm)
    {
        var scaled = grads.ToDictionary(kv => kv.Key, kv => kv.Value.Select(x => x * gradScale).ToArray());
        double norm = Norm(scaled);
        double clip = maxNorm > 0 ? Math.Min(1, maxNorm / (norm + 1e-6)) : 1;
        return scaled.ToDictionary(kv => kv.Key, kv => kv.Value.Select(x => x * clip).ToArray());
    }

    /// <summary>clip_grad_norm_ then torch.optim.AdamW.step().</summary>
    public void AdamWStep(Dictionary<string, double[]> grads, double lr, double b1, double b2, double eps, double weightDecay, double gradScale = 1, double maxNorm = 0)
    {
        int t = ++StepsTaken;
        var g = ScaleAndClip(grads, gradScale, maxNorm);
        foreach (var name in Parameters.Keys)
        {
            var (P, M, V, G) = (Parameters[name], ExpAvg[name], ExpAvgSq[name], g[name]);
            for (int i = 0; i < P.Length; i++)
            {
                P[i] *= 1 - lr * weightDecay;
                M[i] = b1 * M[i] + (1 - b1) * G[i];
                V[i] = b2 * V[i] + (1 - b2) * G[i] * G[i];
                double mHat = M[i] / (1 - Math.Pow(b1, t)), vHat = V[i] / (1 - Math.Pow(b2, t));
                P[i] -= lr * mHat / (Math.Sqrt(vHat) + eps);
            }
        }
    }

    /// <summary>clip_grad_norm_ then torch.optim.SGD.step(): d = g + wd * p; buf = d on the first step, else
    /// momentum * buf + d (with momentum); p -= lr * d or lr * buf.</summary>
    public void SgdStep(Dictionary<string, double[]> grads, double lr, double momentum, double weightDecay, double gradScale = 1, double maxNorm = 0)
    {
        StepsTaken++;
        var g = ScaleAndClip(grads, gradScale, maxNorm);
        foreach (var name in Parameters.Keys)
        {
            var P = Parameters[name];
            var d = g[name].Select((x, i) => x + weightDecay * P[i]).ToArray();
            if (momentum > 0) d = MomentumBuffer[name] = MomentumBuffer[name] is { } buf ? buf.Select((x, i) => momentum * x + d[i]).ToArray() : d;
            for (int i = 0; i < P.Length; i++) P[i] -= lr * d[i];
        }
    }

    /// <summary>Norm-wise relative error ‖actual − expected‖ / ‖expected‖ ≤ 1e-6. The graphs compute in float32 and the
    /// reference in double, so single elements that an update drives close to zero carry float32 rounding of the
    /// magnitude-1 values they came from; the norm-wise measure is the standard one for that.</summary>
    public static void AssertClose(double[] expected, float[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        double diff = Math.Sqrt(expected.Zip(actual).Sum(p => (p.First - p.Second) * (p.First - p.Second)));
        double norm = Math.Sqrt(expected.Sum(x => x * x));
        Assert.True(diff <= 1e-6 * norm, $"{what}: relative error {diff / norm:G3} (reference norm {norm:G6})");
    }
}
