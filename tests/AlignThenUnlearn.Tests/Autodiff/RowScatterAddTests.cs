using AlignThenUnlearn.Autodiff;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Onnx;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Tests.Support;
using Onnx;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Tests.Autodiff;

/// <summary>The embedding gradient's two forms (issue 23): the ScatterND scatter-add the Gather rule writes and the
/// one-hot product deterministic CUDA sessions run. Both run here on the CPU, where each is exact up to float rounding.</summary>
public class RowScatterAddTests
{
    /// <summary>loss = sum(tanh(Gather(table, ids, axis)) * probe): nonlinear, so each row's gradient depends on the
    /// value looked up. Row 2 of <see cref="RepeatedIds"/> is used three times (once as -3), row 0 twice, row 1 never.</summary>
    static (ModelProto Model, string Loss) Lookup(DataType type, long[] tableShape, long[] idsShape, int axis, out Dictionary<string, HostTensor> feeds)
    {
        var b = new GraphBuilder("lookup");
        var table = b.Input("table", type, tableShape.Select(d => new Dim(d, null)).ToArray());
        var ids = b.Input("ids", DataType.Int64, idsShape.Select(d => new Dim(d, null)).ToArray());
        var gathered = b.Gather(table, ids, axis);
        long[] outShape = [.. tableShape[..axis], .. idsShape, .. tableShape[(axis + 1)..]];
        var probe = b.Input("probe", type, outShape.Select(d => new Dim(d, null)).ToArray());
        var loss = b.ReduceSum(b.Mul(b.Tanh(gathered), probe), [], keepDims: false);
        b.Output(loss, type);
        var random = new Random(5);
        // Table values are multiples of 1/64 and the finite-difference steps powers of two, so x +- eps is exact.
        HostTensor Values(long[] shape, Func<double> next)
        {
            var v = Enumerable.Range(0, (int)shape.Aggregate(1L, (p, d) => p * d)).Select(_ => next()).ToArray();
            return type == DataType.Double ? HostTensor.Of(v, shape) : HostTensor.Of(v.Select(x => (float)x).ToArray(), shape);
        }
        feeds = new Dictionary<string, HostTensor>
        {
            ["table"] = Values(tableShape, () => random.Next(-64, 65) / 64.0),
            ["ids"] = HostTensor.Of(RepeatedIds[..(int)idsShape.Aggregate(1L, (p, d) => p * d)], idsShape),
            ["probe"] = Values(outShape, () => random.NextDouble() * 2 - 1),
        };
        return (b.ToModel(), loss);
    }

    static readonly long[] RepeatedIds = [0, 2, 2, -3, 4, 0];

