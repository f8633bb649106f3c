namespace AlignThenUnlearn.Runtime;

/// <summary>How many buffers the size of the trained parameters the runtime keeps, as <see cref="Optimizer"/> and
/// <see cref="TrainSession"/> allocate them: the memory plan's counts come from here, next to the classes they describe.</summary>
public static class MemoryLayout
{
    /// <summary>The optimizer's buffers per trained parameter: a spare copy of the parameter (the ping-pong target of
    /// an update) and, per state tensor (AdamW: exp_avg and exp_avg_sq; SGD with momentum: the momentum buffer), the
    /// current and the next buffer.</summary>
    public static int OptimizerCopies(OptimizerSettings settings) => 1 + 2 * settings.StateOf("p").Count;

    /// <summary>The train session's gradient buffers: one per trainable parameter, two when micro-batches accumulate
    /// (the accumulated gradient is read while the sum is written into the spare).</summary>
    public static int GradientCopies(bool accumulating) => accumulating ? 2 : 1;
}
