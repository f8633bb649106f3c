using System.Globalization;
using System.Text.Json.Nodes;
using AlignThenUnlearn.Autodiff;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Onnx;
using AlignThenUnlearn.Runtime;
using Onnx;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Unlearning;

/// <summary>RMU, Representation Misdirection for Unlearning (Li et al., 2024, "The WMDP Benchmark";
/// centerforaisafety/wmdp, rmu/unlearn.py). At decoder layer l (the authors' <c>layer_id</c>, 0-based, whose output is
/// Hugging Face's <c>hidden_states[l+1]</c>) the activations on forget text are pushed toward a fixed random vector u
/// scaled by the steering coefficient c, and the activations on retain text are held at the frozen model's:
/// <code>
/// loss = mse(h_l(forget), c u) + alpha * mse(h_l(retain), h_l^frozen(retain))      u = rand(hidden) / |rand(hidden)|
/// </code>
/// with u drawn once, uniform in [0, 1) per coordinate (torch.rand, not a Gaussian), and only <c>mlp.down_proj.weight</c>
/// of layers l-2..l trained (the authors' <c>layer_ids 5,6,7</c>, <c>param_ids 6</c>: the seventh parameter of a
/// Llama/Mistral decoder layer). The frozen model's retain activations are computed once before training
/// (<see cref="FrozenActivations"/>), so no second model is resident, and the training graph stops at layer l.
/// Each mse is a mean over the tokens of the batch and the hidden coordinates; the authors' mse also averages the
/// left-padding positions of a batch, which here are masked (the same value for rows of equal length).</summary>
public sealed class Rmu : TrainedMethod
{
    public const string Id = "rmu";
    public override string Name => Id;
    public override string DisplayName => "RMU";
    public override string Summary => "steer layer-l activations on the forget corpus to a random vector, keep them on other targets' texts";

    /// <summary>The authors' zephyr-7b setting (WMDP README): layer 7, c 6.5, alpha 1200 (lr 5e-5, batches of 4: the presets).</summary>
    public const int Layer = 7;
    public const double SteeringCoefficient = 6.5, Alpha = 1200;

    /// <summary>A preset's <c>"options"</c>: the authors' <c>layer_id</c>, <c>steering_coeffs</c> and <c>alpha</c>.</summary>
    public const string LayerOption = "layer", SteeringOption = "steering_coefficient", AlphaOption = "alpha";

    public override IReadOnlyDictionary<string, double> Options { get; } = new Dictionary<string, double>
    {
        [LayerOption] = Layer, [SteeringOption] = SteeringCoefficient, [AlphaOption] = Alpha,
    };

    /// <summary>The authors train the down-projections themselves: no LoRA presets, no LoRA run in `atu toy`.</summary>
    public override IReadOnlyList<string> PresetNames => [.. PresetFamilies.Select(family => PresetName(family, lora: false))];

    /// <summary>GradDiff's examples: each forget text with a text of another target as its retain text (the authors'
    /// retain corpus is wikitext; RWKU ships none, and other people's biographies are the nearest).</summary>
    public override List<LabelledSequence[]> Examples(MethodPreset preset, ITargetTexts texts, ExampleTokenizer tokens) =>
        MethodRegistry.GetTrained(GradientDifference.Id).Examples(preset, texts, tokens);

