using System.Text.Json.Nodes;

namespace AlignThenUnlearn.Runtime;

/// <summary>Hyperparameters of an optimizer. <see cref="LearningRate"/> is the peak rate that a schedule scales;
/// <see cref="MaxGradNorm"/> clips gradients by their global norm (0 disables clipping).</summary>
public abstract record OptimizerSettings(double LearningRate, double WeightDecay, double MaxGradNorm)
{
    /// <summary>"adamw" or "sgd", as checkpoints record it.</summary>
    public abstract string Kind { get; }

    /// <summary>The optimizer's state tensors per parameter, as input names of its graph.</summary>
    public abstract IReadOnlyList<string> StateOf(string parameter);

    /// <summary>The settings as JSON, for state.json.</summary>
    public abstract JsonObject ToJson();
}

/// <summary>torch.optim.AdamW's hyperparameters and defaults (Adam is weight decay 0).</summary>
public sealed record AdamWSettings(double LearningRate = 1e-3, double Beta1 = 0.9, double Beta2 = 0.999, double Epsilon = 1e-8,
    double WeightDecay = 0.01, double MaxGradNorm = 0) : OptimizerSettings(LearningRate, WeightDecay, MaxGradNorm)
{
    public override string Kind => "adamw";
    public override IReadOnlyList<string> StateOf(string parameter) => [OptimizerGraphs.ExpAvg(parameter), OptimizerGraphs.ExpAvgSq(parameter)];
    public override JsonObject ToJson() => new()
    {
        ["kind"] = Kind, ["lr"] = LearningRate, ["beta1"] = Beta1, ["beta2"] = Beta2, ["eps"] = Epsilon,
        ["weight_decay"] = WeightDecay, ["max_grad_norm"] = MaxGradNorm,
    };
}

/// <summary>torch.optim.SGD's hyperparameters (no dampening, no Nesterov); momentum 0 is plain SGD without state.</summary>
public sealed record SgdSettings(double LearningRate, double Momentum = 0, double WeightDecay = 0, double MaxGradNorm = 0)
    : OptimizerSettings(LearningRate, WeightDecay, MaxGradNorm)
{
    public override string Kind => "sgd";
    public override IReadOnlyList<string> StateOf(string parameter) => Momentum != 0 ? [OptimizerGraphs.MomentumBuffer(parameter)] : [];
    public override JsonObject ToJson() => new()
    {
        ["kind"] = Kind, ["lr"] = LearningRate, ["momentum"] = Momentum, ["weight_decay"] = WeightDecay, ["max_grad_norm"] = MaxGradNorm,
    };
}
