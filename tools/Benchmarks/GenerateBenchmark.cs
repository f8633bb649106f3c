using System.Diagnostics;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Models.Checkpoints;
using AlignThenUnlearn.Runtime;
using CommandLine;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Benchmarks;

[Verb("generate", HelpText = "Greedy generation tokens per second with the KV cache against recomputing the whole sequence every step, on a random model.")]
public sealed class GenerateOptions
{
    [Option("config", Default = "models/tiny-llama-gqa.json", HelpText = "A config.json to take the shapes from (overridden by the options below).")]
    public string Config { get; set; } = "models/tiny-llama-gqa.json";
    [Option("hidden")] public int? Hidden { get; set; }
    [Option("layers")] public int? Layers { get; set; }
    [Option("heads")] public int? Heads { get; set; }
    [Option("kv-heads")] public int? KvHeads { get; set; }
    [Option("intermediate")] public int? Intermediate { get; set; }
    [Option("vocab")] public int? Vocab { get; set; }
    [Option("batch", Default = 4, HelpText = "Prompts decoded together.")] public int Batch { get; set; }
    [Option("prompt-tokens", Default = 32, HelpText = "Tokens per prompt (random ids).")] public int PromptTokens { get; set; }
    [Option("new-tokens", Default = 64, HelpText = "Tokens generated per prompt (no stop tokens).")] public int NewTokens { get; set; }
    [Option("dtype", Default = "f32", HelpText = "f32 or f16.")] public string Dtype { get; set; } = "f32";
    [Option("device", Default = "cpu", HelpText = "cpu, cuda or auto.")] public string Device { get; set; } = "cpu";
    [Option("threads", Default = 2, HelpText = "ONNX Runtime intra-op threads.")] public int Threads { get; set; }
    [Option("runs", Default = 3, HelpText = "Timed runs of each mode (alternating, after a warm-up run of each).")] public int Runs { get; set; }
    [Option("profile", HelpText = "Folder for ONNX Runtime's profile of the prompt pass (the scoring of RWKU's MMLU prompts): then the prompt pass is run --runs more times on a profiled session and its top op types printed.")]
    public string? Profile { get; set; }
}

