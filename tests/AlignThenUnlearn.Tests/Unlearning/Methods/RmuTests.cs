using AlignThenUnlearn.Models;
using AlignThenUnlearn.Models.Checkpoints;
using AlignThenUnlearn.Onnx;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Tests.Models;
using AlignThenUnlearn.Tests.Support;
using AlignThenUnlearn.Unlearning;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Tests.Unlearning;

/// <summary>RMU (centerforaisafety/wmdp, rmu/unlearn.py): the loss against mean squares worked out in C#, its gradients
/// (with respect to the activations, and through the decoder to the trained down-projections) against central
/// differences, the authors' choice of trained parameters and control vector, the frozen activations (the retain term is
/// 0 at the starting weights, the forget term the distance of the model's own activations to c u), and a few training
/// steps that move the forget activations toward c u while changing nothing but the down-projections of layers l-2..l.</summary>
public sealed class RmuTests : IDisposable
{
    readonly TempFolder _temp = new();
    public void Dispose() => _temp.Dispose();

    // Two rows of three positions and two coordinates: row 0 a forget row of two tokens, row 1 a retain row of three.
    static readonly double[] Activations = [0.5, -1, 2, 0.25, 9, 9, /**/ 1, 2, -0.5, 0, 3, -2];
    static readonly float[] ForgetTokens = [1, 1, 0, 0, 0, 0], RetainTokens = [0, 0, 0, 1, 1, 1];
    static readonly float[] Frozen = [0, 0, 0, 0, 0, 0, /**/ 1.5f, 2, -0.5f, 1, 2, -2];
    static readonly float[] Control = [3, 4];

    static (global::Onnx.ModelProto Model, string Loss) LossGraph(double alpha)
    {
        var b = new GraphBuilder("rmu");
        var loss = Rmu.Loss(b, b.Input("h", DataType.Double, 2, 3, 2), b.Input("forget", DataType.Float, 2, 3), b.Input("retain", DataType.Float, 2, 3),
            b.Input("frozen", DataType.Float, 2, 3, 2), b.Input("control", DataType.Float, 2), alpha);
        b.Output(loss, DataType.Double);
        return (b.ToModel(), loss);
    }

    static Dictionary<string, HostTensor> LossInputs() => new()
    {
        ["h"] = HostTensor.Of(Activations, 2, 3, 2), ["forget"] = HostTensor.Of(ForgetTokens, 2, 3), ["retain"] = HostTensor.Of(RetainTokens, 2, 3),
        ["frozen"] = HostTensor.Of(Frozen, 2, 3, 2), ["control"] = HostTensor.Of(Control, 2),
    };

    [Fact]
    public void Loss_is_the_forget_mean_square_to_the_control_vector_plus_alpha_times_the_retain_mean_square_to_the_frozen_model()
    {
        var (model, loss) = LossGraph(alpha: 10);
        // Forget tokens (0.5, -1) and (2, 0.25) against (3, 4): squares 6.25 + 25 and 1 + 14.0625, each token's mean over the two
        // coordinates, then the mean over the two tokens; position 2 (9, 9) is padding and does not count.
        double forget = ((6.25 + 25) / 2 + (1 + 14.0625) / 2) / 2;
        // Retain tokens (1, 2) (-0.5, 0) (3, -2) against (1.5, 2) (-0.5, 1) (2, -2): squares 0.25, 1 and 1.
        double retain = (0.25 / 2 + 1.0 / 2 + 1.0 / 2) / 3;
        Assert.Equal(forget + 10 * retain, GradCheck.Cpu.Run(model, LossInputs(), [loss])[loss].Doubles[0], 1e-12);
    }

    [Fact]
    public void Gradient_with_respect_to_the_activations_matches_central_differences()
    {
        var (model, loss) = LossGraph(alpha: 7);
        GradCheck.Check(model, loss, LossInputs(), ["h"]);
    }

