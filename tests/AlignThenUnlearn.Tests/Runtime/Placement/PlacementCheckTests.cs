using System.Globalization;
using System.Text;
using AlignThenUnlearn.Onnx;
using AlignThenUnlearn.Tests.Support;
using Onnx;
using Xunit.Abstractions;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Tests.Runtime.Placement;

/// <summary>Issue 23: every graph the product runs fits ONNX Runtime's CUDA provider without a GPU here: each node has a
/// CUDA kernel (vendored table), and the real 1.31.0 provider, loaded against stand-in CUDA libraries, keeps everything
/// but int64 shape arithmetic on the device and inserts at most <see cref="CopyBudget"/> copy nodes into a training step.</summary>
public sealed class PlacementCheckTests(MiniLmFolder minilm, ITestOutputHelper output) : IClassFixture<MiniLmFolder>
{
    /// <summary>Copy nodes (host to device plus device to host) allowed in one training step graph: each synchronises the
    /// device. The step graphs need about two (the loss and metrics read back, a scalar input sent).</summary>
    public const int CopyBudget = 4;

    /// <summary>The report of the last run of the partition check (also printed to the test output).</summary>
    public static string ReportPath => Path.Combine(AppContext.BaseDirectory, "placement-report.md");

    [Fact]
    public void The_vendored_kernel_table_reads_opset_ranges_and_refuses_what_CUDA_lacks()
    {
        var table = CudaKernelTable.Load();
        Assert.True(table.Count > 200, $"{table.Count} kernels: the table was cut short");
        Assert.True(table.Covers("", "Add", 23));                      // 14+
        Assert.True(table.Covers("ai.onnx", "Relu", 13));             // 13 exactly
        Assert.False(table.Covers("", "Scatter", 11));                 // [9, 10] only
        Assert.True(table.Covers("com.microsoft", "MatMulNBits", 1));
        Assert.False(table.Covers("", "StringNormalizer", 23));        // a CPU-only operator
        var b = new GraphBuilder("g");
        var x = b.Input("x", DataType.Float, 2);
        b.Output(b.Op("StringNormalizer", b.Op("Relu", x)), DataType.Float, 2);
        Assert.StartsWith("StringNormalizer (StringNormalizer, ai.onnx opset ", Assert.Single(table.Uncovered(b.ToModel())));
    }

    [Fact]
    public void Every_node_of_every_graph_the_product_runs_has_a_CUDA_kernel()
    {
        var table = CudaKernelTable.Load();
        var missing = GraphCatalogue.All(minilm.Path).SelectMany(g => table.Uncovered(g.Model).Select(m => $"{g.Name}: {m}")).ToList();
        Assert.True(missing.Count == 0, "nodes without a CUDA kernel:\n" + string.Join("\n", missing));
    }

    [Fact]
    public void No_training_step_graph_finds_broadcast_axes_at_run_time()
    {
        // Broadcasting.SumTo's dynamic path (NonZero over compared shapes, a ReduceSum over the axes found) and a mean's
        // count from Size are host round trips on CUDA; every step graph must know its shapes well enough to avoid them.
        var dynamic = GraphCatalogue.All(minilm.Path).Where(g => g.Role == GraphRole.TrainingStep)
            .SelectMany(g => g.Model.Graph.Node.Where(n => n.OpType is "NonZero" or "Size" || n.OpType == "ReduceSum" && n.GetInt("noop_with_empty_axes", 0) == 1)
                .Select(n => $"{g.Name}: {n.OpType} ({n.Name})"))
            .ToList();
        Assert.True(dynamic.Count == 0, string.Join("\n", dynamic.Take(20)));
    }

