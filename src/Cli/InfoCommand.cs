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
}

public static class InfoCommand
{
    public static int Run(InfoOptions o)
    {
        Console.WriteLine($"atu {typeof(InfoCommand).Assembly.GetName().Version}");
        Console.WriteLine($"ONNX Runtime {OrtEnv.Instance().GetVersionString()}; providers built in: {string.Join(", ", OrtEnv.Instance().GetAvailableProviders())}");
        Console.WriteLine($"graphs written with opset {Opset.Default} (fused inference graphs {Opset.Fused}), IR version {Opset.IrVersion}");
        using var device = ExecutionDevice.Create(o.Device, notice: Console.WriteLine);
        Console.WriteLine($"device: {device.Description}");
        return 0;
    }
}
