using System.Diagnostics;
using AlignThenUnlearn.Autodiff;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Onnx;
using AlignThenUnlearn.Runtime;
using CommandLine;
using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using Onnx;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Benchmarks;

[Verb("block", HelpText = "Forward and forward+backward time of one decoder layer (float32) on the CPU execution provider.")]
public sealed class BlockOptions
{
    [Option("family", Default = ModelFamily.Llama, HelpText = "Llama, Mistral, Qwen2 or Phi3.")] public ModelFamily Family { get; set; }
    [Option("hidden", Default = 512)] public int Hidden { get; set; }
    [Option("heads", Default = 8)] public int Heads { get; set; }
    [Option("kv-heads", Default = 8)] public int KvHeads { get; set; }
    [Option("intermediate", Default = 1408)] public int Intermediate { get; set; }
    [Option("batch", Default = 4)] public int Batch { get; set; }
    [Option("seq", Default = 256)] public int Seq { get; set; }
    [Option("threads", Default = 2, HelpText = "ONNX Runtime intra-op threads.")] public int Threads { get; set; }
    [Option("runs", Default = 10, HelpText = "Timed runs of each graph (after 2 warm-up runs).")] public int Runs { get; set; }
    [Option("out", HelpText = "Folder for the graphs and ONNX Runtime's optimized graphs (default: a folder in the temp directory).")] public string? Out { get; set; }
    [Option("ops", HelpText = "Print the operator histogram and the matrix products of the optimized training graph.")] public bool Ops { get; set; }
    [Option("profile", HelpText = "Profile one more run of each graph with ONNX Runtime's profiler and print the time per operator type.")] public bool Profile { get; set; }
}

/// <summary>Times one decoder layer forward and forward+backward (gradients of every parameter) and inspects the graph
/// ONNX Runtime actually runs: transposes left in front of matrix products are work a fused MatMul would avoid.</summary>
public static class BlockBenchmark
{
    public static int Run(BlockOptions o)
    {
        var config = new DecoderConfig
        {
            Family = o.Family, HiddenSize = o.Hidden, NumHiddenLayers = 2, NumAttentionHeads = o.Heads, NumKeyValueHeads = o.KvHeads,
            IntermediateSize = o.Intermediate, VocabSize = 32, AttentionBias = o.Family == ModelFamily.Qwen2,
        };
        // hidden_states[1] of a two-layer model from inputs_embeds: exactly decoder layer 0.
        var block = DecoderBuilder.Build(config, new DecoderGraphOptions { InputsEmbeds = true, HiddenStates = [1], Logits = false });
        var forward = block.Model.Clone();
        var b = new GraphBuilder(forward.Graph);
        var probe = b.Input("probe", DataType.Float, DecoderGraph.Batch, DecoderGraph.Sequence, o.Hidden);
        var loss = b.ReduceSum(b.Mul(block.HiddenStates[1], probe), [], keepDims: false);   // every output element seeds its own gradient
        b.Output(loss, DataType.Float);
        var training = Gradients.Build(forward, loss, block.Parameters.Select(p => p.Name));

        var folder = o.Out ?? Path.Combine(Path.GetTempPath(), "atu-benchmark-block");
        Directory.CreateDirectory(folder);
        ModelFile.Save(forward, Path.Combine(folder, "forward.onnx"));
        ModelFile.Save(training.Model, Path.Combine(folder, "training.onnx"));
        var device = ExecutionDevice.Create("cpu", o.Threads);
        string forwardOptimized = Path.Combine(folder, "forward.optimized.onnx"), trainingOptimized = Path.Combine(folder, "training.optimized.onnx");
        using var forwardSession = device.Open(forward, forwardOptimized);
        using var trainingSession = device.Open(training.Model, trainingOptimized);

        var random = new Random(1);
        var inputs = RandomInit.Create(block.Parameters, seed: 1).ToDictionary(kv => kv.Key, kv => ((float[])kv.Value.Data, kv.Value.Shape));
        long[] activation = [o.Batch, o.Seq, o.Hidden];
        inputs[DecoderGraph.InputsEmbeds] = (Normal(random, o.Batch * o.Seq * o.Hidden), activation);
        inputs["probe"] = (Normal(random, o.Batch * o.Seq * o.Hidden), activation);

        var (forwardTimes, trainingTimes) = TimeAlternately(forwardSession, [loss], trainingSession, [loss, .. training.Gradients.Values], inputs, o.Runs);
        double fwd = Median(forwardTimes), both = Median(trainingTimes);
        var (fwdFlops, bwdFlops) = Flops(config, o.Batch, o.Seq);

        long parameters = block.Parameters.Sum(p => p.ElementCount);
        Console.WriteLine($"decoder layer ({o.Family}): hidden {o.Hidden}, heads {o.Heads}/{o.KvHeads} kv, intermediate {o.Intermediate}, batch {o.Batch} x seq {o.Seq}, float32, {parameters:N0} parameters");
        Console.WriteLine($"CPU execution provider, {o.Threads} intra-op threads, {o.Runs} runs of each graph (alternating) after 2 warm-up runs");
        Console.WriteLine($"                     median      fastest");
        Console.WriteLine($"forward           {fwd,9:F1} ms {forwardTimes.Min(),9:F1} ms   ({fwdFlops / fwd / 1e6:F1} GFLOP/s on matrix products, median)");
        Console.WriteLine($"forward+backward  {both,9:F1} ms {trainingTimes.Min(),9:F1} ms   ({(fwdFlops + bwdFlops) / both / 1e6:F1} GFLOP/s)");
        Console.WriteLine($"time ratio        {both / fwd,9:F2}    {trainingTimes.Min() / forwardTimes.Min(),9:F2}");
        Console.WriteLine($"FLOP ratio        {(fwdFlops + bwdFlops) / fwdFlops,9:F2}   (matrix products: forward {fwdFlops / 1e9:F2} GFLOP, backward {bwdFlops / 1e9:F2} GFLOP)");
        Report("forward", forwardOptimized, false);
        Report("training", trainingOptimized, o.Ops);
        if (o.Profile)
        {
            Profile("forward", device, forward, [loss], inputs, folder);
            Profile("training", device, training.Model, [loss, .. training.Gradients.Values], inputs, folder);
        }
        return 0;
    }

