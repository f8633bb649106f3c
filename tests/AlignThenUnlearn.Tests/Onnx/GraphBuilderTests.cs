using AlignThenUnlearn.Onnx;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Tests.Support;
using Onnx;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Tests.Onnx;

/// <summary>GraphBuilder naming, constants, value infos and model assembly; Tensors and Attr conversions.</summary>
public class GraphBuilderTests
{
    static HashSet<string> NamesIn(GraphProto g) =>
        [.. g.Input.Select(i => i.Name), .. g.Initializer.Select(t => t.Name), .. g.Node.SelectMany(n => n.Output), .. g.Node.Select(n => n.Name)];

    [Fact]
    public void Fresh_names_in_a_wrapped_graph_avoid_every_existing_name_and_each_other()
    {
        var first = new GraphBuilder("g");
        var x = first.Input("x", DataType.Float, 2);
        first.Add(first.Mul(x, first.Scalar(2, DataType.Float)), x);
        var existing = NamesIn(first.Graph);

        var wrapped = new GraphBuilder(first.Graph);
        var hints = existing.Concat(["x", "Add", "Mul", "Add_1", "const"]).ToList();
        var fresh = hints.Concat(hints).Select(wrapped.Fresh).ToList();
        Assert.Equal(fresh.Count, fresh.Distinct().Count());
        Assert.Empty(fresh.Intersect(existing));
    }

    [Fact]
    public void Names_in_use_cannot_be_claimed_or_declared_again()
    {
        var b = new GraphBuilder("g");
        var x = b.Input("x", DataType.Float, 2);
        var y = b.Neg(x);
        Assert.Contains("'x'", Assert.Throws<ArgumentException>(() => b.Claim("x")).Message);
        Assert.Contains("'x'", Assert.Throws<ArgumentException>(() => b.Input("x", DataType.Float, 2)).Message);
        Assert.Throws<ArgumentException>(() => b.Node("Identity", [x], outputNames: [y]));
        Assert.Equal(["out"], b.Node("Identity", [x], outputNames: ["out"]));
    }

    [Fact]
    public void Every_node_output_is_a_new_name()
    {
        var b = new GraphBuilder("g");
        var x = b.Input("x", DataType.Float, 6);
        var parts = b.Node("Split", [x], outputCount: 3, attributes: [Attr.Int("num_outputs", 3)]);
        for (int i = 0; i < 5; i++) b.Relu(x);
        var outputs = b.Graph.Node.SelectMany(n => n.Output).ToList();
        Assert.Equal(outputs.Count, outputs.Distinct().Count());
        Assert.DoesNotContain(x, outputs);
        Assert.Equal(3, parts.Distinct().Count());
    }

    [Fact]
    public void Constants_are_shared_by_value_type_and_rank()
    {
        var b = new GraphBuilder("g");
        var pair = b.Ints(1, 2);
        Assert.Equal(pair, b.Ints(1, 2));
        Assert.NotEqual(pair, b.Ints(2, 1));
        Assert.Equal(b.Scalar(0.5, DataType.Float), b.Scalar(0.5, DataType.Float));
        Assert.NotEqual(b.Scalar(0.5, DataType.Float), b.Scalar(0.5, DataType.Double));
        Assert.NotEqual(b.Scalar(0, DataType.Float), b.Scalar(-0.0, DataType.Float));
        var scalar = b.IntScalar(1);
        var vector = b.Ints(1);
        Assert.NotEqual(scalar, vector);

        Assert.Equal(8, b.Graph.Initializer.Count);   // [1,2] [2,1] 0.5f 0.5d 0f -0f 1 [1]
        TensorProto Init(string name) => b.Graph.Initializer.Single(t => t.Name == name);
        Assert.Empty(Init(scalar).Dims);
        Assert.Equal([1L], Init(vector).Dims);
        Assert.Equal([1L, 2L], Tensors.ToInt64(Init(pair)));
        Assert.Equal(DataType.Double, (DataType)Init(b.Scalar(0.5, DataType.Double)).DataType);
    }

    [Fact]
    public void Value_infos_keep_static_symbolic_and_unknown_dims()
    {
        Dim[] shape = [3, "batch", Dim.Unknown];
        var proto = GraphBuilder.ValueInfo("v", DataType.Float16, shape);
        var dims = proto.Type.TensorType.Shape.Dim;
        Assert.Equal(3, dims[0].DimValue);
        Assert.Equal("batch", dims[1].DimParam);
        Assert.Equal(TensorShapeProto.Types.Dimension.ValueOneofCase.None, dims[2].ValueCase);
        Assert.Equal(new TensorInfo(DataType.Float16, shape).ToString(), GraphBuilder.InfoOf(proto)!.ToString());
        Assert.Equal(shape, GraphBuilder.InfoOf(proto)!.Shape);

        Assert.Null(GraphBuilder.InfoOf(GraphBuilder.ValueInfo("r", DataType.Float, null))!.Shape);   // unknown rank
        Assert.Equal([], GraphBuilder.InfoOf(GraphBuilder.ValueInfo("s", DataType.Float, []))!.Shape!);   // scalar
        Assert.Null(GraphBuilder.InfoOf(new ValueInfoProto { Name = "untyped" }));
    }

