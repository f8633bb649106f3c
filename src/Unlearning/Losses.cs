using AlignThenUnlearn.Onnx;
using AlignThenUnlearn.Runtime;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Unlearning;

/// <summary>Loss graphs built from primitive ops the autodiff differentiates. Float16 operands are widened to
/// float32 first: squared norms of hidden states overflow float16.</summary>
public static class Losses
{
    /// <summary>torch.nn.functional.cosine_similarity's default eps.</summary>
    public const double CosineEps = 1e-8;

    /// <summary>x·y / max(‖x‖‖y‖, eps) along <paramref name="axis"/> (dropped), broadcasting x and y as
    /// torch.nn.functional.cosine_similarity does; computed as x·y / sqrt(max(‖x‖²‖y‖², eps²)).
    /// Use a negative axis when the operands have different ranks.</summary>
    public static string CosineSimilarity(GraphBuilder b, string p, string t, long axis = -1, double eps = CosineEps)
    {
        var type = ComputeType(b, p);
        p = As(b, p, type);
        t = As(b, t, type);
        var dot = b.ReduceSum(b.Mul(p, t), [axis], keepDims: false);
        var pp = b.ReduceSum(b.Mul(p, p), [axis], keepDims: false);
        var tt = b.ReduceSum(b.Mul(t, t), [axis], keepDims: false);
        var norms = b.Sqrt(b.Op("Clip", b.Mul(pp, tt), b.Scalar(eps * eps, type)));
        return b.Div(dot, norms);
    }

    /// <summary>1 - cos(p, t) along <paramref name="axis"/>.</summary>
    public static string CosineDistance(GraphBuilder b, string p, string t, long axis = -1, double eps = CosineEps)
    {
        var cos = CosineSimilarity(b, p, t, axis, eps);
        return b.Sub(b.Scalar(1, TypeOf(b, cos)), cos);
    }

    /// <summary>mean_i relu(cos(p_i, t) - tau) over every position i of p's leading axes (the last axis holds the
    /// vectors). <paramref name="tau"/> is a scalar value, normally a graph input, so a schedule changes it
    /// without rebuilding. With <paramref name="weights"/> (a mask [batch, seq] the batch feeds, e.g. the attention mask)
    /// the mean is weighted: sum_i w_i relu(...) / sum_i w_i, the sum of the weights counted over the whole batch when
    /// micro-batching (<see cref="BatchCount.Positions"/>).</summary>
    public static string MarginLoss(GraphBuilder b, string p, string t, string tau, string? weights = null)
    {
        var cos = CosineSimilarity(b, p, t);
        var type = TypeOf(b, cos);
        var hinge = b.Relu(b.Sub(cos, As(b, tau, type)));
        return weights is null ? b.ReduceMean(hinge, [], keepDims: false)
            : WeightedMean(b, hinge, weights, MicroBatching.TotalInput(b, BatchCount.Positions, weights));
    }

    /// <summary>sum(values * weights) / sum(weights) over all elements; 0 when every weight is 0. With
    /// <paramref name="batchTotal"/> (a <see cref="MicroBatching.TotalInput"/>) the divisor is max(sum(weights), that
    /// input): a micro-batch fed the whole batch's sum of weights gives its share of the batch's mean.</summary>
    public static string WeightedMean(GraphBuilder b, string values, string weights, string? batchTotal = null)
    {
        var type = TypeOf(b, values);
        var w = b.Expand(As(b, weights, type), b.Shape(values));
        var total = b.ReduceSum(b.Mul(values, w), [], keepDims: false);
        var count = b.Op("Clip", b.ReduceSum(w, [], keepDims: false), b.Scalar(1e-12, type));
        return b.Div(total, batchTotal is null ? count : b.Op("Max", count, As(b, batchTotal, type)));
    }

    /// <summary>The mean of every element of <paramref name="values"/> (rows of the batch, or pairs), whose count over the
    /// whole batch, when micro-batching, is <paramref name="count"/> of <paramref name="tensor"/>.</summary>
    public static string Mean(GraphBuilder b, string values, BatchCount count, string tensor)
    {
        var type = TypeOf(b, values);
        // A weighted mean with unit weights: the count comes from the values' shape without a host round trip.
        return WeightedMean(b, values, b.Scalar(1, type), MicroBatching.TotalInput(b, count, tensor));
    }

    internal static DataType TypeOf(GraphBuilder b, string value) =>
        ShapeInference.Run(b.Graph)[value]?.ElementType ?? throw new ArgumentException($"the element type of '{value}' cannot be inferred in graph '{b.Graph.Name}'");

    internal static DataType ComputeType(GraphBuilder b, string value) => TypeOf(b, value) switch
    {
        DataType.Float16 or DataType.Bfloat16 => DataType.Float,
        var type => type,
    };

    internal static string As(GraphBuilder b, string value, DataType type) => TypeOf(b, value) == type ? value : b.Cast(value, type);
}
