using System.Diagnostics;
using System.Text.Json.Nodes;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Onnx;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Unlearning;
using CommandLine;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Benchmarks;

[Verb("train", HelpText = "Tokens per second of causal-LM training steps (forward + backward + AdamW) and model FLOPs utilisation.")]
public sealed class TrainOptions
{
    [Option("model", Default = "both", HelpText = "tiny (the --tiny-config file), small (hidden 512, 4 layers, vocab 32000) or both.")] public string Model { get; set; } = "both";
    [Option("tiny-config", Default = "models/tiny-llama-gqa.json", HelpText = "Hugging Face config.json of the tiny model.")] public string TinyConfig { get; set; } = "";
    [Option("batch", Default = 4)] public int Batch { get; set; }
    [Option("seq", Default = 256)] public int Seq { get; set; }
    [Option("steps", Default = 5, HelpText = "Timed training steps (after 2 warm-up steps).")] public int Steps { get; set; }
    [Option("device", Default = "cpu", HelpText = "cpu, cuda or auto.")] public string Device { get; set; } = "cpu";
    [Option("threads", Default = 0, HelpText = "ONNX Runtime intra-op threads (0: its default, one per physical core).")] public int Threads { get; set; }
    [Option("pieces", Default = 1, HelpText = "Each batch as this many pieces at once, each on a thread of its own with --threads intra-op threads (TrainerOptions.ConcurrentPieces, the toy's pre-training); the GEMM rate is then measured at --threads x --pieces threads.")]
    public int Pieces { get; set; } = 1;
    [Option("gemm", Default = 2048, HelpText = "Size n of the n x n x n float32 MatMul that measures the machine's GEMM rate.")] public int Gemm { get; set; }
}

/// <summary>Times full training steps (the <see cref="CausalLmTrainer"/> path: forward, masked cross-entropy, backward,
/// AdamW with clipping) on random tokens, and relates them to the float32 GEMM rate of the same device and threads:
/// model FLOPs utilisation = 6 x parameters x tokens per second / GEMM FLOP/s.</summary>
public static class TrainBenchmark
{
    const int WarmupSteps = 2;

    public static int Run(TrainOptions o)
    {
        if (o.Pieces > 1 && o.Threads < 1) throw new ArgumentException($"--pieces {o.Pieces} needs --threads 1 or more (the threads of each piece)");
        using var device = ExecutionDevice.Create(o.Device, o.Threads, notice: Console.WriteLine);
        var models = new List<(string Name, DecoderConfig Config)>();
        if (o.Model is "tiny" or "both") models.Add(("tiny " + o.TinyConfig, HfConfig.Load(o.TinyConfig)));
        if (o.Model is "small" or "both") models.Add(("small", Small));
        if (models.Count == 0) throw new ArgumentException($"--model {o.Model}: expected tiny, small or both");
        Report(device, models, o);
        return 0;
    }

    /// <summary>Times training steps of each model (<paramref name="o"/>'s batch, seq and steps) and prints them with their
    /// MFU against the GEMM rate of the same device and threads (also the `steps` benchmark's training line).</summary>
    internal static void Report(ExecutionDevice device, IReadOnlyList<(string Name, DecoderConfig Config)> models, TrainOptions o)
    {
        // The GEMM rate is the machine's attainable peak: the fastest of many runs, measured before and after the
        // training steps so that both see the same conditions (other processes share the CPU).
        // Pieces at once use threads x pieces cores, so their MFU is against the GEMM rate of that many threads.
        using var gemmDevice = o.Pieces > 1 ? ExecutionDevice.Create(o.Device, o.Threads * o.Pieces) : null;
        var gemmRates = new List<double> { GemmRate(gemmDevice ?? device, o.Gemm) };
        var results = models.Select(m => Measure(device, m.Name, m.Config, o)).ToList();
        gemmRates.Add(GemmRate(gemmDevice ?? device, o.Gemm));
        double gemm = gemmRates.Max();

        Console.WriteLine($"{device.Description}, {(o.Threads > 0 ? $"{o.Threads} intra-op threads" : "ONNX Runtime's default threads")}" +
            $"{(o.Pieces > 1 ? $", each batch as {o.Pieces} pieces at once (GEMM rate at {o.Threads * o.Pieces} threads)" : "")}, {Environment.ProcessorCount} logical processors");
        Console.WriteLine($"float32 GEMM {o.Gemm}x{o.Gemm}x{o.Gemm}: {gemm / 1e9:F1} GFLOP/s (fastest of {2 * GemmRuns} runs, before and after training: " +
            $"{string.Join(", ", gemmRates.Select(r => $"{r / 1e9:F1}"))})");
        Console.WriteLine($"batch {o.Batch} x seq {o.Seq} = {o.Batch * o.Seq} tokens per step; {o.Steps} timed steps after {WarmupSteps} warm-up steps; AdamW with clipping");
        foreach (var r in results) r.Print(gemm);
    }

    /// <summary>The "small" Llama of the issue 4 and 27 measurements.</summary>
    internal static readonly DecoderConfig Small = new()
    {
        Family = ModelFamily.Llama, HiddenSize = 512, NumHiddenLayers = 4, NumAttentionHeads = 8, NumKeyValueHeads = 8,
        IntermediateSize = 1408, VocabSize = 32000, MaxPositionEmbeddings = 256,
    };

