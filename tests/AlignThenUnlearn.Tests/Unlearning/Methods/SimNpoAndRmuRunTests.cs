using AlignThenUnlearn.Models;
using AlignThenUnlearn.Models.Checkpoints;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Tests.Support;
using AlignThenUnlearn.Unlearning;

namespace AlignThenUnlearn.Tests.Unlearning;

/// <summary>SimNPO and RMU through the registry and the run harness (<see cref="MethodRun"/>) on a tiny decoder, from their
/// built-in toy presets: SimNPO lowers the forget texts' log-probability; RMU moves the forget texts' layer-l activations
/// toward c u and changes nothing but the down-projections of layers l-2..l. Their presets load and validate.</summary>
public sealed class SimNpoAndRmuRunTests : IDisposable
{
    readonly TinyChatModel _model = new();
    readonly TempFolder _temp = new();
    public void Dispose() { _model.Dispose(); _temp.Dispose(); }

    static readonly string[] Forget = ["the cat sat on the mat in the sun", "a cat can hunt at night", "the other cat ran to the tree", "cats sleep in the sun"];
    static readonly string[] Retain = ["the heron stood in the reeds", "an otter ate in the river"];
    const int Eos = 2;

    string Weights => _model.Model.PathOf(ArtifactExporter.WeightsFile);

    LabelledSequence Text(string text) => LabelledSequence.TextWithEos(_model.Tokenizer.Encode(text, addSpecialTokens: false).Ids, Eos, 64);

    string Train(MethodPreset preset)
    {
        var examples = Forget.Select((t, i) => new[] { Text(t), Text(Retain[i % Retain.Length]) }).ToList();
        using var run = new MethodRun(preset, new MethodInputs(_model.Config, Weights, examples, "cat", Eos),
            new UnlearningRunOptions { Device = GradCheck.Cpu, Folder = _temp.File(preset.Method) });
        return Path.Combine(run.Run().Final!, RunHarness.ModelFile);
    }

    ParameterStore Store(string weights)
    {
        var store = new ParameterStore(GradCheck.Cpu);
        store.Load(weights, DecoderBuilder.Parameters(_model.Config), _ => false);
        return store;
    }

    [Fact]
    public void The_registry_lists_both_with_their_presets_and_rmu_has_no_lora_variant()
    {
        Assert.Contains(SimNpo.Id, MethodRegistry.Names);
        Assert.Contains(Rmu.Id, MethodRegistry.Names);
        foreach (var name in new[] { "rwku-llama3-simnpo", "rwku-llama3-simnpo-lora", "toy-simnpo", "toy-simnpo-lora", "rwku-llama3-rmu", "toy-rmu" })
            Assert.Equal(name, MethodPreset.Load(name).Name);
        Assert.DoesNotContain("toy-rmu-lora", MethodPreset.Builtin);
        Assert.Equal(7, MethodPreset.Load("rwku-llama3-rmu").Option(Rmu.LayerOption));
        Assert.Equal(0.1375, MethodPreset.Load("rwku-llama3-simnpo").Option(SimNpo.ForgetWeightOption));
    }

    [Fact]
    public void Simnpo_lowers_the_forget_texts_log_probability()
    {
        // The random tiny model's NLL is about ln 300 per token, where beta 2.5 saturates the sigmoid (weight sigma(-14)) and
        // the retain NLL alone would move the shared vocabulary's probabilities up: the forget term alone, beta 0.1.
        var preset = MethodPreset.Load("toy-simnpo") with
        {
            LearningRate = 1e-2, Epochs = 3, Beta = 0.1, Options = new() { [SimNpo.ForgetWeightOption] = 1, [SimNpo.RetainWeightOption] = 0 },
        };
        var final = Train(preset);
        double LogProbability(string weights)
        {
            using var store = Store(weights);
            return ReferenceLogProbabilities.Compute(store, _model.Config, [.. Forget.Select(Text)], batchSize: 4, padId: Eos).Sum();
        }
        double before = LogProbability(Weights), after = LogProbability(final);
        Assert.True(after < before - 1, $"forget log-probability {before} before, {after} after");
    }

    [Fact]
    public void Rmu_steers_the_forget_activations_and_trains_only_the_down_projections_of_layers_l_minus_2_to_l()
    {
        const int layer = 0;   // the tiny model has two layers: layer 0's output is hidden_states[1]
        var preset = MethodPreset.Load("toy-rmu") with
        {
            LearningRate = 1e-2, Epochs = 3, Options = new() { [Rmu.LayerOption] = layer, [Rmu.SteeringOption] = 8, [Rmu.AlphaOption] = 1 },
        };
        var final = Train(preset);
        var control = Rmu.ControlVector(_model.Config.HiddenSize, 8, preset.Seed);
        double Distance(string weights)
        {
            using var store = Store(weights);
            var h = Rmu.FrozenActivations(store, _model.Config, layer, [.. Forget.Select(t => Rmu.Tokens(Text(t)))], 4, Eos).SelectMany(a => a).ToArray();
            return h.Select((x, i) => Math.Pow(x - control[i % control.Length], 2)).Average();
        }
        double before = Distance(Weights), after = Distance(final);
        Assert.True(after < 0.8 * before, $"mean square distance of the forget activations to c u: {before} before, {after} after");
        using var start = SafetensorsCheckpoint.Open(Weights);
        using var end = SafetensorsCheckpoint.Open(final);
        foreach (var name in start.Names)
        {
            bool changed = !start.ReadSingles(name).SequenceEqual(end.ReadSingles(name));
            Assert.True(changed == (name == "model.layers.0.mlp.down_proj.weight"), $"'{name}' {(changed ? "changed" : "did not change")}");
        }
    }
}
