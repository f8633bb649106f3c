using AlignThenUnlearn.Autodiff;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Runtime;

namespace AlignThenUnlearn.Unlearning;

/// <summary>One unlearning method: everything particular to it lives in one file under <c>Methods/</c> (a subclass of
/// this), and <see cref="MethodRegistry"/> lists them. Everything else (the CLI's help and validation, sweeps, the toy
/// job, reports, preset validation) reads the registry.</summary>
public abstract class UnlearningMethod
{
    /// <summary>The name `atu unlearn --method`, presets' <c>"method"</c> and sweeps use ("ga", "graddiff").</summary>
    public abstract string Name { get; }
    /// <summary>The name in reports and tables ("GA", "GradDiff").</summary>
    public abstract string DisplayName { get; }
    /// <summary>One line for `atu unlearn --help`.</summary>
    public abstract string Summary { get; }

    /// <summary>The label of a run in reports: "GA (F)" (full weights) or "GA (L)" (LoRA); "ATU" and "ICU" alone.</summary>
    public virtual string Label(bool lora) => $"{DisplayName} ({(lora ? "L" : "F")})";

    /// <summary>The built-in presets of the method (embedded files under <c>Presets/</c>).</summary>
    public virtual IReadOnlyList<string> PresetNames => [];

    /// <summary>How `atu toy` runs it (with its toy preset): full weights, LoRA adapters (a run named NAME-lora, after
    /// every full run in the table), both, or not at all.</summary>
    public virtual ToyVariants Toy => ToyVariants.Full;

    public override string ToString() => Name;
}

/// <summary>The runs of a method in `atu toy`.</summary>
[Flags]
public enum ToyVariants { None = 0, Full = 1, Lora = 2 }

/// <summary>A method that trains the LLM from a <see cref="MethodPreset"/> in the run harness (<see cref="MethodRun"/>):
/// its examples from the target's texts and what a step trains (<see cref="Prepare"/>). Its built-in presets are
/// <c>rwku-llama3-NAME[-lora]</c> (RWKU's Llama-3-8B settings) and <c>toy-NAME[-lora]</c>.</summary>
public abstract class TrainedMethod : UnlearningMethod
{
    /// <summary>The preset families every trained method ships.</summary>
    public static readonly IReadOnlyList<string> PresetFamilies = ["rwku-llama3", "rwku-phi3", "toy"];

    public override IReadOnlyList<string> PresetNames =>
        [.. PresetFamilies.SelectMany(family => new[] { PresetName(family, lora: false), PresetName(family, lora: true) })];

    /// <summary>The built-in preset of a family: <c>rwku-llama3-ga</c>, <c>toy-npo-lora</c>, ...</summary>
    public string PresetName(string family, bool lora) => $"{family}-{Name}{(lora ? "-lora" : "")}";

    /// <summary>Preset values particular to this method, by name, with their defaults (a preset's <c>"options"</c>,
    /// read with <see cref="MethodPreset.Option"/>); a preset naming another option is refused.</summary>
    public virtual IReadOnlyDictionary<string, double> Options { get; } = new Dictionary<string, double>();

    /// <summary>The examples the method trains on (one sequence each, or two that train together), from the target's
    /// texts as RWKU ships them, tokenized as RWKU's LLaMA-Factory does (<see cref="ExampleTokenizer"/>).</summary>
    public abstract List<LabelledSequence[]> Examples(MethodPreset preset, ITargetTexts texts, ExampleTokenizer tokens);

    /// <summary>What the run trains: the joint graph and its batches, built on the store as the harness loaded it (the
    /// starting weights, trainable as the preset says; LoRA adapters not yet added: <see cref="MethodSetup.AddAdapters"/>
    /// adds them, and the harness does so after this returns when the method did not).</summary>
    public abstract MethodTraining Prepare(MethodSetup setup);

    /// <summary>Each text of the preset's forget corpus + EOS one row (GA, GA*, NPO).</summary>
    protected static List<LabelledSequence[]> ForgetTextRows(MethodPreset preset, ITargetTexts texts, ExampleTokenizer tokens) =>
        [.. texts.ForgetTexts(preset.ForgetCorpus).Select(t => new[] { tokens.Text(t) })];
}