    [Fact]
    public void Gradients_of_the_trained_down_projections_through_the_decoder_match_central_differences()
    {
        var config = DecoderBuilderTests.SmallConfig(ModelFamily.Llama);
        const int layer = 1;
        var (forward, decoder) = Rmu.Forward(config, layer, alpha: 3, DataType.Double);
        var values = RandomInit.Create([.. decoder.Parameters.Select(p => p with { ElementType = DataType.Double })], seed: 4, std: 0.3);
        var inputs = values.ToDictionary(kv => kv.Key, kv => new HostTensor(kv.Value.Data, kv.Value.Shape));
        var random = new Random(2);
        inputs[DecoderGraph.InputIds] = HostTensor.Of([3L, 7, 11, 2, 5, 8, 13, 1], 2, 4);
        inputs[Rmu.ForgetTokens] = HostTensor.Of([1f, 1, 1, 0, 0, 0, 0, 0], 2, 4);
        inputs[Rmu.RetainTokens] = HostTensor.Of([0f, 0, 0, 0, 1, 1, 1, 1], 2, 4);
        inputs[Rmu.FrozenRetain] = HostTensor.Of([.. Enumerable.Range(0, 2 * 4 * config.HiddenSize).Select(_ => (float)random.NextDouble())], 2, 4, config.HiddenSize);
        inputs[Rmu.Control] = HostTensor.Of(Rmu.ControlVector(config.HiddenSize, 2, seed: 1), config.HiddenSize);
        GradCheck.Check(forward, Rmu.LossName, inputs, Rmu.TrainedParameters(config, layer), rtol: 1e-5, atol: 1e-8);
    }

    [Fact]
    public void The_trained_parameters_are_the_down_projections_of_layers_l_minus_two_to_l()
    {
        var config = DecoderBuilderTests.SmallConfig(ModelFamily.Llama) with { NumHiddenLayers = 32 };
        // The authors' layer_id 7, layer_ids 5,6,7, param_ids 6 (the seventh parameter of a Llama decoder layer: down_proj).
        Assert.Equal(["model.layers.5.mlp.down_proj.weight", "model.layers.6.mlp.down_proj.weight", "model.layers.7.mlp.down_proj.weight"],
            Rmu.TrainedParameters(config, 7));
        Assert.Equal(["model.layers.0.mlp.down_proj.weight", "model.layers.1.mlp.down_proj.weight"], Rmu.TrainedParameters(config, 1));
        Assert.All(Rmu.TrainedParameters(config, 7), name => Assert.Contains(DecoderBuilder.Parameters(config), p => p.Name == name));
        Assert.Throws<ArgumentOutOfRangeException>(() => Rmu.TrainedParameters(config, 31));   // hidden_states[32] is after the final norm
        Assert.Throws<ArgumentOutOfRangeException>(() => Rmu.TrainedParameters(config, -1));
    }

    [Fact]
    public void The_control_vector_is_a_nonnegative_direction_scaled_to_the_steering_coefficient_and_fixed_by_its_seed()
    {
        var u = Rmu.ControlVector(4096, 6.5, seed: 3);
        Assert.Equal(6.5, Math.Sqrt(u.Sum(x => (double)x * x)), 1e-4);
        Assert.All(u, x => Assert.True(x >= 0, "torch.rand draws from [0, 1)"));
        Assert.True(u.Max() > 2 * u.Average(), "the coordinates are random, not constant");
        Assert.Equal(u, Rmu.ControlVector(4096, 6.5, seed: 3));
        Assert.NotEqual(u, Rmu.ControlVector(4096, 6.5, seed: 4));
    }

    static readonly int[][] ForgetTexts = [[1, 40, 41, 42, 43], [1, 44, 45, 46], [1, 47, 40, 42, 44, 46], [1, 41, 43]];
    static readonly int[][] RetainTexts = [[1, 60, 61, 62], [1, 63, 64, 65, 66, 67], [1, 68, 69], [1, 60, 64, 68, 62]];

