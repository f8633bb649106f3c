using AlignThenUnlearn.Onnx;
using AlignThenUnlearn.Runtime;
using CommandLine;
using Microsoft.ML.OnnxRuntime;

namespace AlignThenUnlearn.Cli;

[Verb("info", HelpText = "Show versions, the ONNX opsets written, and which execution providers load on this machine.")]
public sealed class InfoOptions
{
    [Option("device", Default = "auto", HelpText = "cpu, cuda or auto (CUDA when its provider loads, else the CPU).")]
    public string Device { get; set; } = "auto";

    [Option("fast-cuda", HelpText = "Show the session settings of --fast-cuda (TF32, non-deterministic kernels).")]
    public bool FastCuda { get; set; }
}

public static class InfoCommand
{
    public static int Run(InfoOptions o)
    {
        Console.WriteLine(AtuVersion.Text);
        Console.WriteLine($"ONNX Runtime {OrtEnv.Instance().GetVersionString()}; providers built in: {string.Join(", ", OrtEnv.Instance().GetAvailableProviders())}");
        Console.WriteLine($"graphs written with opset {Opset.Default} (fused inference graphs {Opset.Fused}), IR version {Opset.IrVersion}");
        using var device = ExecutionDevice.Create(o.Device, notice: Console.WriteLine, fastCuda: o.FastCuda);
        Console.WriteLine($"device: {device.Description}");
        Console.WriteLine($"session config: {string.Join(", ", device.Settings.ConfigEntries.Select(e => $"{e.Key}={e.Value}"))}");
        if (device.Settings.CudaProviderOptions is not { } cuda) return 0;
        Console.WriteLine($"CUDA provider: {string.Join(", ", cuda.Select(e => $"{e.Key}={e.Value}"))}; embedding gradient: {(device.Settings.RewriteScatterAdd ? "one-hot product (deterministic)" : "ScatterND add (atomic)")}");
        // A round trip through GPU memory opens a session with these settings (ONNX Runtime refuses an unknown option there).
        using var probe = device.Upload<float>([1f, 2f], [2]);
        bool exact = device.Download<float>(probe) is [1f, 2f];
        Console.WriteLine($"CUDA session with these settings: {(exact ? "opens; host-device round trip exact" : "host-device round trip WRONG")}");
        return exact ? 0 : 1;
    }
}
