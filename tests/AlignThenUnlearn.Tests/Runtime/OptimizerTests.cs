using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Tests.Support;
using R = AlignThenUnlearn.Tests.Runtime.TorchOptimizerReference;

namespace AlignThenUnlearn.Tests.Runtime;

/// <summary>The optimizer wrapper (device buffers, IO binding, ping-pong swaps) against torch.optim's update rules.</summary>
public class OptimizerTests
{
    static readonly (string Name, long[] Shape)[] Trainable = [("w", [3, 4]), ("b", [5])];
    static readonly float[] FrozenValues = [0.5f, -1.25f];

    static Dictionary<string, double[]> RandomFloats(Random random, double scale) =>
        Trainable.ToDictionary(p => p.Name, p => Enumerable.Range(0, (int)p.Shape.Aggregate(1L, (a, d) => a * d))
            .Select(_ => (double)(float)(scale * (2 * random.NextDouble() - 1))).ToArray());

    /// <summary>A store with the trainable parameters at <paramref name="values"/> and a frozen one.</summary>
    static ParameterStore Store(ExecutionDevice device, Dictionary<string, double[]> values)
    {
        var store = new ParameterStore(device);
        foreach (var (name, shape) in Trainable) store.Add(name, values[name].Select(x => (float)x).ToArray(), shape, trainable: true);
        store.Add("frozen", FrozenValues, [2], trainable: false);
        return store;
    }

    static Dictionary<string, DeviceTensor> Upload(ExecutionDevice device, Dictionary<string, double[]> grads) =>
        Trainable.ToDictionary(p => p.Name, p => device.Upload<float>(grads[p.Name].Select(x => (float)x).ToArray(), p.Shape));

    [Fact]
    public void AdamW_steps_with_changing_rate_and_scale_match_torch_and_leave_frozen_parameters_alone()
    {
        var device = TestDevice.Current;
        var random = new Random(3);
        var reference = new R(RandomFloats(random, 1));
        using var store = Store(device, reference.Parameters);
        var settings = new AdamWSettings(LearningRate: 0.05, WeightDecay: 0.01, MaxGradNorm: 1.0);
        using var optimizer = new Optimizer(store, settings);
        for (int t = 1; t <= 6; t++)
        {
            var grads = RandomFloats(random, t % 2 == 0 ? 3 : 0.3);   // clipping acts on the large ones
            double lr = 0.05 / t, scale = 1.0 / t;
            reference.AdamWStep(grads, lr, settings.Beta1, settings.Beta2, settings.Epsilon, settings.WeightDecay, scale, settings.MaxGradNorm);
            var uploaded = Upload(device, grads);
            double norm = optimizer.Step(uploaded, lr, scale);
            foreach (var g in uploaded.Values) g.Dispose();
            Assert.Equal(scale * R.Norm(grads), norm, 1e-5);
        }
        Assert.Equal(6, optimizer.StepsTaken);
        foreach (var (name, _) in Trainable) R.AssertClose(reference.Parameters[name], store.Read(name), name);
        var state = optimizer.State.ToDictionary(s => s.Name, s => device.Download<float>(s.Tensor));
        foreach (var (name, _) in Trainable)
        {
            R.AssertClose(reference.ExpAvg[name], state[OptimizerGraphs.ExpAvg(name)], OptimizerGraphs.ExpAvg(name));
            R.AssertClose(reference.ExpAvgSq[name], state[OptimizerGraphs.ExpAvgSq(name)], OptimizerGraphs.ExpAvgSq(name));
        }
        Assert.Equal(FrozenValues, store.Read("frozen"));
    }

    [Fact]
    public void Sgd_with_momentum_steps_match_torch()
    {
        var device = TestDevice.Current;
        var random = new Random(5);
        var reference = new R(RandomFloats(random, 1));
        using var store = Store(device, reference.Parameters);
        using var optimizer = new Optimizer(store, new SgdSettings(LearningRate: 0.1, Momentum: 0.9, WeightDecay: 0.01));
        for (int t = 1; t <= 5; t++)
        {
            var grads = RandomFloats(random, 1);
            reference.SgdStep(grads, 0.1, 0.9, 0.01, gradScale: 0.5);
            var uploaded = Upload(device, grads);
            optimizer.Step(uploaded, 0.1, gradScale: 0.5);
            foreach (var g in uploaded.Values) g.Dispose();
        }
        foreach (var (name, _) in Trainable) R.AssertClose(reference.Parameters[name], store.Read(name), name);
    }