    /// <summary>Trains only <see cref="TrainedParameters"/>; the frozen model's retain activations and the control vector
    /// (drawn from the preset's seed) are fixed before the first step. The activations stay in host memory, 4 bytes per
    /// retain token and coordinate (16 KB a token for Llama-3-8B).</summary>
    public override MethodTraining Prepare(MethodSetup setup)
    {
        var (preset, config, store) = (setup.Preset, setup.Config, setup.Store);
        if (preset.Lora) throw new ArgumentException($"preset '{preset.Name}': RMU trains the down-projections of layers l-2..l themselves, as its authors do; it has no LoRA variant");
        double layerOption = preset.Option(LayerOption);
        if (layerOption != Math.Floor(layerOption)) throw new ArgumentException($"preset '{preset.Name}': option {LayerOption} {layerOption} is not a layer number");
        int layer = (int)layerOption;
        store.SetTrainable(TrainedParameters(config, layer));
        var examples = setup.Examples.Select((e, i) => e.Length == 2 ? (Forget: Tokens(e[0]), Retain: Tokens(e[1]))
            : throw new ArgumentException($"RMU example {i} holds {e.Length} sequences, not a forget text and a retain text")).ToList();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        // One forward pass per distinct retain text (GradDiff's pairs cycle through a few other targets' texts).
        var distinct = examples.Select(e => e.Retain).DistinctBy(t => string.Join(',', t)).ToList();
        var activations = FrozenActivations(store, config, layer, distinct, preset.BatchSize, setup.PadId);
        var byText = distinct.Select((t, i) => (Key: string.Join(',', t), Value: activations[i])).ToDictionary(p => p.Key, p => p.Value);
        setup.Log(string.Create(CultureInfo.InvariantCulture, $"frozen activations at layer {layer} of {distinct.Count} retain texts ({clock.Elapsed.TotalSeconds:0.0} s)"));
        var control = ControlVector(config.HiddenSize, preset.Option(SteeringOption), preset.Seed);
        var batches = new Batches(examples, [.. examples.Select(e => byText[string.Join(',', e.Retain)])], control, preset.BatchSize, setup.DataSeed, setup.PadId);
        return new MethodTraining(Graph(config, layer, preset.Option(AlphaOption), store.Trainable), LossName, batches);
    }

    /// <summary>How many layers below l are trained besides l (layers l-2..l).</summary>
    public const int LayersBelow = 2;
    public const string TrainedProjection = "mlp.down_proj.weight";

    /// <summary>Graph inputs besides <c>input_ids</c>: masks [batch, seq] of the forget rows' and the retain rows' tokens,
    /// the frozen model's activations [batch, seq, hidden] (zero outside the retain tokens), and c u [hidden].</summary>
    public const string ForgetTokens = "forget_tokens", RetainTokens = "retain_tokens", FrozenRetain = "frozen_retain_activations",
        Control = "control_vector", LossName = "loss";

    /// <summary>The parameters RMU trains with steering layer <paramref name="layer"/>: down_proj of layers max(0, l-2)..l.</summary>
    public static IReadOnlyList<string> TrainedParameters(DecoderConfig config, int layer)
    {
        CheckLayer(config, layer);
        return [.. Enumerable.Range(Math.Max(0, layer - LayersBelow), Math.Min(layer, LayersBelow) + 1)
            .Select(i => string.Create(CultureInfo.InvariantCulture, $"model.layers.{i}.{TrainedProjection}"))];
    }

    static void CheckLayer(DecoderConfig config, int layer)
    {
        // The last layer's output is never a hidden state of its own (hidden_states[n] is after the final norm).
        if (layer < 0 || layer >= config.NumHiddenLayers - 1)
            throw new ArgumentOutOfRangeException(nameof(layer), layer, $"RMU steers the output of a decoder layer 0..{config.NumHiddenLayers - 2} of this {config.NumHiddenLayers}-layer model");
    }

    /// <summary>c u with u = r / |r|, r uniform in [0, 1) per coordinate (the authors' torch.rand), drawn from <paramref name="seed"/>.</summary>
    public static float[] ControlVector(int hiddenSize, double coefficient, long seed)
    {
        var random = new SplitMix64(SplitMix64.Mix((ulong)seed));
        var r = Enumerable.Range(0, hiddenSize).Select(_ => random.NextDouble()).ToArray();
        double norm = Math.Sqrt(r.Sum(x => x * x));
        return [.. r.Select(x => (float)(x / norm * coefficient))];
    }

