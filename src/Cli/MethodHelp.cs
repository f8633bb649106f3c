using AlignThenUnlearn.Jobs.Toy;
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
        + string.Join(", ", ToyRun.AllMethods) + "; each with its toy preset).";
}
