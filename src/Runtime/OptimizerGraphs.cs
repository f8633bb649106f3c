using AlignThenUnlearn.Onnx;
using Onnx;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Runtime;

/// <summary>A parameter the optimizer updates: its name and shape (float32).</summary>
public sealed record OptimizerParameter(string Name, long[] Shape);

/// <summary>Optimizers as ONNX graphs, so a step runs where the parameters live and nothing crosses
/// to the host. One graph updates every parameter: it reads <c>name</c>, <c>name.grad</c> and the
/// state (<c>name.exp_avg</c>, <c>name.exp_avg_sq</c> or <c>name.momentum_buffer</c>) and writes the
/// next values to outputs suffixed <c>.next</c>, which the runtime binds to the other half of a
/// ping-pong pair. Hyperparameters are double scalar inputs, so schedules never rebuild the graph; like
/// torch, which keeps them as Python floats, the scalar coefficients (1 - beta, bias corrections) are
/// computed in double and rounded to float once.
/// Gradients are first multiplied by <c>grad_scale</c> (1 / micro-batches averages accumulated gradients), then
/// clipped by their global norm as torch.nn.utils.clip_grad_norm_ does (<c>max_grad_norm</c> &lt;= 0 disables it);
/// the norm of the scaled gradients before clipping is the output <c>grad_norm</c>.</summary>
public static class OptimizerGraphs
{
    public const string LearningRate = "lr", Beta1 = "beta1", Beta2 = "beta2", Epsilon = "eps", WeightDecay = "weight_decay",
        Step = "step", MaxGradNorm = "max_grad_norm", Momentum = "momentum", GradScale = "grad_scale", GradNorm = "grad_norm";

    public static string Next(string value) => value + ".next";
    public static string Grad(string name) => name + ".grad";
    public static string ExpAvg(string name) => name + ".exp_avg";
    public static string ExpAvgSq(string name) => name + ".exp_avg_sq";
    public static string MomentumBuffer(string name) => name + ".momentum_buffer";

    /// <summary>AdamW as in torch.optim.AdamW (decoupled weight decay, bias correction; Adam is weight decay 0).
    /// <c>step</c> is the 1-based step number of this update.</summary>
    public static ModelProto AdamW(IReadOnlyList<OptimizerParameter> parameters)
    {
        var b = new GraphBuilder("adamw");
        var (lr, beta1, beta2, eps, wd, step) = (Scalar(b, LearningRate), Scalar(b, Beta1), Scalar(b, Beta2), Scalar(b, Epsilon), Scalar(b, WeightDecay), Scalar(b, Step));
        var one = b.Scalar(1, DataType.Double);
        var grads = ClippedGradients(b, parameters);
        string F(string d) => b.Cast(d, DataType.Float);
        var stepSize = F(b.Div(lr, b.Sub(one, b.Op("Pow", beta1, step))));
        var sqrtCorrection2 = F(b.Sqrt(b.Sub(one, b.Op("Pow", beta2, step))));
        var decay = F(b.Sub(one, b.Mul(lr, wd)));
        var (b1, oneMinusB1, b2, oneMinusB2, epsF) = (F(beta1), F(b.Sub(one, beta1)), F(beta2), F(b.Sub(one, beta2)), F(eps));
        foreach (var (p, g) in parameters.Zip(grads))
        {
            var param = Tensor(b, p.Name, p.Shape);
            var m = Tensor(b, ExpAvg(p.Name), p.Shape);
            var v = Tensor(b, ExpAvgSq(p.Name), p.Shape);
            var mNext = b.Add(b.Mul(b1, m), b.Mul(oneMinusB1, g));
            var vNext = b.Add(b.Mul(b2, v), b.Mul(oneMinusB2, b.Mul(g, g)));
            var denom = b.Add(b.Div(b.Sqrt(vNext), sqrtCorrection2), epsF);
            var pNext = b.Sub(b.Mul(param, decay), b.Mul(stepSize, b.Div(mNext, denom)));
            Output(b, pNext, Next(p.Name), p.Shape);
            Output(b, mNext, Next(ExpAvg(p.Name)), p.Shape);
            Output(b, vNext, Next(ExpAvgSq(p.Name)), p.Shape);
        }
        return b.ToModel();
    }

    /// <summary>SGD as in torch.optim.SGD (dampening 0, no Nesterov): with momentum, buf = momentum * buf + g
    /// and p -= lr * buf; the momentum buffer starts at zero, which equals torch's first-step buf = g.
    /// Without momentum the graph has no state.</summary>
    public static ModelProto Sgd(IReadOnlyList<OptimizerParameter> parameters, bool momentum)
    {
        var b = new GraphBuilder("sgd");
        var (lr, wd) = (b.Cast(Scalar(b, LearningRate), DataType.Float), b.Cast(Scalar(b, WeightDecay), DataType.Float));
        var mu = momentum ? b.Cast(Scalar(b, Momentum), DataType.Float) : null;
        var grads = ClippedGradients(b, parameters);
        foreach (var (p, clipped) in parameters.Zip(grads))
        {
            var param = Tensor(b, p.Name, p.Shape);
            var g = b.Add(clipped, b.Mul(wd, param));
            if (mu is not null)
            {
                var buf = Tensor(b, MomentumBuffer(p.Name), p.Shape);
                g = b.Add(b.Mul(mu, buf), g);
                Output(b, g, Next(MomentumBuffer(p.Name)), p.Shape);
            }
            Output(b, b.Sub(param, b.Mul(lr, g)), Next(p.Name), p.Shape);
        }
        return b.ToModel();
    }

    /// <summary>g * s * min(1, max_norm / (‖g * s‖ + 1e-6)) when max_norm &gt; 0, as clip_grad_norm_ does after
    /// scaling by s = grad_scale. The norm of the scaled gradients is |s| ‖g‖, so each gradient is read by one
    /// ReduceSumSquare and multiplied once, by the combined factor.</summary>
    static List<string> ClippedGradients(GraphBuilder b, IReadOnlyList<OptimizerParameter> parameters)
    {
        var maxNorm = b.Cast(Scalar(b, MaxGradNorm), DataType.Float);
        var gradScale = b.Cast(Scalar(b, GradScale), DataType.Float);
        var grads = parameters.Select(p => Tensor(b, Grad(p.Name), p.Shape)).ToList();
        var squares = grads.Select(g => b.Op("ReduceSumSquare", [g], Attr.Int("keepdims", 0))).ToArray();
        var norm = b.Mul(b.Sqrt(b.Sum(squares)), b.Op("Abs", gradScale));
        Output(b, norm, GradNorm, []);
        var coefficient = b.Op("Min", b.Div(maxNorm, b.Add(norm, b.Scalar(1e-6, DataType.Float))), b.Scalar(1, DataType.Float));
        var clip = b.Where(b.Op("Greater", maxNorm, b.Scalar(0, DataType.Float)), coefficient, b.Scalar(1, DataType.Float));
        var factor = b.Mul(gradScale, clip);
        return grads.Select(g => b.Mul(g, factor)).ToList();
    }

    static string Scalar(GraphBuilder b, string name) => b.Input(name, DataType.Double);
    static string Tensor(GraphBuilder b, string name, long[] shape) => b.Input(name, DataType.Float, shape.Select(d => (Dim)d).ToArray());

    static void Output(GraphBuilder b, string value, string name, long[] shape)
    {
        b.Node("Identity", [value], 1, name: "Output", outputNames: [name]);
        b.Output(name, DataType.Float, shape.Select(d => (Dim)d).ToArray());
    }
}
