using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace AlignThenUnlearn.Runtime;

/// <summary>A tensor that lives where the execution device computes (host memory for the CPU, GPU memory
/// for CUDA), owned by ONNX Runtime. Only <see cref="ExecutionDevice"/> moves data in and out.</summary>
public sealed class DeviceTensor : IDisposable
{
    public OrtValue Value { get; }
    public long[] Shape { get; }
    public TensorElementType ElementType { get; }
    public long ElementCount => Shape.Aggregate(1L, (p, d) => p * d);

    internal DeviceTensor(OrtValue value, long[] shape, TensorElementType type) => (Value, Shape, ElementType) = (value, shape, type);

    public void Dispose() => Value.Dispose();
    public override string ToString() => $"{ElementType}[{string.Join(",", Shape)}]";
}