    /// <summary><c>mse(h on forget tokens, control) + alpha * mse(h on retain tokens, frozen)</c> from activations
    /// [batch, seq, hidden], token masks [batch, seq], frozen activations [batch, seq, hidden] and the control vector [hidden].</summary>
    public static string Loss(GraphBuilder b, string activations, string forgetTokens, string retainTokens, string frozen, string control, double alpha)
    {
        var type = Losses.ComputeType(b, activations);
        var h = Losses.As(b, activations, type);
        string MeanSquare(string target)
        {
            var d = b.Sub(h, Losses.As(b, target, type));
            return b.ReduceMean(b.Mul(d, d), [-1], keepDims: false);                   // [batch, seq]
        }
        var forget = Losses.WeightedMean(b, MeanSquare(control), forgetTokens, MicroBatching.TotalInput(b, BatchCount.Positions, forgetTokens));
        var retain = Losses.WeightedMean(b, MeanSquare(frozen), retainTokens, MicroBatching.TotalInput(b, BatchCount.Positions, retainTokens));
        return b.Add(forget, b.Mul(b.Scalar(alpha, type), retain));
    }

    /// <summary>The decoder's training lowering up to <c>hidden_states[layer+1]</c> and <see cref="Loss"/> on it as
    /// <see cref="LossName"/>, with the gradients of <paramref name="trainable"/>.</summary>
    public static GradientGraph Graph(DecoderConfig config, int layer, double alpha, IEnumerable<string> trainable) =>
        Gradients.Build(Forward(config, layer, alpha).Model, LossName, trainable);

    /// <summary>The forward graph of <see cref="Graph"/> (its parameters in <paramref name="elementType"/>).</summary>
    public static (ModelProto Model, DecoderGraph Decoder) Forward(DecoderConfig config, int layer, double alpha, DataType elementType = DataType.Float)
    {
        CheckLayer(config, layer);
        var decoder = DecoderBuilder.Build(config, DecoderGraphOptions.UpToHiddenState(layer + 1, elementType));
        var model = decoder.Model.Clone();
        model.Graph.Output.Clear();   // the hidden state feeds the loss; as an output ONNX Runtime would copy it out each step
        var b = new GraphBuilder(model.Graph, Opset.DefaultDomainVersion(model));
        string Mask(string name) => b.Input(name, DataType.Float, DecoderGraph.Batch, DecoderGraph.Sequence);
        var forget = Mask(ForgetTokens);
        var retain = Mask(RetainTokens);
        var frozen = b.Input(FrozenRetain, DataType.Float, DecoderGraph.Batch, DecoderGraph.Sequence, config.HiddenSize);
        var control = b.Input(Control, DataType.Float, config.HiddenSize);
        var value = Loss(b, decoder.HiddenStates[layer + 1], forget, retain, frozen, control, alpha);
        var loss = b.Node("Identity", [value], 1, name: "Loss", outputNames: [LossName])[0];
        b.Output(loss, Losses.TypeOf(b, loss));
        return (model, decoder);
    }

    /// <summary>The tokens RMU reads of a labelled sequence: the text without the EOS that RWKU's rows append and do not
    /// label (the authors' tokenizer adds the BOS only).</summary>
    public static int[] Tokens(LabelledSequence s) => s.Tokens[..Math.Min(s.Tokens.Length, s.LabelEnd)];