    (ParameterStore Store, DecoderConfig Config) TinyStore(IEnumerable<string> trainable)
    {
        var config = HfConfig.Load(RepositoryFiles.Path("models", "tiny-llama-gqa.json")) with { NumHiddenLayers = 3 };
        var folder = _temp.File("weights");
        if (!Directory.Exists(folder)) RandomCheckpoint.Write(config, folder, seed: 9, std: 0.2);
        var store = new ParameterStore(GradCheck.Cpu);
        var names = trainable.ToHashSet();
        store.Load(Path.Combine(folder, SafetensorsCheckpoint.SingleFileName), DecoderBuilder.Parameters(config), names.Contains);
        return (store, config);
    }

    static double MeanSquareTo(float[] activations, float[] control) =>
        activations.Select((x, i) => Math.Pow(x - control[i % control.Length], 2)).Average();

    [Fact]
    public void At_the_starting_weights_the_retain_term_is_zero_and_the_forget_term_is_the_distance_to_the_control_vector()
    {
        const int layer = 1;
        var (store, config) = TinyStore([]);
        using var _ = store;
        var control = Rmu.ControlVector(config.HiddenSize, 4, seed: 2);
        var frozenRetain = Rmu.FrozenActivations(store, config, layer, RetainTexts, batchSize: 3, padId: 2);
        var forgetActivations = Rmu.FrozenActivations(store, config, layer, ForgetTexts, batchSize: 2, padId: 2);
        var batches = new Rmu.Batches([.. ForgetTexts.Zip(RetainTexts)], frozenRetain, control, batchSize: 4, seed: 1, padId: 2);
        using var session = new ForwardSession(store, Rmu.Forward(config, layer, alpha: 100).Model);
        double loss = session.Run(batches.Next(), [Rmu.LossName])[Rmu.LossName].AsDoubles()[0];
        // Every forget token counts once: the mean over all forget tokens and coordinates of (h - c u)^2.
        double expected = MeanSquareTo([.. forgetActivations.SelectMany(a => a)], control);
        Assert.Equal(expected, loss, 1e-4 * expected);
    }

    [Fact]
    public void Training_moves_the_forget_activations_toward_the_control_vector_and_changes_only_the_trained_projections()
    {
        const int layer = 1;
        var config0 = HfConfig.Load(RepositoryFiles.Path("models", "tiny-llama-gqa.json")) with { NumHiddenLayers = 3 };
        var trained = Rmu.TrainedParameters(config0, layer);
        var (store, config) = TinyStore(trained);
        using var _ = store;
        var before = DecoderBuilder.Parameters(config).ToDictionary(p => p.Name, p => store.Read(p.Name));
        var control = Rmu.ControlVector(config.HiddenSize, 4, seed: 2);
        double Distance() => MeanSquareTo([.. Rmu.FrozenActivations(store, config, layer, ForgetTexts, 4, 2).SelectMany(a => a)], control);
        double start = Distance();
        var frozenRetain = Rmu.FrozenActivations(store, config, layer, RetainTexts, batchSize: 4, padId: 2);
        var batches = new Rmu.Batches([.. ForgetTexts.Zip(RetainTexts)], frozenRetain, control, batchSize: 2, seed: 1, padId: 2);
        using (var trainer = new Trainer(store, Rmu.Graph(config, layer, alpha: 1, store.Trainable), Rmu.LossName,
            new AdamWSettings(LearningRate: 1e-2, WeightDecay: 0, MaxGradNorm: 0), new TrainerOptions { Steps = 10 }))
            trainer.Run(batches);
        Assert.True(Distance() < 0.5 * start, $"the forget activations' mean square distance to c u fell from {start} to {Distance()}");
        foreach (var p in DecoderBuilder.Parameters(config))
        {
            bool changed = !store.Read(p.Name).SequenceEqual(before[p.Name]);
            Assert.True(changed == trained.Contains(p.Name), $"{p.Name} {(changed ? "changed" : "did not change")}");
        }
    }
}
