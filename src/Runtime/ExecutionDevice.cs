using AlignThenUnlearn.Onnx;
using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Onnx;

namespace AlignThenUnlearn.Runtime;

public enum DeviceKind { Cpu, Cuda }

/// <summary>The one place that knows about execution providers: it creates sessions for the chosen
/// device with the highest graph optimisation level, and moves tensors in and out of them.</summary>
public sealed class ExecutionDevice
{
    public DeviceKind Kind { get; }
    public int Threads { get; }
    public string Description { get; }

    ExecutionDevice(DeviceKind kind, int threads, string description) => (Kind, Threads, Description) = (kind, threads, description);

    /// <summary>Parses <c>cpu</c>, <c>cuda</c> or <c>auto</c>. <c>auto</c> falls back to the CPU and
    /// reports why through <paramref name="notice"/>; <c>cuda</c> fails if CUDA cannot be loaded.</summary>
    public static ExecutionDevice Create(string device = "cpu", int threads = 0, Action<string>? notice = null)
    {
        switch (device.ToLowerInvariant())
        {
            case "cpu": return new ExecutionDevice(DeviceKind.Cpu, threads, "CPU");
            case "cuda":
                if (CudaProblem() is { } why) throw new InvalidOperationException($"--device cuda: the CUDA execution provider cannot be used: {why}");
                return new ExecutionDevice(DeviceKind.Cuda, threads, "CUDA:0");
            case "auto":
                if (CudaProblem() is { } reason)
                {
                    notice?.Invoke($"device auto: using the CPU ({reason})");
                    return new ExecutionDevice(DeviceKind.Cpu, threads, "CPU");
                }
                return new ExecutionDevice(DeviceKind.Cuda, threads, "CUDA:0");
            default: throw new ArgumentException($"unknown device '{device}': expected cpu, cuda or auto");
        }
    }

    static string? CudaProblem()
    {
        try
        {
            using var options = new SessionOptions();
            options.AppendExecutionProvider_CUDA(0);
            return null;
        }
        catch (Exception e) { return e.Message.Split('\n')[0]; }
    }

    public SessionOptions Options(string? optimizedModelPath = null)
    {
        var options = new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL };
        if (Threads > 0) { options.IntraOpNumThreads = Threads; options.InterOpNumThreads = 1; }
        if (optimizedModelPath is not null) options.OptimizedModelFilePath = optimizedModelPath;
        if (Kind == DeviceKind.Cuda) options.AppendExecutionProvider_CUDA(0);
        return options;
    }

    public InferenceSession Open(ModelProto model, string? optimizedModelPath = null)
    {
        using var options = Options(optimizedModelPath);
        return new InferenceSession(model.ToByteArray(), options);
    }

    /// <summary>Opens a model file, letting ONNX Runtime read its external data from beside it. The file is
    /// parsed and every external-data reference checked first (ModelFile.Load without the data), so a
    /// corrupt file or a location outside the model's folder fails with our message before ONNX Runtime
    /// reads anything.</summary>
    public InferenceSession Open(string path, string? optimizedModelPath = null)
    {
        ModelFile.Load(path, loadExternalData: false);
        using var options = Options(optimizedModelPath);
        return new InferenceSession(Path.GetFullPath(path), options);
    }

    /// <summary>Runs a session on host tensors and returns the requested outputs (all by default).</summary>
    public static Dictionary<string, HostTensor> Run(InferenceSession session, IReadOnlyDictionary<string, HostTensor> inputs, IEnumerable<string>? outputs = null)
    {
        var feeds = inputs.Select(kv => ToOrt(kv.Key, kv.Value)).ToList();
        var names = (outputs ?? session.OutputMetadata.Keys).ToList();
        using var results = session.Run(feeds, names);
        return results.ToDictionary(r => r.Name, FromOrt);
    }

    /// <summary>Opens, runs and closes a session in one call (tests and one-off graphs).</summary>
    public Dictionary<string, HostTensor> Run(ModelProto model, IReadOnlyDictionary<string, HostTensor> inputs, IEnumerable<string>? outputs = null)
    {
        using var session = Open(model);
        return Run(session, inputs, outputs);
    }

    static NamedOnnxValue ToOrt(string name, HostTensor t)
    {
        var dims = t.Shape.Select(d => checked((int)d)).ToArray();
        return t.Data switch
        {
            float[] f => NamedOnnxValue.CreateFromTensor(name, new DenseTensor<float>(f, dims)),
            double[] d => NamedOnnxValue.CreateFromTensor(name, new DenseTensor<double>(d, dims)),
            long[] l => NamedOnnxValue.CreateFromTensor(name, new DenseTensor<long>(l, dims)),
            int[] i => NamedOnnxValue.CreateFromTensor(name, new DenseTensor<int>(i, dims)),
            bool[] b => NamedOnnxValue.CreateFromTensor(name, new DenseTensor<bool>(b, dims)),
            _ => throw new NotSupportedException($"input '{name}': element type {t.Data.GetType().GetElementType()} is not supported"),
        };
    }

    static HostTensor FromOrt(DisposableNamedOnnxValue v) => v.Value switch
    {
        Tensor<float> f => Read(f),
        Tensor<double> d => Read(d),
        Tensor<long> l => Read(l),
        Tensor<int> i => Read(i),
        Tensor<bool> b => Read(b),
        _ => throw new NotSupportedException($"output '{v.Name}' has an element type this runner does not read"),
    };

    static HostTensor Read<T>(Tensor<T> t) => new(t.ToArray(), t.Dimensions.ToArray().Select(d => (long)d).ToArray());
}
