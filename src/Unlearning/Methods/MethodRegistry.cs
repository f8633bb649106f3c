namespace AlignThenUnlearn.Unlearning;

/// <summary>Every unlearning method, in the order help texts and tables list them. Every list of methods (CLI help and
/// validation, sweeps, the toy job, report labels, preset validation) is derived from this one.
///
/// To add a method:
/// 1. write one file under <c>src/Unlearning/Methods/</c>: a <see cref="TokenLossMethod"/> (name, display name, summary,
///    examples, loss; <see cref="GradientAscent"/> is the smallest example) or a <see cref="TrainedMethod"/> with its own
///    <see cref="TrainedMethod.Prepare"/> (graph and batches) for a loss that is not a function of the logits;
///    values only it needs go in <see cref="TrainedMethod.Options"/> (a preset's <c>"options"</c>);
/// 2. add its presets under <c>src/Unlearning/Presets/</c>: <c>rwku-llama3-NAME.json</c>, <c>rwku-llama3-NAME-lora.json</c>,
///    <c>toy-NAME.json</c>, <c>toy-NAME-lora.json</c>;
/// 3. add one line to <see cref="All"/> below, and its tests (the loss against hand-computed values and central differences).</summary>
public static class MethodRegistry
{
    public static IReadOnlyList<UnlearningMethod> All { get; } =
    [
        new AlignThenUnlearnMethod(),
        new GradientAscent(),
        new GradientAscentStar(),
        new GradientDifference(),
        new NegativePreferenceOptimization(),
        new DirectPreferenceOptimization(),
        new RejectionTuning(),
        new InContextUnlearning(),
        new SimNpo(),
        new Rmu(),
    ];

    public static IReadOnlyList<string> Names { get; } = [.. All.Select(m => m.Name)];

    /// <summary>The methods that train from a <see cref="MethodPreset"/> in <see cref="MethodRun"/>.</summary>
    public static IReadOnlyList<TrainedMethod> Trained { get; } = [.. All.OfType<TrainedMethod>()];

    /// <summary>A method by name; an unknown name is refused with the list of names.</summary>
    public static UnlearningMethod Get(string name) => All.FirstOrDefault(m => m.Name == name)
        ?? throw new ArgumentException($"unknown method '{name}'; the methods are {string.Join(", ", Names)}");

    /// <summary>A trained method by name; a name that is not one is refused with the list of them.</summary>
    public static TrainedMethod GetTrained(string name) => Get(name) as TrainedMethod
        ?? throw new ArgumentException($"method '{name}' trains no model from a method preset; those that do are {string.Join(", ", Trained.Select(m => m.Name))}");
}