/// <summary>Exports a random model of the requested shapes to an artifact folder and times greedy generation with
/// <see cref="GreedyGenerator"/> in both modes on the same prompts: the KV cache (one pass over the prompts, then one
/// token per step) against recomputing every position at every step. Both must choose the same tokens.</summary>
public static class GenerateBenchmark
{
    public static int Run(GenerateOptions o)
    {
        var config = HfConfig.Load(o.Config);
        config = config with
        {
            HiddenSize = o.Hidden ?? config.HiddenSize,
            NumHiddenLayers = o.Layers ?? config.NumHiddenLayers,
            NumAttentionHeads = o.Heads ?? config.NumAttentionHeads,
            NumKeyValueHeads = o.KvHeads ?? config.NumKeyValueHeads,
            IntermediateSize = o.Intermediate ?? config.IntermediateSize,
            VocabSize = o.Vocab ?? config.VocabSize,
            HeadDim = o.Hidden is null && o.Heads is null ? config.HeadDim : null,
        };
        int length = o.PromptTokens + o.NewTokens;
        config = config with { MaxPositionEmbeddings = Math.Max(config.MaxPositionEmbeddings, length) };
        var elementType = o.Dtype switch { "f32" => DataType.Float, "f16" => DataType.Float16, _ => throw new ArgumentException($"--dtype {o.Dtype}: expected f32 or f16") };

        var folder = Directory.CreateTempSubdirectory("atu-benchmark-generate-").FullName;
        try
        {
            var hf = Path.Combine(folder, "hf");
            RandomCheckpoint.Write(config, hf, seed: 1, SafetensorsDType.F32, std: 0.1);
            var artifactFolder = Path.Combine(folder, "artifacts");
            ArtifactExporter.Export(hf, artifactFolder, new ExportOptions { ElementType = elementType, MaxSequenceLength = length });
            var device = ExecutionDevice.Create(o.Device, o.Threads, Console.WriteLine);
            using var generator = GreedyGenerator.Open(ArtifactModel.Open(artifactFolder), device);

            var random = new Random(2);
            IReadOnlyList<int>[] prompts = [.. Enumerable.Range(0, o.Batch).Select(_ => Enumerable.Range(0, o.PromptTokens).Select(_ => random.Next(config.VocabSize)).ToArray())];
            IReadOnlyList<Continuation>? cached = null, recomputed = null;
            double Time(DecodingMode mode)
            {
                var clock = Stopwatch.StartNew();
                var result = generator.Generate(prompts, o.NewTokens, [], mode);
                double ms = clock.Elapsed.TotalMilliseconds;
                if (mode == DecodingMode.KvCache) cached = result; else recomputed = result;
                return ms;
            }
            double TimePrefill()
            {
                var clock = Stopwatch.StartNew();
                generator.NextTokenLogits(prompts, [0]);
                return clock.Elapsed.TotalMilliseconds;
            }
            Time(DecodingMode.KvCache);
            Time(DecodingMode.Recompute);
            TimePrefill();
            var cacheTimes = new List<double>();
            var recomputeTimes = new List<double>();
            var prefillTimes = new List<double>();
            for (int run = 0; run < o.Runs; run++)
            {
                cacheTimes.Add(Time(DecodingMode.KvCache));
                recomputeTimes.Add(Time(DecodingMode.Recompute));
                prefillTimes.Add(TimePrefill());
            }
            bool same = cached!.Zip(recomputed!).All(p => p.First.Tokens.SequenceEqual(p.Second.Tokens));

            long parameters = DecoderBuilder.Parameters(config).Sum(p => p.ElementCount);
            int tokens = o.Batch * o.NewTokens;
            Console.WriteLine($"{config.ModelType}: hidden {config.HiddenSize}, {config.NumHiddenLayers} layers, heads {config.NumAttentionHeads}/{config.NumKeyValueHeads} kv, " +
                $"intermediate {config.IntermediateSize}, vocab {config.VocabSize}, {o.Dtype}, {parameters:N0} parameters");
            Console.WriteLine($"{device.Description}, {o.Threads} intra-op threads; batch {o.Batch} x {o.PromptTokens} prompt tokens, {o.NewTokens} new tokens each; " +
                $"median of {o.Runs} runs (alternating, after one warm-up run of each)");
            Console.WriteLine($"                       median     tokens/s   ms/step");
            Console.WriteLine($"KV cache            {Median(cacheTimes),9:F1} ms {tokens / Median(cacheTimes) * 1000,9:F1} {Median(cacheTimes) / o.NewTokens,9:F2}");
            Console.WriteLine($"recompute prefix    {Median(recomputeTimes),9:F1} ms {tokens / Median(recomputeTimes) * 1000,9:F1} {Median(recomputeTimes) / o.NewTokens,9:F2}");
            Console.WriteLine($"speed-up            {Median(recomputeTimes) / Median(cacheTimes),9:F2}x");
            Console.WriteLine($"prompt pass alone   {Median(prefillTimes),9:F1} ms (included in both)");
            Console.WriteLine($"same tokens in both modes: {(same ? "yes" : "NO")}");
            if (o.Profile is not null) ProfilePromptPass(o, ArtifactModel.Open(artifactFolder), prompts, Median(prefillTimes));
            return same ? 0 : 1;
        }
        finally { Directory.Delete(folder, recursive: true); }
    }

    /// <summary>The prompt pass (<see cref="GreedyGenerator.NextTokenLogits"/>) on a session that writes ONNX Runtime's profile,
    /// one warm-up run (left out of the figures) and --runs timed ones; the profile is written when the session closes.</summary>
    static void ProfilePromptPass(GenerateOptions o, ArtifactModel artifact, IReadOnlyList<int>[] prompts, double measured)
    {
        Directory.CreateDirectory(o.Profile!);
        var prefix = Path.Combine(Path.GetFullPath(o.Profile!), "prompt-pass");
        var earlier = ProfilePrinter.Files(prefix).ToHashSet();
        using (var device = ExecutionDevice.Create(o.Device, o.Threads, profilePrefix: prefix))
        using (var generator = GreedyGenerator.Open(artifact, device))
            for (int run = 0; run <= o.Runs; run++) generator.NextTokenLogits(prompts, [0]);
        var files = ProfilePrinter.Files(prefix).Where(f => !earlier.Contains(f)).ToList();
        if (files.Count != 1) { Console.WriteLine($"expected one new profile {prefix}_*.json, found {files.Count}"); return; }
        ProfilePrinter.Print("prompt pass", files[0], OnnxRuntimeProfile.Read(files[0], skipRuns: 1), measured);
    }

    static double Median(List<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[sorted.Count / 2 - 1] + sorted[sorted.Count / 2]) / 2;
    }
}