    [Fact]
    public void A_step_with_a_non_finite_gradient_changes_nothing()
    {
        var device = TestDevice.Current;
        var random = new Random(9);
        using var store = Store(device, RandomFloats(random, 1));
        using var optimizer = new Optimizer(store, new AdamWSettings(LearningRate: 0.1));
        var first = Upload(device, RandomFloats(random, 1));
        optimizer.Step(first, 0.1);
        var before = Trainable.ToDictionary(p => p.Name, p => store.Read(p.Name));
        var stateBefore = optimizer.State.Select(s => device.Download<float>(s.Tensor)).ToList();

        var poisoned = RandomFloats(random, 1);
        poisoned["b"][2] = double.NaN;
        var uploaded = Upload(device, poisoned);
        Assert.True(double.IsNaN(optimizer.Step(uploaded, 0.1)));

        Assert.Equal(1, optimizer.StepsTaken);
        foreach (var (name, _) in Trainable) Assert.Equal(before[name], store.Read(name));
        Assert.Equal(stateBefore, optimizer.State.Select(s => device.Download<float>(s.Tensor)).ToList());
        foreach (var g in first.Values.Concat(uploaded.Values)) g.Dispose();
    }

    [Fact]
    public void A_missing_gradient_is_named()
    {
        using var store = Store(TestDevice.Current, RandomFloats(new Random(1), 1));
        using var optimizer = new Optimizer(store, new SgdSettings(LearningRate: 0.1));
        using var w = TestDevice.Current.Upload<float>(new float[12], [3, 4]);
        var e = Assert.Throws<ArgumentException>(() => optimizer.Step(new Dictionary<string, DeviceTensor> { ["w"] = w }, 0.1));
        Assert.Contains("'b'", e.Message);
    }
    /// <summary>A restarted optimizer steps as a new one with the new settings does: its state back at zero, its step
    /// count (AdamW's bias correction) at 1 again, the new weight decay in force; settings of another graph are refused.</summary>
    [Fact]
    public void A_restarted_optimizer_steps_as_a_new_one_with_its_settings()
    {
        var device = TestDevice.Current;
        var random = new Random(13);
        var start = RandomFloats(random, 1);
        var grads = Enumerable.Range(0, 4).Select(_ => RandomFloats(random, 1)).ToList();
        var (first, second) = (new AdamWSettings(LearningRate: 0.1), new AdamWSettings(LearningRate: 0.05, WeightDecay: 0.1, MaxGradNorm: 0.5));
        void Steps(Optimizer optimizer, IEnumerable<Dictionary<string, double[]>> gradients)
        {
            foreach (var g in gradients)
            {
                var uploaded = Upload(device, g);
                optimizer.Step(uploaded, optimizer.Settings.LearningRate);
                foreach (var t in uploaded.Values) t.Dispose();
            }
        }
        using var restartedStore = Store(device, start);
        using var restarted = new Optimizer(restartedStore, first);
        Steps(restarted, grads.Take(2));
        var middle = Trainable.ToDictionary(p => p.Name, p => restartedStore.Read(p.Name).Select(x => (double)x).ToArray());
        Assert.True(restarted.TryRestart(second));
        Assert.Equal(0, restarted.StepsTaken);
        Steps(restarted, grads.Skip(2));

        using var freshStore = Store(device, middle);
        using var fresh = new Optimizer(freshStore, second);
        Steps(fresh, grads.Skip(2));
        foreach (var (name, _) in Trainable) Assert.Equal(freshStore.Read(name), restartedStore.Read(name));
        Assert.Equal(fresh.State.Select(s => device.Download<float>(s.Tensor)), restarted.State.Select(s => device.Download<float>(s.Tensor)));

        Assert.False(restarted.TryRestart(new SgdSettings(LearningRate: 0.1)));
        Assert.Same(second, restarted.Settings);
        using var sgd = new Optimizer(freshStore, new SgdSettings(LearningRate: 0.1));
        Assert.False(sgd.TryRestart(new SgdSettings(LearningRate: 0.1, Momentum: 0.9)));
        Assert.True(sgd.TryRestart(new SgdSettings(LearningRate: 0.2, WeightDecay: 0.01)));
    }
}
