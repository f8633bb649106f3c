using AlignThenUnlearn.Models;
using AlignThenUnlearn.Onnx;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Tests.Support;
using AlignThenUnlearn.Unlearning;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Tests.Runtime;

/// <summary>How a batch is cut into micro-batches and what every piece divides by (values by hand), and the preset key's
/// check.</summary>
public sealed class MicroBatchingTests : IDisposable
{
    readonly TempFolder _temp = new();
    public void Dispose() => _temp.Dispose();

    [Fact]
    public void Pieces_take_consecutive_rows_and_paired_batches_the_same_examples_from_both_halves()
    {
        Assert.Equal([[0, 1], [2, 3], [4]], MicroBatching.PieceRows(5, 2, pairedHalves: false));
        // 3 examples: rows 0-2 their first sequences, rows 3-5 their second ones.
        Assert.Equal([[0, 1, 3, 4], [2, 5]], MicroBatching.PieceRows(6, 2, pairedHalves: true));
        Assert.Throws<ArgumentException>(() => MicroBatching.PieceRows(5, 2, pairedHalves: true));
    }

    [Fact]
    public void Totals_count_the_whole_batch_as_each_loss_divides()
    {
        var b = new GraphBuilder("totals");
        b.Input("mask", DataType.Float, DecoderGraph.Batch, DecoderGraph.Sequence);
        foreach (var kind in Enum.GetValues<BatchCount>()) MicroBatching.TotalInput(b, kind, "mask");
        var model = b.ToModel();
        // Rows [1 1 0], [0 0 1], [1 0 1], [0 0 0]: positions 4; labels (positions 0..1) 3; rows 4; rows with a label 2; pairs 2.
        var totals = MicroBatching.Totals(model, new Dictionary<string, HostTensor> { ["mask"] = HostTensor.Of([1f, 1, 0, 0, 0, 1, 1, 0, 1, 0, 0, 0], 4, 3) });
        Assert.Equal(new Dictionary<string, float>
        {
            ["batch_total.positions.mask"] = 5, ["batch_total.labels.mask"] = 3, ["batch_total.rows.mask"] = 4,
            ["batch_total.labelled_rows.mask"] = 2, ["batch_total.pairs.mask"] = 2,
        }, totals.ToDictionary(t => t.Key, t => t.Value.Floats.Single()));
        // The piece of rows 1 and 2 keeps the batch's other tensors and its sequence length.
        var piece = MicroBatching.Piece(model, new Dictionary<string, HostTensor> { ["mask"] = HostTensor.Of([1f, 1, 0, 0, 0, 1, 1, 0, 1, 0, 0, 0], 4, 3), ["tau"] = HostTensor.Of([0.5f]) }, [1, 2]);
        Assert.Equal([0f, 0, 1, 1, 0, 1], piece["mask"].Floats);
        Assert.Equal([2L, 3], piece["mask"].Shape);
        Assert.Equal([0.5f], piece["tau"].Floats);
    }

    [Fact]
    public void A_micro_batch_that_does_not_divide_the_batch_is_refused_naming_the_key_and_values()
    {
        var file = _temp.File("ga.json");
        File.WriteAllText(file, """{ "method": "ga", "learning_rate": 1e-5, "batch_size": 8, "micro_batch": 3 }""");
        var e = Assert.Throws<InvalidDataException>(() => MethodPreset.Load(file));
        Assert.Contains("micro_batch 3 does not divide batch_size 8", e.Message);
        Assert.Equal(4, MethodPreset.Load("toy-ga").WithMicroBatch(1, "--micro-batch").MicroBatch * 4);
        var atu = Assert.Throws<InvalidDataException>(() => AtuPreset.Load("paper").WithMicroBatch(3, "--micro-batch"));
        Assert.Contains("--micro-batch: micro_batch 3 does not divide alignment.batch_size 16", atu.Message);
        Assert.Equal(4, AtuPreset.Load("paper").WithMicroBatch(4, "--micro-batch").MicroBatch);
        Assert.Contains("must be 0", Assert.Throws<InvalidDataException>(() => AtuPreset.Load("paper").WithMicroBatch(-1, "--micro-batch")).Message);
        // 0 (the whole batch) is left out of a preset's JSON, so runs recorded before the key existed resume.
        Assert.DoesNotContain("micro_batch", AtuPreset.Load("paper").ToJson());
        Assert.Contains("\"micro_batch\": 4", AtuPreset.Load("paper").WithMicroBatch(4, "--micro-batch").ToJson().Replace("\":4", "\": 4"));
    }
}