    /// <summary>Runs the two sessions alternately (so that both see the same load from other processes) and returns
    /// the wall times of the runs after the warm-up ones.</summary>
    static (List<double> First, List<double> Second) TimeAlternately(InferenceSession first, string[] firstOutputs,
        InferenceSession second, string[] secondOutputs, Dictionary<string, (float[] Data, long[] Shape)> inputs, int runs)
    {
        var values = inputs.ToDictionary(kv => kv.Key, kv => OrtValue.CreateTensorValueFromMemory(kv.Value.Data, kv.Value.Shape));
        try
        {
            using var options = new RunOptions();
            double RunOnce(InferenceSession session, string[] outputs)
            {
                var names = session.InputMetadata.Keys.ToArray();
                var clock = Stopwatch.StartNew();
                using (session.Run(options, names, names.Select(n => values[n]).ToArray(), outputs)) { }
                return clock.Elapsed.TotalMilliseconds;
            }
            var times = (First: new List<double>(), Second: new List<double>());
            for (int i = 0; i < runs + 2; i++)
            {
                double a = RunOnce(first, firstOutputs), b = RunOnce(second, secondOutputs);
                if (i >= 2) { times.First.Add(a); times.Second.Add(b); }
            }
            return times;
        }
        finally { foreach (var v in values.Values) v.Dispose(); }
    }

    /// <summary>Runs a graph a few times under ONNX Runtime's profiler and prints the kernel time per operator type.</summary>
    static void Profile(string name, ExecutionDevice device, ModelProto model, string[] outputs, Dictionary<string, (float[] Data, long[] Shape)> inputs, string folder)
    {
        using var options = device.Options();
        options.ProfileOutputPathPrefix = Path.Combine(folder, name + "-profile");   // read when profiling is switched on
        options.EnableProfiling = true;
        string path;
        using (var session = new InferenceSession(model.ToByteArray(), options))
        {
            TimeAlternately(session, outputs, session, outputs, inputs, 1);   // 6 runs, all profiled
            path = session.EndProfiling();
        }
        using var json = System.Text.Json.JsonDocument.Parse(File.ReadAllText(path));
        var byOp = new Dictionary<string, double>();
        foreach (var e in json.RootElement.EnumerateArray())
            if (e.GetProperty("cat").GetString() == "Node" && e.GetProperty("name").GetString()!.EndsWith("_kernel_time", StringComparison.Ordinal))
            {
                var op = e.GetProperty("args").GetProperty("op_name").GetString()!;
                byOp[op] = byOp.GetValueOrDefault(op) + e.GetProperty("dur").GetDouble() / 1000 / 6;   // per run
            }
        double total = byOp.Values.Sum();
        Console.WriteLine($"{name}: kernel time per run by operator ({path}), {total:F1} ms in all");
        foreach (var (op, ms) in byOp.OrderByDescending(kv => kv.Value).Take(16))
            Console.WriteLine($"  {op,-24} {ms,8:F1} ms  {100 * ms / total,5:F1}%");
    }