/// <summary>What <see cref="TrainedMethod.Prepare"/> works with. <see cref="DataSeed"/> seeds the batch order.</summary>
public sealed record MethodSetup(MethodPreset Preset, DecoderConfig Config, ParameterStore Store, IReadOnlyList<LabelledSequence[]> Examples,
    int PadId, long DataSeed, Action AddAdapters, Action<string> Log);

/// <summary>The graph a trained method descends (its loss output <see cref="Loss"/>) and the batches it reads.</summary>
public sealed record MethodTraining(GradientGraph Graph, string Loss, IBatchSource Batches);

/// <summary>A method whose loss is a function of the LLM's logits on its examples (GA, NPO, DPO, ...): the file gives
/// the loss (<see cref="Loss"/>), whether rows carry the frozen model's sequence log-probabilities
/// (<see cref="NeedsReferenceLogProbs"/>) and whether the second sequence of an example is a retain row
/// (<see cref="HasRetainRows"/>); this class builds the graph (<see cref="TokenLossGraph"/>) and the batches.</summary>
public abstract class TokenLossMethod : TrainedMethod
{
    /// <summary>Rows carry <see cref="TokenLossGraph.ReferenceLogProbs"/>: the starting model's summed log-probabilities.</summary>
    public virtual bool NeedsReferenceLogProbs => false;
    /// <summary>The second sequence of every example is a retain row whose labels go into <see cref="TokenLossGraph.RetainMask"/>.</summary>
    public virtual bool HasRetainRows => false;
    /// <summary>Sequences in one example: two for a retain row (or DPO's chosen and rejected answers), else one.</summary>
    public virtual int SequencesPerExample => HasRetainRows ? 2 : 1;

    /// <summary>The loss, built into the joint graph from the inputs it asks for.</summary>
    public abstract string Loss(TokenLossInputs inputs, MethodPreset preset);

    public override MethodTraining Prepare(MethodSetup setup)
    {
        var (preset, examples) = (setup.Preset, setup.Examples);
        double[][]? reference = null;
        if (NeedsReferenceLogProbs)
        {
            // From the starting weights, before any adapter exists: the frozen model of RWKU's trainers.
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var sequences = examples.SelectMany(e => e).ToList();
            var sums = ReferenceLogProbabilities.Compute(setup.Store, setup.Config, sequences, preset.BatchSize, setup.PadId);
            int arity = examples[0].Length, at = 0;
            reference = [.. examples.Select(_ => { var row = sums.AsSpan(at, arity).ToArray(); at += arity; return row; })];
            setup.Log(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"reference log-probabilities of {sequences.Count} sequences ({clock.Elapsed.TotalSeconds:0.0} s)"));
        }
        setup.AddAdapters();
        var graph = Graph(setup.Config, setup.Store.Trainable, new DecoderGraphOptions { Lora = preset.LoraOptions }, preset);
        var data = new LabelledBatches(examples, preset.BatchSize, setup.DataSeed, preset.Cutoff, setup.PadId, reference,
            HasRetainRows ? TokenLossGraph.RetainMask : null);
        return new MethodTraining(graph.Training, graph.Loss, data);
    }

    /// <summary>The joint graph of this method's loss (<paramref name="preset"/> null: the method's defaults).</summary>
    public TokenLossGraph Graph(DecoderConfig config, IEnumerable<string> trainable, DecoderGraphOptions? decoderOptions = null, MethodPreset? preset = null)
    {
        preset ??= new MethodPreset { Method = Name };
        return TokenLossGraph.Build(config, inputs => Loss(inputs, preset), trainable, decoderOptions);
    }
}

/// <summary>A method that trains nothing (ICU: the model as it is, asked with RWKU's unlearning prompt).</summary>
public abstract class PromptingMethod : UnlearningMethod
{
    public override string Label(bool lora) => DisplayName;
}