    sealed record Result(string Name, DecoderConfig Config, long Parameters, long Embedding, double SetupSeconds, double[] StepSeconds, double Loss, int Tokens, int Seq)
    {
        public void Print(double gemm)
        {
            double median = StepSeconds[StepSeconds.Length / 2], tokensPerSecond = Tokens / median;
            double Mfu(long n, double extraPerToken = 0) => 100 * (6.0 * n + extraPerToken) * tokensPerSecond / gemm;
            // The attention's two products (scores and context) over every key, as the graph computes them (the causal
            // mask is applied to full [seq, seq] scores): 2 x 2 x seq x heads x head_dim per token and layer forward,
            // three times that with the backward pass.
            double attention = 12.0 * Config.NumHiddenLayers * Seq * Config.NumAttentionHeads * Config.HeadDimension;
            Console.WriteLine();
            Console.WriteLine($"{Name}: {Config.ModelType}, hidden {Config.HiddenSize}, {Config.NumHiddenLayers} layers, vocab {Config.VocabSize}, " +
                $"{Parameters:N0} parameters ({Parameters - Embedding:N0} without the embedding table); graphs and sessions built in {SetupSeconds:F1} s");
            Console.WriteLine($"  step {median * 1000:F1} ms median (fastest {StepSeconds[0] * 1000:F1} ms): {tokensPerSecond:N0} tokens/s, loss {Loss:F3}");
            Console.WriteLine($"  MFU {Mfu(Parameters):F1}% (6 x all parameters), {Mfu(Parameters - Embedding):F1}% (without the embedding table, a lookup), " +
                $"{Mfu(Parameters - Embedding, attention):F1}% (without the embedding table, with the attention's products)");
        }
    }

    static Result Measure(ExecutionDevice device, string name, DecoderConfig config, TrainOptions o)
    {
        var specs = DecoderBuilder.Parameters(config);
        long parameters = specs.Sum(p => p.ElementCount);
        long embedding = specs.Single(p => p.Name == "model.embed_tokens.weight").ElementCount;
        using var store = CausalLmTrainer.RandomParameters(device, config, seed: 1);
        var options = new TrainerOptions { Steps = WarmupSteps + o.Steps, ConcurrentPieces = o.Pieces };
        var setup = Stopwatch.StartNew();
        using var trainer = new CausalLmTrainer(store, config, new AdamWSettings(LearningRate: 1e-4, MaxGradNorm: 1), options, maxLength: o.Seq);
        double setupSeconds = setup.Elapsed.TotalSeconds;
        var ends = new List<TimeSpan>();
        double loss = 0;
        trainer.Train(new RandomTokens(config.VocabSize, o.Batch, o.Seq), p => { ends.Add(p.Elapsed); loss = p.Loss; });
        // Step k's time runs from the end of step k-1 to its own end; the warm-up steps are left out.
        var stepSeconds = ends.Zip(ends.Skip(1)).Skip(WarmupSteps - 1).Select(e => (e.Second - e.First).TotalSeconds).Order().ToArray();
        return new Result(name, config, parameters, embedding, setupSeconds, stepSeconds, loss, o.Batch * o.Seq, o.Seq);
    }

    const int GemmRuns = 8;

    /// <summary>FLOP/s of the fastest of <see cref="GemmRuns"/> n x n x n float32 MatMuls on the device (after 2 warm-up runs),
    /// inputs and output bound in device memory.</summary>
    static double GemmRate(ExecutionDevice device, int n)
    {
        var b = new GraphBuilder("gemm");
        var product = b.MatMul(b.Input("a", DataType.Float, n, n), b.Input("b", DataType.Float, n, n));
        b.Output(product, DataType.Float, n, n);
        using var session = device.Open(b.ToModel());
        var random = new Random(1);
        var values = Enumerable.Range(0, n * n).Select(_ => (float)random.NextDouble()).ToArray();
        using var x = device.Upload<float>(values, [n, n]);
        using var y = device.Upload<float>(values, [n, n]);
        using var z = device.Allocate(TensorElementType.Float, [n, n]);
        using var binding = session.CreateIoBinding();
        binding.BindInput("a", x.Value);
        binding.BindInput("b", y.Value);
        binding.BindOutput(product, z.Value);
        using var run = new RunOptions();
        var times = new List<double>();
        for (int i = 0; i < 2 + GemmRuns; i++)
        {
            var clock = Stopwatch.StartNew();
            session.RunWithBinding(run, binding);
            binding.SynchronizeBoundOutputs();
            if (i >= 2) times.Add(clock.Elapsed.TotalSeconds);
        }
        return 2.0 * n * n * n / times.Min();
    }

    /// <summary>Uniformly random token ids, every position counted by the loss; nothing to resume.</summary>
    sealed class RandomTokens(int vocab, int batch, int seq) : IBatchSource
    {
        readonly Random _random = new(7);

        public IReadOnlyDictionary<string, HostTensor> Next() => new Dictionary<string, HostTensor>
        {
            [TokenBatcher.InputIds] = HostTensor.Of(Enumerable.Range(0, batch * seq).Select(_ => (long)_random.Next(vocab)).ToArray(), batch, seq),
            [TokenBatcher.LossMask] = HostTensor.Of(Enumerable.Repeat(1f, batch * seq).ToArray(), batch, seq),
        };

        public JsonObject SaveState() => [];
        public void RestoreState(JsonObject state) { }
    }
}
