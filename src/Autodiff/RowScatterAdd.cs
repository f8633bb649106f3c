using AlignThenUnlearn.Onnx;
using Onnx;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Autodiff;

/// <summary>The Gather gradient's scatter-add of rows (an embedding table's gradient: each token's gradient row added to
/// its row of the table; a token seen twice adds twice), in two forms with the same values:
/// <list type="bullet">
/// <item><b>ScatterND</b> with <c>reduction="add"</c> (<see cref="Emit"/>): what the gradient rule writes; exact and
/// sequential on the CPU, but ONNX Runtime's CUDA kernel adds colliding rows with atomics, in whatever order its threads
/// arrive, so float sums differ run to run;</item>
/// <item><b>one-hot product</b> (<see cref="OneHotProduct"/>): <c>OneHot(indices, V, axis 0)</c> [V, T] times the
/// gradient rows [T, D]: a matrix product, deterministic on CUDA. It costs V x T values of the gradient's type (for
/// Phi-3-mini's 32,064-token vocabulary and a batch of 16 x 256 tokens, 525 MB in float32, held while the product
/// runs) and 2 V T D multiply-adds (0.8 TFLOP per step there).</item>
/// </list>
/// <see cref="Rewrite"/> turns every marked scatter of a graph into the second form; the device decides
/// (<c>ExecutionDevice</c>: deterministic CUDA sessions rewrite, the CPU and <c>--fast-cuda</c> keep ScatterND).</summary>
public static class RowScatterAdd
{
    /// <summary>Doc string of the ScatterND nodes <see cref="Emit"/> writes. It promises the form <see cref="Rewrite"/>
    /// relies on: <c>indices</c> is [I..., 1] of non-negative int64 row numbers of <c>data</c> [V, R...], and
    /// <c>updates</c> is [I..., R...].</summary>
    public const string Marker = "atu:row_scatter_add";

    /// <summary><paramref name="data"/> plus each row of <paramref name="updates"/> added to the row of
    /// <paramref name="data"/> that <paramref name="indices"/> names (see <see cref="Marker"/> for the shapes).</summary>
    public static string Emit(GraphBuilder b, string data, string indices, string updates) =>
        b.Node("ScatterND", [data, indices, updates], 1, [Attr.String("reduction", "add")], name: "RowScatterAdd", docString: Marker)[0];

    /// <summary>The same sum as <see cref="Emit"/> as a one-hot matrix product, written into <paramref name="output"/>
    /// (a fresh name when null). <paramref name="type"/> is the element type of <paramref name="data"/> and <paramref name="updates"/>.</summary>
    public static string OneHotProduct(GraphBuilder b, string data, string indices, string updates, DataType type, string? output = null)
    {
        var rows = b.Reshape(indices, -1);                                                   // [T]
        var depth = b.Gather(b.Shape(data), b.Ints(0));                                      // [1]: V
        // ONNX Runtime's OneHot kernels write float, float16 (CUDA) and bfloat16; other types are cast from float.
        var oneHotType = type is DataType.Float or DataType.Float16 or DataType.Bfloat16 ? type : DataType.Float;
        var offOn = Tensors.Raw("one_hot_values", oneHotType,
            [.. Tensors.Scalar("off", oneHotType, 0).RawData.ToByteArray(), .. Tensors.Scalar("on", oneHotType, 1).RawData.ToByteArray()], 2);
        var oneHot = b.Op("OneHot", [rows, depth, b.Initializer(offOn)], Attr.Int("axis", 0));   // [V, T]
        if (oneHotType != type) oneHot = b.Cast(oneHot, type);
        var flatUpdates = b.Reshape(updates, b.Concat(0, b.Shape(rows), b.Ints(-1)));       // [T, D]
        var sum = b.Reshape(b.MatMul(oneHot, flatUpdates), b.Shape(data));                  // [V, R...]
        return b.Node("Add", [data, sum], 1, name: "RowScatterAddByProduct", outputNames: output is null ? null : [output])[0];
    }

    /// <summary>How many scatters of <paramref name="model"/> carry the <see cref="Marker"/>.</summary>
    public static int Count(ModelProto model) => model.Graph.Node.Count(IsMarked);

    /// <summary>A copy of <paramref name="model"/> with every marked scatter replaced, in place, by its one-hot product
    /// (the same output name, so the rest of the graph is untouched).</summary>
    public static ModelProto Rewrite(ModelProto model)
    {
        var copy = model.Clone();
        var graph = copy.Graph;
        var shapes = ShapeInference.Run(graph);
        var opset = Opset.DefaultDomainVersion(copy);
        foreach (var node in graph.Node.Where(IsMarked).ToList())
        {
            // The data (zeros made from a forward value) has a known type where the incoming gradient may not.
            var type = shapes[node.Input[0]]?.ElementType ?? shapes[node.Input[2]]?.ElementType
                ?? throw new GradientException($"node '{node.Name}' (ScatterND): the element type of '{node.Input[0]}' cannot be inferred for its one-hot form");
            int at = graph.Node.IndexOf(node);
            graph.Node.RemoveAt(at);   // frees the output name for the replacement
            int end = graph.Node.Count;
            OneHotProduct(new GraphBuilder(graph, opset), node.Input[0], node.Input[1], node.Input[2], type, node.Output[0]);
            var added = graph.Node.Skip(end).ToList();
            while (graph.Node.Count > end) graph.Node.RemoveAt(graph.Node.Count - 1);
            for (int i = 0; i < added.Count; i++) graph.Node.Insert(at + i, added[i]);   // keeps the nodes in topological order
        }
        return copy;
    }

    static bool IsMarked(NodeProto n) => n.OpType == "ScatterND" && n.Domain == "" && n.DocString == Marker;
}
