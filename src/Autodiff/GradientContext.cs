using AlignThenUnlearn.Onnx;
using Onnx;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Autodiff;

/// <summary>What a gradient rule sees: the builder that emits backward nodes, and types and
/// shapes of the forward values.</summary>
public sealed class GradientContext(GraphBuilder builder, ShapeInference shapes)
{
    public GraphBuilder B { get; } = builder;
    public ShapeInference Shapes { get; } = shapes;

    public DataType TypeOf(string value) =>
        Shapes[value]?.ElementType ?? throw new GradientException($"the element type of '{value}' cannot be inferred; declare it in the graph's value_info");

    /// <summary>The rank of a forward value, required by rules that permute axes.</summary>
    public int RankOf(string value, NodeProto node) =>
        Shapes[value]?.Rank is int r && r >= 0 ? r : throw new GradientException($"node '{node.Name}' ({node.OpType}): the rank of '{value}' cannot be inferred; declare its shape in the graph's value_info");

    /// <summary>A scalar constant of the element type of <paramref name="like"/>.</summary>
    public string Scalar(double value, string like) => B.Scalar(value, TypeOf(like));

    /// <summary>Zeros with the shape and type of a forward value.</summary>
    public string ZerosLike(string value) =>
        B.Op("ConstantOfShape", [B.Shape(value)], Attr.Tensor("value", Tensors.Scalar("zero", TypeOf(value), 0, rank1: true)));

    /// <summary>Reduces a gradient of <paramref name="output"/>'s shape back to <paramref name="input"/>'s shape (undoes broadcasting).</summary>
    public string SumTo(string grad, string input, string output) => Broadcasting.SumTo(this, grad, input, output);
}

public sealed class GradientException(string message) : Exception(message);