    /// <summary>Multiply-adds x 2 of the matrix products; backward computes both operand gradients of each
    /// (the block input's norm weight needs the gradient through the q/k/v projections too).</summary>
    static (double Forward, double Backward) Flops(DecoderConfig c, int batch, int seq)
    {
        double tokens = (double)batch * seq, h = c.HiddenSize, d = c.HeadDimension;
        double qkv = 2 * tokens * h * (c.NumAttentionHeads + 2 * c.NumKeyValueHeads) * d;
        double output = 2 * tokens * c.NumAttentionHeads * d * h;
        double mlp = 3 * 2 * tokens * h * c.IntermediateSize;
        double attention = 2 * 2 * batch * c.NumAttentionHeads * (double)seq * seq * d;   // scores and context, unmasked as computed
        double forward = qkv + output + mlp + attention;
        return (forward, 2 * forward);
    }

    /// <summary>What ONNX Runtime kept of the graph: transposes feeding a matrix product, fused products, all transposes.</summary>
    static void Report(string name, string optimizedPath, bool histogram)
    {
        var graph = ModelProto.Parser.ParseFrom(File.ReadAllBytes(optimizedPath)).Graph;
        var producer = new Dictionary<string, NodeProto>();
        foreach (var n in graph.Node) foreach (var output in n.Output) producer[output] = n;
        bool IsProduct(NodeProto n) => n.OpType is "MatMul" or "Gemm" or "FusedMatMul" or "FusedGemm";
        int transposesIntoProducts = graph.Node.Where(IsProduct)
            .Sum(n => n.Input.Take(2).Count(i => producer.TryGetValue(i, out var p) && p.OpType == "Transpose"));
        int Count(string op) => graph.Node.Count(n => n.OpType == op);
        var consumed = graph.Node.SelectMany(n => n.Input).Concat(graph.Output.Select(v => v.Name)).ToHashSet();
        int unused = graph.Node.Count(n => !n.Output.Any(consumed.Contains));
        Console.WriteLine($"{name} graph as optimized ({optimizedPath}): {graph.Node.Count} nodes, {Count("FusedMatMul")} FusedMatMul, " +
            $"{Count("MatMul")} MatMul, {Count("Gemm")} Gemm, {Count("Transpose")} Transpose, {transposesIntoProducts} Transpose feeding a MatMul/Gemm, {unused} nodes whose outputs nothing uses");
        if (!histogram) return;
        foreach (var group in graph.Node.GroupBy(n => n.OpType).OrderByDescending(g => g.Count()))
            Console.WriteLine($"  {group.Key,-28} {group.Count()}");
        foreach (var n in graph.Node.Where(n => !n.Output.Any(consumed.Contains)))
            Console.WriteLine($"  unused: {n.OpType} '{n.Name}'");
        foreach (var n in graph.Node.Where(IsProduct))
        {
            string Source(string input) => producer.TryGetValue(input, out var p)
                ? p.OpType + (p.OpType == "Transpose" ? $"[{string.Join(",", p.Attribute.First(a => a.Name == "perm").Ints)}]" : "") + $" '{p.Name}'" : $"input '{input}'";
            var attributes = string.Join(" ", n.Attribute.Select(a => $"{a.Name}={(a.Type == AttributeProto.Types.AttributeType.Float ? a.F : a.I)}"));
            Console.WriteLine($"  {n.OpType} '{n.Name}' {attributes} <- {string.Join(", ", n.Input.Take(2).Select(Source))}");
        }
    }

    static double Median(List<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }

    static float[] Normal(Random random, int count) =>
        Enumerable.Range(0, count).Select(_ => (float)(Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble()))).ToArray();
}