    static Dictionary<string, HostTensor> RunBothForms(ModelProto forward, string loss, Dictionary<string, HostTensor> feeds,
        out HostTensor scatter, out HostTensor product, out GradientGraph grads)
    {
        grads = Gradients.Build(forward, loss, ["table"]);
        Assert.Equal(1, RowScatterAdd.Count(grads.Model));
        var rewritten = RowScatterAdd.Rewrite(grads.Model);
        Assert.Equal(0, RowScatterAdd.Count(rewritten));
        Assert.DoesNotContain(rewritten.Graph.Node, n => n.OpType == "ScatterND");
        Assert.Contains(rewritten.Graph.Node, n => n.OpType == "OneHot");
        var name = grads.Gradients["table"];
        scatter = GradCheck.Cpu.Run(grads.Model, feeds)[name];
        product = GradCheck.Cpu.Run(rewritten, feeds)[name];
        return feeds;
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    public void One_hot_product_equals_the_scatter_add_in_float32_for_repeated_indices(int axis)
    {
        // axis 0: an embedding table [7, 3] and ids [2, 3]; axis 1: the gathered axis moved to the front and back.
        long[] tableShape = axis == 0 ? [7, 3] : [2, 5, 3];
        var (model, loss) = Lookup(DataType.Float, tableShape, [2, 3], axis, out var feeds);
        RunBothForms(model, loss, feeds, out var scatter, out var product, out _);
        Assert.Equal(scatter.Shape, product.Shape);
        var (s, p) = (scatter.Floats, product.Floats);
        for (int i = 0; i < s.Length; i++)
            Assert.True(Math.Abs(s[i] - p[i]) <= 1e-6f * Math.Max(1f, Math.Abs(s[i])), $"element {i}: scatter-add {s[i]:G9}, one-hot product {p[i]:G9}");
        // Row 1 is never looked up: exactly zero in both forms (axis 0 only, where rows are table rows).
        if (axis == 0) Assert.All(p.Skip(3).Take(3), v => Assert.Equal(0f, v));
    }

    /// <summary>Double: a step of 2^-20 leaves ~1e-13 of truncation. Float: the loss itself is rounded to ~1e-6, which a
    /// step of 2^-10 turns into ~5e-4 of the difference quotient; the float case checks the form CUDA runs, loosely.</summary>
    [Theory]
    [InlineData(DataType.Double, 20, 1e-6, 1e-9)]
    [InlineData(DataType.Float, 10, 1e-3, 2e-3)]
    public void One_hot_product_matches_central_differences_for_repeated_indices(DataType type, int stepExponent, double rtol, double atol)
    {
        var (model, loss) = Lookup(type, [5, 3], [2, 3], 0, out var feeds);
        RunBothForms(model, loss, feeds, out _, out var product, out _);
        using var session = GradCheck.Cpu.Open(model);
        double Loss(IReadOnlyDictionary<string, HostTensor> f) => ExecutionDevice.Run(session, f, [loss])[loss].AsDoubles().Sum();
        var analytic = product.AsDoubles();
        for (int i = 0; i < analytic.Length; i++)
        {
            double numeric = GradCheck.CentralDifference(Loss, feeds, "table", i, eps: Math.ScaleB(1, -stepExponent));
            double tol = atol + rtol * Math.Max(Math.Abs(numeric), Math.Abs(analytic[i]));
            Assert.True(Math.Abs(numeric - analytic[i]) <= tol, $"table[{i}]: one-hot product {analytic[i]:G10}, central differences {numeric:G10}");
        }
    }

    [Fact]
    public void A_decoder_training_graph_has_one_marked_scatter_and_the_same_gradients_in_both_forms()
    {
        // The embedding lookup of the training lowering is the only Gather whose gradient is a row scatter; the
        // rewritten graph leaves every other node as it was and gives the same gradients for all parameters.
        var config = CompositeGradientTests.TinyConfig(ModelFamily.Llama, layers: 2);
        var decoder = DecoderBuilder.Build(config, DecoderGraphOptions.UpToHiddenState(2));
        var model = decoder.Model.Clone();
        var b = new GraphBuilder(model.Graph);
        var loss = b.ReduceSum(b.Mul(decoder.HiddenStates[2], decoder.HiddenStates[2]), [], keepDims: false);
        b.Output(loss, DataType.Float);
        var grads = Gradients.Build(model, loss, decoder.Parameters.Select(p => p.Name));
        Assert.Equal(1, RowScatterAdd.Count(grads.Model));
        var rewritten = RowScatterAdd.Rewrite(grads.Model);
        Assert.Equal(grads.Model.Graph.Node.Count - 1, rewritten.Graph.Node.Count(n => grads.Model.Graph.Node.Any(o => o.Name == n.Name)));

        var feeds = RandomInit.Create(decoder.Parameters, 3, std: 0.3, normStd: 0.2).ToDictionary(kv => kv.Key, kv => new HostTensor(kv.Value.Data, kv.Value.Shape));
        feeds[DecoderGraph.InputIds] = HostTensor.Of(new long[] { 3, 7, 3, 1, 12, 5, 3, 9, 9, 0 }, 2, 5);
        var scatter = GradCheck.Cpu.Run(grads.Model, feeds);
        var product = GradCheck.Cpu.Run(rewritten, feeds);
        foreach (var (parameter, gradient) in grads.Gradients)
        {
            var (s, p) = (scatter[gradient].AsDoubles(), product[gradient].AsDoubles());
            for (int i = 0; i < s.Length; i++)
                Assert.True(Math.Abs(s[i] - p[i]) <= 1e-5 * Math.Max(1, Math.Abs(s[i])), $"{parameter}[{i}]: scatter-add {s[i]:G9}, one-hot product {p[i]:G9}");
        }
    }
}
