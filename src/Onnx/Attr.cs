using Google.Protobuf;
using Onnx;
using AttrType = Onnx.AttributeProto.Types.AttributeType;

namespace AlignThenUnlearn.Onnx;

/// <summary>Typed constructors and readers for node attributes.</summary>
public static class Attr
{
    public static AttributeProto Int(string name, long v) => new() { Name = name, Type = AttrType.Int, I = v };
    public static AttributeProto Float(string name, float v) => new() { Name = name, Type = AttrType.Float, F = v };
    public static AttributeProto String(string name, string v) => new() { Name = name, Type = AttrType.String, S = ByteString.CopyFromUtf8(v) };
    public static AttributeProto Tensor(string name, TensorProto t) => new() { Name = name, Type = AttrType.Tensor, T = t };

    public static AttributeProto Ints(string name, params long[] v)
    {
        var a = new AttributeProto { Name = name, Type = AttrType.Ints };
        a.Ints.AddRange(v);
        return a;
    }

    public static AttributeProto Floats(string name, params float[] v)
    {
        var a = new AttributeProto { Name = name, Type = AttrType.Floats };
        a.Floats.AddRange(v);
        return a;
    }

    public static AttributeProto? Find(this NodeProto node, string name)
    {
        foreach (var a in node.Attribute) if (a.Name == name) return a;
        return null;
    }

    public static long GetInt(this NodeProto node, string name, long fallback) => node.Find(name)?.I ?? fallback;
    public static float GetFloat(this NodeProto node, string name, float fallback) => node.Find(name)?.F ?? fallback;
    public static string GetString(this NodeProto node, string name, string fallback) => node.Find(name)?.S.ToStringUtf8() ?? fallback;
    public static long[]? GetInts(this NodeProto node, string name) => node.Find(name)?.Ints.ToArray();

    public static long GetIntRequired(this NodeProto node, string name) =>
        node.Find(name)?.I ?? throw new OnnxFormatException($"node '{node.Name}' ({node.OpType}) lacks its required attribute '{name}'");
}