    [SkippableFact]
    public void The_CUDA_provider_keeps_step_graphs_on_the_device_with_at_most_4_copies()
    {
        using var temp = new TempFolder();
        var probe = CudaPlacementProbe.Build(temp.Path, out var cannot);
        if (cannot is not null) throw new SkipTestException($"the CUDA placement check cannot run here: {cannot}");

        var graphs = GraphCatalogue.All(minilm.Path).ToList();
        var files = graphs.Select((g, i) =>
        {
            var path = temp.File($"{i:00}.onnx");
            ModelFile.Save(g.Model, path);
            return path;
        }).ToList();
        var partitions = probe.Open(files, TimeSpan.FromMinutes(5));

        var rows = graphs.Zip(partitions, (g, p) => (Graph: g, Partition: p, Types: OutputTypes(p))).ToList();
        var report = Report(rows.Select(r => (r.Graph, r.Partition)).ToList());
        File.WriteAllText(ReportPath, report);
        output.WriteLine(report);

        var problems = new List<string>();
        foreach (var (graph, p, types) in rows)
        {
            if (p.Error is not null) { problems.Add($"{graph.Name}: ONNX Runtime refused the graph: {p.Error}"); continue; }
            foreach (var (op, name) in p.CpuNodes.Where(n => !IsShapeArithmetic(n.Name, types)))
                problems.Add($"{graph.Name}: {op} ({name}) runs on the CPU and is not int64 shape arithmetic");
            if (graph.Role == GraphRole.TrainingStep && p.Copies > CopyBudget)
                problems.Add($"{graph.Name}: {p.CopiesFromHost} host-to-device and {p.CopiesToHost} device-to-host copies, more than {CopyBudget} ({string.Join(", ", p.Copied.Take(12))})");
        }
        Assert.True(problems.Count == 0, string.Join("\n", problems));
    }

    /// <summary>A CPU node is shape arithmetic when every output it has is int64 (the optimised model records the types).</summary>
    static bool IsShapeArithmetic(string node, IReadOnlyDictionary<string, List<DataType?>> types) =>
        types.TryGetValue(node, out var outputs) && outputs.Count > 0 && outputs.All(t => t == DataType.Int64);

    /// <summary>Node name -> the element types of its outputs, from the optimised model ONNX Runtime saved.</summary>
    static Dictionary<string, List<DataType?>> OutputTypes(Partition p)
    {
        if (p.Error is not null) return [];
        var graph = ModelFile.Load(p.OptimizedModelPath, loadExternalData: false).Graph;
        var shapes = ShapeInference.Run(graph);
        var known = graph.ValueInfo.Concat(graph.Output).Concat(graph.Input)
            .GroupBy(v => v.Name).ToDictionary(v => v.Key, v => (DataType?)(DataType)v.First().Type.TensorType.ElemType);
        return graph.Node.Where(n => n.Name != "").GroupBy(n => n.Name).ToDictionary(g => g.Key,
            g => g.First().Output.Where(o => o != "").Select(o => known.TryGetValue(o, out var t) ? t : shapes[o]?.ElementType).ToList());
    }

    static string Report(IReadOnlyList<(CatalogueGraph Graph, Partition Partition)> rows)
    {
        var s = new StringBuilder();
        s.AppendLine(CultureInfo.InvariantCulture, $"CUDA placement of {rows.Count} graphs (ONNX Runtime 1.31.0 CUDA provider on stand-in CUDA libraries, {DateTime.UtcNow:yyyy-MM-dd}):");
        s.AppendLine();
        s.AppendLine("| Graph | Role | Nodes | CUDA nodes | CPU nodes | Copies (to device / to host) |");
        s.AppendLine("|---|---|---:|---:|---:|---:|");
        foreach (var (g, p) in rows)
            s.AppendLine(p.Error is not null ? $"| {g.Name} | {g.Role} | refused: {p.Error} | | | |"
                : $"| {g.Name} | {g.Role} | {p.CudaNodes + p.CpuNodes.Count} | {p.CudaNodes} | {p.CpuNodes.Count} | {p.Copies} ({p.CopiesFromHost} / {p.CopiesToHost}) |");
        return s.ToString();
    }
}