    /// <summary>The frozen model's <c>hidden_states[layer+1]</c> of each sequence, [tokens x hidden] row-major, from the
    /// parameters in <paramref name="store"/> before training (one forward-only session, batches of <paramref name="batchSize"/>).</summary>
    public static float[][] FrozenActivations(ParameterStore store, DecoderConfig config, int layer, IReadOnlyList<int[]> sequences, int batchSize, int padId = 0)
    {
        CheckLayer(config, layer);
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "must be positive");
        var decoder = DecoderBuilder.Build(config, DecoderGraphOptions.UpToHiddenState(layer + 1));
        var output = decoder.HiddenStates[layer + 1];
        using var session = new ForwardSession(store, decoder.Model);
        var result = new float[sequences.Count][];
        int hidden = config.HiddenSize;
        for (int start = 0; start < sequences.Count; start += batchSize)
        {
            var rows = sequences.Skip(start).Take(batchSize).ToList();
            var (ids, length) = PaddedIds(rows, padId);
            var h = session.Run(new Dictionary<string, HostTensor> { [DecoderGraph.InputIds] = ids }, [output])[output].Floats;
            for (int r = 0; r < rows.Count; r++)
                result[start + r] = h.AsSpan(r * length * hidden, rows[r].Length * hidden).ToArray();   // right padding: the tokens come first
        }
        return result;
    }

    static (HostTensor Ids, int Length) PaddedIds(IReadOnlyList<int[]> rows, int padId)
    {
        int length = rows.Max(r => r.Length);
        var ids = new long[rows.Count * length];
        Array.Fill(ids, padId);
        for (int r = 0; r < rows.Count; r++)
            for (int t = 0; t < rows[r].Length; t++) ids[r * length + t] = rows[r][t];
        return (HostTensor.Of(ids, rows.Count, length), length);
    }

    /// <summary>RMU's batches: each example is a forget text and the retain text drawn with it (GradDiff's pairs); a batch of
    /// B examples holds the B forget rows, then the B retain rows, right-padded, with their token masks, the frozen
    /// activations under the retain rows and the control vector. The order is reproducible and checkpointed.</summary>
    public sealed class Batches : IBatchSource
    {
        readonly IReadOnlyList<(int[] Forget, int[] Retain)> _examples;
        readonly IReadOnlyList<float[]> _frozen;
        readonly float[] _control;
        readonly int _hidden, _padId;
        readonly ShuffledBatches _batches;

        /// <param name="frozenRetain">Per example, the frozen activations of its retain text (<see cref="FrozenActivations"/>).</param>
        public Batches(IReadOnlyList<(int[] Forget, int[] Retain)> examples, IReadOnlyList<float[]> frozenRetain, float[] control, int batchSize, long seed, int padId = 0)
        {
            if (examples.Count == 0) throw new ArgumentException("no RMU examples to train on");
            if (frozenRetain.Count != examples.Count) throw new ArgumentException($"{frozenRetain.Count} frozen activations for {examples.Count} examples");
            int hidden = control.Length;
            for (int i = 0; i < examples.Count; i++)
            {
                if (examples[i].Forget.Length == 0 || examples[i].Retain.Length == 0) throw new ArgumentException($"RMU example {i} has an empty text");
                if (frozenRetain[i].Length != (long)examples[i].Retain.Length * hidden)
                    throw new ArgumentException($"RMU example {i}: {frozenRetain[i].Length} frozen activations for {examples[i].Retain.Length} retain tokens of {hidden} coordinates");
            }
            (_examples, _frozen, _control, _hidden, _padId) = (examples, frozenRetain, control, hidden, padId);
            _batches = new ShuffledBatches([.. examples.Select(e => e.Forget.Append(-1).Concat(e.Retain).ToArray())], batchSize, seed);
        }

        public IReadOnlyDictionary<string, HostTensor> Next()
        {
            var rows = _batches.NextRows();
            var sequences = rows.Select(r => _examples[r].Forget).Concat(rows.Select(r => _examples[r].Retain)).ToList();
            var (ids, length) = PaddedIds(sequences, _padId);
            int n = rows.Length;
            var forget = new float[2 * n * length];
            var retain = new float[2 * n * length];
            var frozen = new float[2L * n * length * _hidden];
            for (int r = 0; r < n; r++)
            {
                Array.Fill(forget, 1f, r * length, sequences[r].Length);
                Array.Fill(retain, 1f, (n + r) * length, sequences[n + r].Length);
                _frozen[rows[r]].CopyTo(frozen, (long)(n + r) * length * _hidden);
            }
            return new Dictionary<string, HostTensor>
            {
                [DecoderGraph.InputIds] = ids,
                [ForgetTokens] = HostTensor.Of(forget, 2 * n, length),
                [RetainTokens] = HostTensor.Of(retain, 2 * n, length),
                [FrozenRetain] = HostTensor.Of(frozen, 2 * n, length, _hidden),
                [Control] = HostTensor.Of(_control, _hidden),
            };
        }

        public JsonObject SaveState() => _batches.SaveState();

        public void RestoreState(JsonObject state) => _batches.RestoreState(state);
    }
}
