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
/// the norm of the scaled gradients before clipping is the output <c>grad_norm</c>. Small parameters are updated in
/// packs (<see cref="Packs"/>: flattened and joined, one set of element-wise nodes per pack), which gives the same bits.</summary>
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
    public static ModelProto AdamW(IReadOnlyList<OptimizerParameter> parameters, long packedParameterElements = PackedParameterElements)
    {
        var b = new GraphBuilder("adamw");
        var (lr, beta1, beta2, eps, wd, step) = (Scalar(b, LearningRate), Scalar(b, Beta1), Scalar(b, Beta2), Scalar(b, Epsilon), Scalar(b, WeightDecay), Scalar(b, Step));
        var one = b.Scalar(1, DataType.Double);
        var clipped = ClippedGradients(b, parameters);
        string F(string d) => b.Cast(d, DataType.Float);
        var stepSize = F(b.Div(lr, b.Sub(one, b.Op("Pow", beta1, step))));
        var sqrtCorrection2 = F(b.Sqrt(b.Sub(one, b.Op("Pow", beta2, step))));
        var decay = F(b.Sub(one, b.Mul(lr, wd)));
        var (b1, oneMinusB1, b2, oneMinusB2, epsF) = (F(beta1), F(b.Sub(one, beta1)), F(beta2), F(b.Sub(one, beta2)), F(eps));
        foreach (var pack in Packs(parameters, packedParameterElements))
        {
            var g = clipped(pack);
            var param = Flat(b, pack, n => n);
            var m = Flat(b, pack, ExpAvg);
            var v = Flat(b, pack, ExpAvgSq);
            var mNext = Result(b, pack, "Add", [b.Mul(b1, m), b.Mul(oneMinusB1, g)], ExpAvg);
            var vNext = Result(b, pack, "Add", [b.Mul(b2, v), b.Mul(oneMinusB2, b.Mul(g, g))], ExpAvgSq);
            var denom = b.Add(b.Div(b.Sqrt(vNext), sqrtCorrection2), epsF);
            Result(b, pack, "Sub", [b.Mul(param, decay), b.Mul(stepSize, b.Div(mNext, denom))], n => n);
        }
        return b.ToModel();
    }

    /// <summary>SGD as in torch.optim.SGD (dampening 0, no Nesterov): with momentum, buf = momentum * buf + g
    /// and p -= lr * buf; the momentum buffer starts at zero, which equals torch's first-step buf = g.
    /// Without momentum the graph has no state.</summary>
    public static ModelProto Sgd(IReadOnlyList<OptimizerParameter> parameters, bool momentum, long packedParameterElements = PackedParameterElements)
    {
        var b = new GraphBuilder("sgd");
        var (lr, wd) = (b.Cast(Scalar(b, LearningRate), DataType.Float), b.Cast(Scalar(b, WeightDecay), DataType.Float));
        var mu = momentum ? b.Cast(Scalar(b, Momentum), DataType.Float) : null;
        var clipped = ClippedGradients(b, parameters);
        foreach (var pack in Packs(parameters, packedParameterElements))
        {
            var param = Flat(b, pack, n => n);
            var g = b.Add(clipped(pack), b.Mul(wd, param));
            if (mu is not null) g = Result(b, pack, "Add", [b.Mul(mu, Flat(b, pack, MomentumBuffer)), g], MomentumBuffer);
            Result(b, pack, "Sub", [param, b.Mul(lr, g)], n => n);
        }
        return b.ToModel();
    }

    /// <summary>g * s * min(1, max_norm / (‖g * s‖ + 1e-6)) when max_norm &gt; 0, as clip_grad_norm_ does after
    /// scaling by s = grad_scale, for each pack of <see cref="Packs"/>. The norm of the scaled gradients is |s| ‖g‖, so
    /// each gradient is read by one ReduceSumSquare (per parameter, summed in parameter order whatever the packing, so the
    /// norm does not depend on it) and each pack is multiplied once, by the combined factor.</summary>
    static Func<IReadOnlyList<OptimizerParameter>, string> ClippedGradients(GraphBuilder b, IReadOnlyList<OptimizerParameter> parameters)
    {
        var maxNorm = b.Cast(Scalar(b, MaxGradNorm), DataType.Float);
        var gradScale = b.Cast(Scalar(b, GradScale), DataType.Float);
        var grads = parameters.ToDictionary(p => p.Name, p => Tensor(b, Grad(p.Name), p.Shape));
        var squares = parameters.Select(p => b.Op("ReduceSumSquare", [grads[p.Name]], Attr.Int("keepdims", 0))).ToArray();
        var norm = b.Mul(b.Sqrt(b.Sum(squares)), b.Op("Abs", gradScale));
        Output(b, norm, GradNorm, []);
        var coefficient = b.Op("Min", b.Div(maxNorm, b.Add(norm, b.Scalar(1e-6, DataType.Float))), b.Scalar(1, DataType.Float));
        var clip = b.Where(b.Op("Greater", maxNorm, b.Scalar(0, DataType.Float)), coefficient, b.Scalar(1, DataType.Float));
        var factor = b.Mul(gradScale, clip);
        // Made where a pack's update is built, so that the nodes of one pack are numbered together: ONNX Runtime orders
        // nodes by number among those ready, and clipping every gradient first would hold a clipped copy of all of them.
        return pack => b.Mul(Joined(b, pack, p => grads[p.Name]), factor);
    }

    /// <summary>Parameters of at most this many elements are updated together: flattened and joined into one vector per
    /// pack, so a step runs a dozen element-wise nodes per pack instead of per parameter (a small model's step was mostly
    /// per-node overhead: 427 nodes for the toy head's AdamW). Joining and splitting copies each value once more, which
    /// costs more than a node's overhead above about this size, so larger parameters stay alone.</summary>
    public const long PackedParameterElements = 1 << 16;

    /// <summary>The most elements of one pack: bounds the memory a pack's copies add to the optimizer's arena.</summary>
    public const long PackElements = 1 << 20;

    /// <summary>Consecutive runs of parameters of at most <paramref name="packedParameterElements"/> elements (each run a pack
    /// of up to <see cref="PackElements"/>), and every larger parameter as a pack of its own, in parameter order (0: every
    /// parameter alone). The update is element-wise, so packing changes no value.</summary>
    public static List<IReadOnlyList<OptimizerParameter>> Packs(IReadOnlyList<OptimizerParameter> parameters, long packedParameterElements = PackedParameterElements)
    {
        var packs = new List<IReadOnlyList<OptimizerParameter>>();
        List<OptimizerParameter>? open = null;
        long openElements = 0;
        foreach (var p in parameters)
        {
            long elements = p.Shape.Aggregate(1L, (x, d) => x * d);
            if (elements > packedParameterElements) { packs.Add([p]); open = null; continue; }
            if (open is null || openElements + elements > PackElements) { packs.Add(open = []); openElements = 0; }
            open.Add(p);
            openElements += elements;
        }
        return packs;
    }

    /// <summary>A pack's tensors of one kind (<paramref name="nameOf"/> the parameter's name) as graph inputs, joined.</summary>
    static string Flat(GraphBuilder b, IReadOnlyList<OptimizerParameter> pack, Func<string, string> nameOf) =>
        Joined(b, pack, p => Tensor(b, nameOf(p.Name), p.Shape));

    /// <summary>One parameter's value as it is; several flattened and concatenated.</summary>
    static string Joined(GraphBuilder b, IReadOnlyList<OptimizerParameter> pack, Func<OptimizerParameter, string> valueOf) =>
        pack.Count == 1 ? valueOf(pack[0]) : b.Concat(0, [.. pack.Select(p => b.Reshape(valueOf(p), -1))]);

    /// <summary>The node computing a pack's next values of one kind (<paramref name="kindOf"/> the parameter's name: the
    /// parameter itself or a state tensor), returned for later nodes and written to the graph outputs <c>KIND.next</c>. A
    /// single parameter's node writes its graph output directly (an Identity to name it would copy the whole tensor into
    /// the bound buffer); a pack's is split back into the parameters' shapes.</summary>
    static string Result(GraphBuilder b, IReadOnlyList<OptimizerParameter> pack, string opType, string[] inputs, Func<string, string> kindOf)
    {
        if (pack.Count == 1)
        {
            var name = b.Node(opType, inputs, 1, outputNames: [Next(kindOf(pack[0].Name))])[0];
            b.Output(name, DataType.Float, pack[0].Shape.Select(d => (Dim)d).ToArray());
            return name;
        }
        var value = b.Op(opType, inputs);
        var sizes = pack.Select(p => p.Shape.Aggregate(1L, (x, d) => x * d)).ToArray();
        var parts = b.Node("Split", [value, b.Ints(sizes)], pack.Count, [Attr.Int("axis", 0)]);
        foreach (var (p, part) in pack.Zip(parts))
        {
            var name = Next(kindOf(p.Name));
            b.Node("Reshape", [part, b.Ints(p.Shape)], 1, name: "Output", outputNames: [name]);
            b.Output(name, DataType.Float, p.Shape.Select(d => (Dim)d).ToArray());
        }
        return value;
    }

    static string Scalar(GraphBuilder b, string name) => b.Input(name, DataType.Double);
    static string Tensor(GraphBuilder b, string name, long[] shape) => b.Input(name, DataType.Float, shape.Select(d => (Dim)d).ToArray());

    static void Output(GraphBuilder b, string value, string name, long[] shape)
    {
        b.Node("Identity", [value], 1, name: "Output", outputNames: [name]);
        b.Output(name, DataType.Float, shape.Select(d => (Dim)d).ToArray());
    }
}
