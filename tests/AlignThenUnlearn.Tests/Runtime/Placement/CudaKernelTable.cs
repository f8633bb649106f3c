using System.Text.RegularExpressions;
using AlignThenUnlearn.Tests.Support;
using Onnx;

namespace AlignThenUnlearn.Tests.Runtime.Placement;

/// <summary>ONNX Runtime's CUDA kernels by domain, operator and opset range, read from the vendored
/// CudaOperatorKernels.md (condensed from the project's docs/OperatorKernels.md; its header names the source).</summary>
public sealed class CudaKernelTable
{
    readonly Dictionary<(string Domain, string Op), List<(int From, int To)>> _ranges = [];

    public static CudaKernelTable Load() =>
        Parse(File.ReadAllLines(RepositoryFiles.Path("tests", "AlignThenUnlearn.Tests", "Runtime", "Placement", "CudaOperatorKernels.md")));

    public static CudaKernelTable Parse(IEnumerable<string> lines)
    {
        var table = new CudaKernelTable();
        foreach (var line in lines)
        {
            var m = Regex.Match(line, @"^\| (ai\.onnx|com\.microsoft) \| (\w+) \| (.+) \|$");
            if (!m.Success) continue;
            var ranges = table._ranges[(m.Groups[1].Value, m.Groups[2].Value)] = [];
            foreach (var part in m.Groups[3].Value.Split(';', StringSplitOptions.TrimEntries))
            {
                var r = Regex.Match(part, @"^(?:(\d+)\+|\[(\d+), (\d+)\]|(\d+))$");
                if (!r.Success) throw new FormatException($"CudaOperatorKernels.md: '{part}' in the row of {m.Groups[2].Value} is not N+, [A, B] or N");
                ranges.Add(r.Groups[1].Success ? (int.Parse(r.Groups[1].Value), int.MaxValue)
                    : r.Groups[2].Success ? (int.Parse(r.Groups[2].Value), int.Parse(r.Groups[3].Value))
                    : (int.Parse(r.Groups[4].Value), int.Parse(r.Groups[4].Value)));
            }
        }
        if (table._ranges.Count == 0) throw new FormatException("CudaOperatorKernels.md has no kernel rows");
        return table;
    }

    public int Count => _ranges.Count;

    /// <summary>Whether a CUDA kernel covers <paramref name="op"/> of <paramref name="domain"/> at the model's opset for
    /// that domain (the newest definition at that opset is the one ONNX Runtime looks for; a kernel "N+" covers it).</summary>
    public bool Covers(string domain, string op, int opset) =>
        _ranges.TryGetValue((domain is "" ? "ai.onnx" : domain, op), out var ranges) && ranges.Any(r => r.From <= opset && opset <= r.To);

    /// <summary>The nodes of <paramref name="model"/> (subgraphs included) without a CUDA kernel, as "OpType (name)".
    /// Constant nodes need none: ONNX Runtime turns them into initializers when it loads a graph.</summary>
    public IReadOnlyList<string> Uncovered(ModelProto model)
    {
        var opsets = model.OpsetImport.ToDictionary(o => o.Domain is "" ? "ai.onnx" : o.Domain, o => (int)o.Version);
        var missing = new List<string>();
        void Visit(GraphProto graph)
        {
            foreach (var node in graph.Node)
            {
                var domain = node.Domain is "" ? "ai.onnx" : node.Domain;
                if (domain == "ai.onnx" && node.OpType == "Constant") continue;
                if (!opsets.TryGetValue(domain, out var opset) || !Covers(domain, node.OpType, opset))
                    missing.Add($"{node.OpType} ({node.Name}, {domain} opset {(opsets.TryGetValue(domain, out var v) ? v : 0)})");
                foreach (var a in node.Attribute)
                {
                    if (a.G is not null) Visit(a.G);
                    foreach (var g in a.Graphs) Visit(g);
                }
            }
        }
        Visit(model.Graph);
        return missing;
    }
}
