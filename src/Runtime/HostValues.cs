using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace AlignThenUnlearn.Runtime;

/// <summary>Conversions between host tensors and ONNX Runtime values in host memory.</summary>
public static class HostValues
{
    public static OrtValue ToOrtValue(HostTensor t) => t.Data switch
    {
        float[] f => OrtValue.CreateTensorValueFromMemory(f, t.Shape),
        double[] d => OrtValue.CreateTensorValueFromMemory(d, t.Shape),
        long[] l => OrtValue.CreateTensorValueFromMemory(l, t.Shape),
        int[] i => OrtValue.CreateTensorValueFromMemory(i, t.Shape),
        bool[] b => OrtValue.CreateTensorValueFromMemory(b, t.Shape),
        _ => throw new NotSupportedException($"element type {t.Data.GetType().GetElementType()!.Name} is not supported"),
    };

    /// <summary>A host copy of a tensor value in host memory.</summary>
    public static HostTensor ToHostTensor(OrtValue v)
    {
        var info = v.GetTensorTypeAndShape();
        Array data = info.ElementDataType switch
        {
            TensorElementType.Float => v.GetTensorDataAsSpan<float>().ToArray(),
            TensorElementType.Double => v.GetTensorDataAsSpan<double>().ToArray(),
            TensorElementType.Int64 => v.GetTensorDataAsSpan<long>().ToArray(),
            TensorElementType.Int32 => v.GetTensorDataAsSpan<int>().ToArray(),
            TensorElementType.Bool => v.GetTensorDataAsSpan<bool>().ToArray(),
            var other => throw new NotSupportedException($"reading {other} values into host tensors"),
        };
        return new HostTensor(data, info.Shape);
    }

    public static double[] ToDoubles(OrtValue v) => v.GetTensorTypeAndShape().ElementDataType switch
    {
        TensorElementType.Float => Array.ConvertAll(v.GetTensorDataAsSpan<float>().ToArray(), x => (double)x),
        TensorElementType.Double => v.GetTensorDataAsSpan<double>().ToArray(),
        TensorElementType.Float16 => Array.ConvertAll(v.GetTensorDataAsSpan<Half>().ToArray(), x => (double)x),
        TensorElementType.Int64 => Array.ConvertAll(v.GetTensorDataAsSpan<long>().ToArray(), x => (double)x),
        var other => throw new NotSupportedException($"reading {other} values"),
    };
}
