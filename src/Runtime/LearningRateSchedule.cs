using System.Text.Json.Nodes;

namespace AlignThenUnlearn.Runtime;

/// <summary>The factor by which optimizer step <c>s</c> (1-based, as AdamW counts) scales the peak learning rate
/// of <see cref="OptimizerSettings.LearningRate"/>: a pure function of the step, so resuming needs only the step.</summary>
public abstract record LearningRateSchedule
{
    public abstract double Factor(long step);
    public abstract JsonObject ToJson();
}

/// <summary>The peak rate at every step.</summary>
public sealed record ConstantSchedule : LearningRateSchedule
{
    public override double Factor(long step) => 1;
    public override JsonObject ToJson() => new() { ["kind"] = "constant" };
}

/// <summary>Linear warm-up over the first <see cref="WarmupSteps"/> steps (step s gets s / warmup), then the peak rate.</summary>
public sealed record WarmupSchedule : LearningRateSchedule
{
    public long WarmupSteps { get; }

    public WarmupSchedule(long warmupSteps)
    {
        if (warmupSteps < 0) throw new ArgumentOutOfRangeException(nameof(warmupSteps), warmupSteps, "warm-up steps cannot be negative");
        WarmupSteps = warmupSteps;
    }

    public override double Factor(long step) => WarmupFactor(step, WarmupSteps);
    public override JsonObject ToJson() => new() { ["kind"] = "warmup", ["warmup_steps"] = WarmupSteps };

    internal static double WarmupFactor(long step, long warmupSteps) => step < warmupSteps ? (double)step / warmupSteps : 1;
}

/// <summary>Linear warm-up, then cosine decay from the peak at step <see cref="WarmupSteps"/> to
/// <see cref="FloorFactor"/> times the peak at step <see cref="TotalSteps"/> and after it.</summary>
public sealed record WarmupCosineSchedule : LearningRateSchedule
{
    public long WarmupSteps { get; }
    public long TotalSteps { get; }
    public double FloorFactor { get; }

    public WarmupCosineSchedule(long warmupSteps, long totalSteps, double floorFactor = 0.1)
    {
        if (warmupSteps < 0) throw new ArgumentOutOfRangeException(nameof(warmupSteps), warmupSteps, "warm-up steps cannot be negative");
        if (totalSteps <= warmupSteps) throw new ArgumentOutOfRangeException(nameof(totalSteps), totalSteps, $"the decay must end after the {warmupSteps} warm-up steps");
        if (floorFactor is < 0 or > 1) throw new ArgumentOutOfRangeException(nameof(floorFactor), floorFactor, "the floor is a fraction of the peak rate, 0 to 1");
        (WarmupSteps, TotalSteps, FloorFactor) = (warmupSteps, totalSteps, floorFactor);
    }

    public override double Factor(long step)
    {
        if (step < WarmupSteps) return WarmupSchedule.WarmupFactor(step, WarmupSteps);
        double progress = Math.Min(1, (double)(step - WarmupSteps) / (TotalSteps - WarmupSteps));
        return FloorFactor + (1 - FloorFactor) * 0.5 * (1 + Math.Cos(Math.PI * progress));
    }

    public override JsonObject ToJson() => new()
    {
        ["kind"] = "warmup_cosine", ["warmup_steps"] = WarmupSteps, ["total_steps"] = TotalSteps, ["floor_factor"] = FloorFactor,
    };
}

/// <summary>Hugging Face's stepping of a schedule: its <c>LambdaLR</c> is stepped after each optimizer step, so optimizer
/// step s (1-based) runs at <c>lr_lambda(s - 1)</c> of the <see cref="Inner"/> schedule and the first step of a warm-up
/// has rate 0 (<c>get_cosine_schedule_with_warmup</c>: <c>current_step / max(1, warmup)</c> at <c>current_step</c> 0).
/// RWKU's trainers (LLaMA-Factory on the Hugging Face Trainer) step this way; without it a run that ends inside its
/// warm-up sums (T + 1) / (T - 1) times the rate over T steps (1.4x at 6 steps).</summary>
public sealed record HuggingFaceStepping(LearningRateSchedule Inner) : LearningRateSchedule
{
    public override double Factor(long step) => Inner.Factor(step - 1);
    public override JsonObject ToJson() => new() { ["kind"] = "hugging_face_stepping", ["lr_lambda"] = Inner.ToJson() };
}
