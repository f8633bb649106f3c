using AlignThenUnlearn.Unlearning;

namespace AlignThenUnlearn.Cli;

/// <summary>Help texts derived from the method registry (CommandLineParser reads them through ResourceType).</summary>
public static class MethodHelp
{
    /// <summary>--method of align, unlearn and run.</summary>
    public static string Method => "The method: " + string.Join("; ", MethodRegistry.All.Select(m => $"{m.Name} ({m.Summary})"))
        + ". All run in the same harness (unlearn, run).";

    /// <summary>--methods of `atu toy`.</summary>
    public static string ToyMethods => "The full run: the methods run on each person, e.g. atu,ga,npo (default: all of "
        + string.Join(", ", ToyMethodNames) + "; each with its toy preset).";

    /// <summary>The runs of `atu toy` in its table's order: every method's full run, then the LoRA runs (NAME-lora).</summary>
    public static IReadOnlyList<string> ToyMethodNames { get; } =
    [
        .. MethodRegistry.All.Where(m => m.Toy.HasFlag(ToyVariants.Full)).Select(m => m.Name),
        .. MethodRegistry.All.Where(m => m.Toy.HasFlag(ToyVariants.Lora)).Select(m => m.Name + LoraSuffix),
    ];

    public const string LoraSuffix = "-lora";
}
