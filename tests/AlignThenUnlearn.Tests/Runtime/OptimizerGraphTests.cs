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
    [Fact]
    public void Packs_join_runs_of_small_parameters_in_order_and_leave_large_ones_alone()
    {
        const long big = O.PackedParameterElements + 1, small = O.PackedParameterElements;
        OptimizerParameter P(string name, long elements) => new(name, [elements]);
        var packs = O.Packs([P("a", 10), P("b", 3), P("big", big), P("c", 5), P("d", small)]);
        Assert.Equal(["a,b", "big", "c,d"], packs.Select(pack => string.Join(",", pack.Select(p => p.Name))));
        // A pack stops at PackElements: that many elements' worth of the largest packed parameters fill one, one more
        // opens the next.
        int fill = (int)(O.PackElements / small);
        var full = Enumerable.Range(0, fill + 1).Select(i => P($"p{i}", small)).ToList();
        Assert.Equal([fill, 1], O.Packs(full).Select(pack => pack.Count));
        Assert.All(O.Packs(full, packedParameterElements: 0), pack => Assert.Single(pack));
    }

    /// <summary>The update is element-wise and the norm sums per-parameter squares in parameter order either way, so a
    /// packed graph gives the unpacked one's values bit for bit, with far fewer nodes.</summary>
    [Theory]
    [InlineData("adamw")]
    [InlineData("sgd")]
    public void Packed_and_unpacked_graphs_give_the_same_bits(string kind)
    {
        OptimizerParameter[] parameters = [new("w", [3, 4]), new("b", [5]), new("s", []), new("t", [2, 1, 3])];
        var random = new Random(5);
        var feeds = new Dictionary<string, HostTensor>
        {
            [O.LearningRate] = S(0.05), [O.WeightDecay] = S(0.01), [O.MaxGradNorm] = S(1.0), [O.GradScale] = S(0.5),
            [O.Beta1] = S(0.9), [O.Beta2] = S(0.999), [O.Epsilon] = S(1e-8), [O.Step] = S(3), [O.Momentum] = S(0.9),
        };
        foreach (var p in parameters)
            foreach (var name in new[] { p.Name, O.Grad(p.Name), O.ExpAvg(p.Name), O.ExpAvgSq(p.Name), O.MomentumBuffer(p.Name) })
                feeds[name] = F(Rand(random, p, name == O.Grad(p.Name) ? 5 : 1).Select(Math.Abs).ToArray(), p.Shape);
        var packed = kind == "adamw" ? O.AdamW(parameters) : O.Sgd(parameters, momentum: true);
        var alone = kind == "adamw" ? O.AdamW(parameters, packedParameterElements: 0) : O.Sgd(parameters, momentum: true, packedParameterElements: 0);
        Assert.Equal(parameters.Length, O.Packs(parameters, 0).Count);
        Assert.Single(O.Packs(parameters));
        int Arithmetic(global::Onnx.ModelProto m) => m.Graph.Node.Count(n => n.OpType is "Add" or "Sub" or "Mul" or "Div" or "Sqrt");
        // Per pack, counted by hand from the update rules: AdamW 15 (clip 1, m 3, v 4, denominator 3, parameter 4), SGD
        // with momentum and weight decay 7 (clip 1, decay 2, momentum 2, parameter 2); four packs become one.
        int perPack = kind == "adamw" ? 15 : 7;
        Assert.Equal((parameters.Length - 1) * perPack, Arithmetic(alone) - Arithmetic(packed));
        // Alone, each update's last node writes its graph output itself (only the norm is named by an Identity).
        Assert.Single(alone.Graph.Node, n => n.OpType == "Identity");
        Dictionary<string, HostTensor> Run(global::Onnx.ModelProto model)
        {
            using var session = GradCheck.Cpu.Open(model);
            var inputs = model.Graph.Input.Select(i => i.Name).ToHashSet();
            return ExecutionDevice.Run(session, feeds.Where(kv => inputs.Contains(kv.Key)).ToDictionary());
        }
        var (a, b) = (Run(packed), Run(alone));
        Assert.Equal(b.Keys.Order(), a.Keys.Order());
        foreach (var (name, value) in b)
        {
            Assert.Equal(value.Shape, a[name].Shape);
            Assert.Equal(value.Floats, a[name].Floats);
        }
        Assert.NotEqual(feeds["w"].Floats, a[O.Next("w")].Floats);
    }
}
