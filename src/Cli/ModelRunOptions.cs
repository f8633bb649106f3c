using AlignThenUnlearn.Runtime;
using CommandLine;
using Spectre.Console;

namespace AlignThenUnlearn.Cli;

/// <summary>Options shared by the verbs that run a model from an artifact folder.</summary>
public abstract class ModelRunOptions
{
    [Option("artifacts", Required = true, HelpText = "Artifact folder written by `atu export` (`atu eval` also takes a folder written by `atu ship`, and scores the shipped model itself).")]
    public string Artifacts { get; set; } = "";

    [Option("weights", HelpText = "Trained weights (safetensors, the model's tensor names) to use instead of the artifact's own.")]
    public string? Weights { get; set; }

    [Option("device", Default = "auto", HelpText = "cpu, cuda or auto (CUDA when its provider loads, else the CPU with a notice).")]
    public string Device { get; set; } = "auto";

    [Option("threads", Default = 0, HelpText = "Intra-op threads: 0 (ONNX Runtime's default) up to the number of logical processors.")]
    public int Threads { get; set; }

    [Option("fast-cuda", HelpText = "CUDA only: allow TF32 products and ONNX Runtime's non-deterministic kernels (atomic reductions, the scatter-add embedding gradient). Faster; results then differ run to run, so a resumed run is not bit-identical.")]
    public bool FastCuda { get; set; }

    /// <summary>The chosen device; a fallback notice goes to <paramref name="notice"/> (the console by default).</summary>
    public ExecutionDevice CreateDevice(Action<string>? notice = null) => ExecutionDevice.Create(Device, Threads, notice ?? Notice, FastCuda);

    /// <summary>How the verbs show a one-line notice (a device fallback, say): each message once per process (the toy
    /// run and the RWKU scoring open a device per stage; one notice says it all).</summary>
    public static void Notice(string message)
    {
        lock (Shown) if (!Shown.Add(message)) return;
        AnsiConsole.MarkupLineInterpolated($"[yellow]{message}[/]");
    }

    static readonly HashSet<string> Shown = [];
}
