using AlignThenUnlearn.Models;
using AlignThenUnlearn.Runtime;

namespace AlignThenUnlearn.Unlearning;

/// <summary>The relearning attack's fine-tuning (Hu et al. 2025; Deeb &amp; Roger 2024): every parameter of a decoder
/// trained with next-token cross-entropy and AdamW on a few texts, each step one batch of all of them (the attacker's
/// data is a handful of texts), at a constant learning rate without weight decay.</summary>
public static class Relearning
{
    /// <summary>Loads <paramref name="weights"/>, trains <paramref name="steps"/> steps on <paramref name="sequences"/>
    /// (none: no training, the weights are written back unchanged) and writes the float32 result to
    /// <paramref name="output"/>. Returns the loss of every step, measured before the step's update.</summary>
    public static IReadOnlyList<double> Run(ExecutionDevice device, DecoderConfig config, string weights, IReadOnlyList<int[]> sequences,
        long steps, double learningRate, long seed, string output)
    {
        if (steps < 1) throw new ArgumentOutOfRangeException(nameof(steps), steps, "relearning needs at least one step");
        using var store = new ParameterStore(device);
        store.Load(weights, DecoderBuilder.Parameters(config), _ => true);
        var losses = new List<double>();
        if (sequences.Count > 0)
        {
            var options = new TrainerOptions { Steps = steps, RandomSeed = (ulong)seed };
            using var trainer = new CausalLmTrainer(store, config, new AdamWSettings(LearningRate: learningRate, WeightDecay: 0), options);
            trainer.Train(new TokenBatcher(sequences, batchSize: sequences.Count, seed, trainer.MaxLength, config.PadTokenId ?? 0), p => losses.Add(p.Loss));
        }
        store.Save(output, new Dictionary<string, string> { ["format"] = "pt" });
        return losses;
    }
}