    [Fact]
    public void Models_import_the_opsets_their_nodes_use()
    {
        var b = new GraphBuilder("g", opset: Opset.Fused);
        var x = b.Input("x", DataType.Float, 2);
        b.Output(b.Relu(x), DataType.Float, 2);
        var plain = b.ToModel();
        Assert.Equal(Opset.IrVersion, plain.IrVersion);
        Assert.Equal([("", 23L)], plain.OpsetImport.Select(o => (o.Domain, o.Version)));

        b.Node("FastGelu", [x], domain: "com.microsoft");
        Assert.Equal([("", 23L), ("com.microsoft", 1L)], b.ToModel().OpsetImport.Select(o => (o.Domain, o.Version)));
    }

    [Fact]
    public void Graph_built_with_the_helpers_computes_what_they_name()
    {
        // x [2,3], w [4,3]: gemm = x w^T; soft = softmax(2x + 1) by row; colsum = column sums of soft;
        // stacked = x with colsum appended as a third row; picked = row 2 of x^T, which is x[:, 2].
        double[] xv = [0.1, -0.4, 0.7, 1.2, 0.3, -0.9];
        double[] wv = Enumerable.Range(0, 12).Select(i => (i - 5.5) / 7).ToArray();
        var b = new GraphBuilder("helpers");
        var x = b.Input("x", DataType.Double, 2, 3);
        var w = b.Input("w", DataType.Double, 4, 3);
        var gemm = b.Gemm(x, w, transB: true);
        var soft = b.Softmax(b.Add(b.Mul(x, b.Scalar(2, DataType.Double)), b.Scalar(1, DataType.Double)));
        var colsum = b.ReduceSum(soft, [0], keepDims: false);
        var stacked = b.Concat(0, x, b.Unsqueeze(colsum, 0));
        var picked = b.Gather(b.Transpose(x, 1, 0), b.IntScalar(2));
        foreach (var o in new[] { gemm, soft, colsum, stacked, picked }) b.Graph.Output.Add(new ValueInfoProto { Name = o });
        var result = GradCheck.Cpu.Run(b.ToModel(), new Dictionary<string, HostTensor> { ["x"] = HostTensor.Of(xv, 2, 3), ["w"] = HostTensor.Of(wv, 4, 3) });

        double X(int i, int j) => xv[i * 3 + j];
        var expectedGemm = new double[8];
        for (int i = 0; i < 2; i++)
            for (int k = 0; k < 4; k++)
                expectedGemm[i * 4 + k] = Enumerable.Range(0, 3).Sum(j => X(i, j) * wv[k * 3 + j]);
        var expectedSoft = new double[6];
        for (int i = 0; i < 2; i++)
        {
            var e = Enumerable.Range(0, 3).Select(j => Math.Exp(2 * X(i, j) + 1)).ToArray();
            for (int j = 0; j < 3; j++) expectedSoft[i * 3 + j] = e[j] / e.Sum();
        }
        var expectedColsum = Enumerable.Range(0, 3).Select(j => expectedSoft[j] + expectedSoft[3 + j]).ToArray();

        AssertClose(expectedGemm, [2, 4], result[gemm]);
        AssertClose(expectedSoft, [2, 3], result[soft]);
        AssertClose(expectedColsum, [3], result[colsum]);
        AssertClose([.. xv, .. expectedColsum], [3, 3], result[stacked]);
        AssertClose([X(0, 2), X(1, 2)], [2], result[picked]);
    }

    static void AssertClose(double[] expected, long[] shape, HostTensor actual)
    {
        Assert.Equal(shape, actual.Shape);
        var values = actual.Doubles;
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - values[i]) <= 1e-12, $"element {i}: expected {expected[i]}, got {values[i]}");
    }

    // ---- Tensors and Attr ----

    [Fact]
    public void Tensor_values_read_back_from_raw_and_typed_fields_alike()
    {
        float[] values = [1.5f, -2f, 0.25f];
        Assert.Equal(values, Tensors.ToFloat(Tensors.FromFloat("raw", values, 3)));
        var typed = new TensorProto { Name = "typed", DataType = (int)DataType.Float };
        typed.Dims.Add(3);
        typed.FloatData.AddRange(values);
        Assert.Equal(values, Tensors.ToFloat(typed));
        Assert.Equal([7L, -3L], Tensors.ToIntegers(Tensors.FromInt32("i32", [7, -3], 2)));
    }

    [Fact]
    public void Half_precision_scalars_have_the_expected_bit_patterns()
    {
        // 1.5 = 0x3FC00000 as float: bfloat16 keeps the top half, 0x3FC0; float16 is sign 0, exponent 15, mantissa 0x200: 0x3E00.
        Assert.Equal(new byte[] { 0xC0, 0x3F }, Tensors.Bytes(Tensors.Scalar("b", DataType.Bfloat16, 1.5)));
        Assert.Equal(new byte[] { 0x00, 0x3E }, Tensors.Bytes(Tensors.Scalar("h", DataType.Float16, 1.5)));
        Assert.Equal([1L], Tensors.Scalar("one", DataType.Float, 1, rank1: true).Dims);
    }

    [Fact]
    public void Reading_a_tensor_still_on_disk_or_a_missing_attribute_names_what_is_wrong()
    {
        var external = new TensorProto { Name = "w_big", DataType = (int)DataType.Float, DataLocation = TensorProto.Types.DataLocation.External };
        Assert.Contains("'w_big'", Assert.Throws<OnnxFormatException>(() => Tensors.ToFloat(external)).Message);

        var node = new NodeProto { Name = "cast_3", OpType = "Cast" };
        var message = Assert.Throws<OnnxFormatException>(() => node.GetIntRequired("to")).Message;
        Assert.Contains("'cast_3'", message);
        Assert.Contains("'to'", message);
        Assert.Equal(-1, node.GetInt("axis", -1));
    }
}
