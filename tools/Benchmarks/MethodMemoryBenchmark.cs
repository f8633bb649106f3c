using System.Diagnostics;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Unlearning;
using CommandLine;

namespace AlignThenUnlearn.Benchmarks;

[Verb("method-memory", HelpText = "Peak memory of a token-level method's training (reference log-probs, then steps) on a hidden-512 model; run once per loss and compare.")]
public sealed class MethodMemoryOptions
{
    [Option("loss", Default = "npo", HelpText = "cross-entropy, ga, npo or dpo.")] public string Loss { get; set; } = "npo";
    [Option("lora", HelpText = "Train LoRA adapters (rank 8 on q_proj, v_proj) instead of every parameter.")] public bool Lora { get; set; }
    [Option("batch", Default = 4)] public int Batch { get; set; }
    [Option("seq", Default = 128)] public int Seq { get; set; }
    [Option("steps", Default = 3)] public int Steps { get; set; }
    [Option("device", Default = "cpu")] public string Device { get; set; } = "cpu";
}

/// <summary>Runs one method's whole training path on random tokens (for NPO and DPO first the reference log-probabilities,
/// from the store that is then trained) and prints the process's peak resident memory next to the size of one copy of the
/// weights: a method that kept a second model resident would show one more copy.</summary>
public static class MethodMemoryBenchmark
{
    static readonly DecoderConfig Small = new()
    {
        Family = ModelFamily.Llama, HiddenSize = 512, NumHiddenLayers = 4, NumAttentionHeads = 8, NumKeyValueHeads = 8,
        IntermediateSize = 1408, VocabSize = 32000, MaxPositionEmbeddings = 256,
    };

    public static int Run(MethodMemoryOptions o)
    {
        // Cross-entropy is RT's loss; the others are the methods of the same names.
        var method = o.Loss switch
        {
            "cross-entropy" => MethodRegistry.Get(RejectionTuning.Id), "ga" or "npo" or "dpo" => MethodRegistry.Get(o.Loss),
            _ => throw new ArgumentException($"--loss {o.Loss}: expected cross-entropy, ga, npo or dpo"),
        } as TokenLossMethod ?? throw new InvalidOperationException($"--loss {o.Loss}: not a token-level method");
        using var device = ExecutionDevice.Create(o.Device);
        using var store = CausalLmTrainer.RandomParameters(device, Small, seed: 1);
        long weightBytes = 4 * store.Names.Sum(n => store[n].ElementCount);
        var lora = o.Lora ? new LoraOptions() : null;
        var options = new DecoderGraphOptions { Lora = lora };
        if (lora is not null) LoraAdapters.AddTo(store, lora.Adapters(Small));
        var random = new Random(2);
        int arity = method.SequencesPerExample;
        var examples = Enumerable.Range(0, o.Batch * o.Steps).Select(_ => Enumerable.Range(0, arity)
            .Select(_ => new LabelledSequence([.. Enumerable.Range(0, o.Seq).Select(_ => random.Next(Small.VocabSize))])).ToArray()).ToList();

        var clock = Stopwatch.StartNew();
        IReadOnlyList<double[]>? reference = null;
        if (method.NeedsReferenceLogProbs)
        {
            var flat = ReferenceLogProbabilities.Compute(store, Small, [.. examples.SelectMany(e => e)], o.Batch);
            reference = [.. examples.Select((_, i) => flat.Skip(i * arity).Take(arity).ToArray())];
        }
        double referenceSeconds = clock.Elapsed.TotalSeconds;
        var graph = method.Graph(Small, store.Trainable, options);
        using var trainer = new Trainer(store, graph.Training, graph.Loss, new AdamWSettings(LearningRate: 1e-5), new TrainerOptions { Steps = o.Steps });
        double lastLoss = double.NaN;
        trainer.Run(new LabelledBatches(examples, o.Batch, seed: 0, maxLength: o.Seq, reference: reference), p => lastLoss = p.Loss);

        using var process = Process.GetCurrentProcess();
        process.Refresh();
        Console.WriteLine($"{o.Loss}{(o.Lora ? " LoRA" : "")}: hidden {Small.HiddenSize}, {Small.NumHiddenLayers} layers, vocab {Small.VocabSize}; " +
            $"one copy of the weights {weightBytes / 1048576.0:F0} MiB; batch {o.Batch * arity} x seq {o.Seq}, {o.Steps} steps, last loss {lastLoss:F4}");
        Console.WriteLine($"  reference log-probs {referenceSeconds:F1} s; total {clock.Elapsed.TotalSeconds:F1} s; peak resident memory {process.PeakWorkingSet64 / 1048576.0:F0} MiB");
        return 0;
    }
}
