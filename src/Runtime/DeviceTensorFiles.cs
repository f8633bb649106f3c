using AlignThenUnlearn.Models;
using AlignThenUnlearn.Models.Checkpoints;

namespace AlignThenUnlearn.Runtime;

/// <summary>Named float32 device tensors to and from safetensors files. Reading converts F32, F16 or BF16 with
/// the checkpoint reader window by window straight into the tensor's memory (one staging array per tensor on
/// CUDA); writing streams each tensor to a temporary file that is renamed into place when complete.</summary>
public static class DeviceTensorFiles
{
    public static void Write(ExecutionDevice device, string path, IReadOnlyList<(string Name, DeviceTensor Tensor)> tensors,
        IReadOnlyDictionary<string, string>? metadata = null)
    {
        using var writer = SafetensorsWriter.Create(path, tensors.Select(t => new TensorSpec(t.Name, SafetensorsDType.F32, t.Tensor.Shape)).ToList(), metadata);
        foreach (var (_, tensor) in tensors) device.Read<float>(tensor, values => writer.Append(values));
        writer.Commit();
    }

    /// <summary>Fails with a message naming the file and the tensor unless <paramref name="checkpoint"/> holds
    /// <paramref name="name"/> with <paramref name="shape"/> in a floating-point dtype.</summary>
    public static void Read(ExecutionDevice device, SafetensorsCheckpoint checkpoint, string name, DeviceTensor destination) =>
        device.Fill<float>(destination, values => checkpoint.Read(name, values));

    public static string Format(long[] shape) => $"[{string.Join(", ", shape)}]";
}
