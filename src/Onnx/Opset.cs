using Onnx;

namespace AlignThenUnlearn.Onnx;

/// <summary>The operator set this project writes. Opset 21 has every training primitive
/// (axes as inputs for all reductions, Split with num_outputs) and is fully served by
/// ONNX Runtime 1.31; fused inference graphs raise it to 23 where they need the
/// opset-23 Attention/RMSNormalization/RotaryEmbedding.</summary>
public static class Opset
{
    public const int Default = 21;
    public const int Fused = 23;
    public const long IrVersion = 10;

    /// <summary>The oldest default-domain opset whose graphs the shape inference and the gradient rules understand
    /// (reduction axes and Split sizes as inputs). Any opset ONNX Runtime runs can be loaded and run.</summary>
    public const int Oldest = 18;

    public static int DefaultDomainVersion(ModelProto model)
    {
        foreach (var o in model.OpsetImport)
            if (o.Domain is "" or "ai.onnx") return (int)o.Version;
        return 0;
    }
}
