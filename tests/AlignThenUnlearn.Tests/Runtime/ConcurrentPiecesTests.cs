using AlignThenUnlearn.Models;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Tests.Support;
using AlignThenUnlearn.Unlearning;

namespace AlignThenUnlearn.Tests.Runtime;

/// <summary>A batch run as pieces at once (<see cref="TrainSession.RunAtOnce"/>, the toy's pre-training): the same bits as
/// the same pieces run one after the other, the batch's gradient within float rounding, and the same bits however the
/// threads are scheduled.</summary>
public sealed class ConcurrentPiecesTests
{
    static readonly DecoderConfig Tiny = new()
    {
        Family = ModelFamily.Llama, HiddenSize = 32, NumHiddenLayers = 2, NumAttentionHeads = 4, NumKeyValueHeads = 2,
        IntermediateSize = 64, VocabSize = 40, MaxPositionEmbeddings = 64,
    };

    /// <summary>Rows of random tokens, right-padded, with a loss mask that differs per row (so the pieces' label counts differ
    /// and each piece must divide by the whole batch's count).</summary>
    static Dictionary<string, HostTensor> Batch(int rows, int length, int seed)
    {
        var random = new Random(seed);
        var ids = new long[rows * length];
        var mask = new float[rows * length];
        for (int r = 0; r < rows; r++)
        {
            int real = length - r % 3;
            for (int t = 0; t < length; t++)
            {
                ids[r * length + t] = t < real ? random.Next(Tiny.VocabSize) : 0;
                mask[r * length + t] = t < real && t > r % 2 ? 1 : 0;
            }
        }
        return new() { [TokenBatcher.InputIds] = HostTensor.Of(ids, rows, length), [TokenBatcher.LossMask] = HostTensor.Of(mask, rows, length) };
    }

    /// <summary>The test device, a tiny decoder's seeded random parameters on it and its causal-LM training graph.</summary>
    static (ExecutionDevice Device, ParameterStore Store, CausalLmGraph Graph) Model(int seed)
    {
        var store = CausalLmTrainer.RandomParameters(TestDevice.Current, Tiny, seed);
        return (TestDevice.Current, store, CausalLmGraph.Build(Tiny, store.Trainable));
    }

    static (double Loss, Dictionary<string, float[]> Gradients) Gradients(TrainSession session, ExecutionDevice device, Func<TrainSession.Result> run)
    {
        var loss = run().Loss;
        return (loss, session.Gradients.ToDictionary(kv => kv.Key, kv => device.Download<float>(kv.Value)));
    }

    [Theory]
    [InlineData(5, 2)]   // pieces of 3 and 2 rows
    [InlineData(6, 3)]
    public void Pieces_at_once_give_the_bits_of_the_same_pieces_in_turn_and_the_whole_batchs_gradient(int rows, int pieces)
    {
        var (device, store, graph) = Model(seed: 5);
        using var owner = store;
        using var atOnce = new TrainSession(device, graph.Training, store, graph.Loss, concurrentPieces: pieces);
        using var inTurn = new TrainSession(device, graph.Training, store, graph.Loss, allowAccumulation: true);
        var batch = Batch(rows, 12, seed: rows);

        var concurrent = Gradients(atOnce, device, () => atOnce.RunAtOnce(batch, pairedHalves: false));
        var sequential = Gradients(inTurn, device, () => inTurn.Run(batch, (rows + pieces - 1) / pieces, pairedHalves: false));
        var whole = Gradients(inTurn, device, () => inTurn.Run(batch));

        Assert.Equal(sequential.Loss, concurrent.Loss);
        Assert.Equal(whole.Loss, concurrent.Loss, 1e-5);
        bool anyBitDiffers = false;
        foreach (var (p, values) in concurrent.Gradients)
        {
            Assert.Equal(sequential.Gradients[p], values);
            var reference = whole.Gradients[p];
            double scale = reference.Max(v => Math.Abs(v)) + 1e-12;
            for (int i = 0; i < values.Length; i++) Assert.True(Math.Abs(values[i] - reference[i]) <= 1e-5 * scale, $"{p}[{i}]: {values[i]} vs the whole batch's {reference[i]}");
            anyBitDiffers |= !values.AsSpan().SequenceEqual(reference);
        }
        Assert.True(anyBitDiffers, "the pieces' float sums should differ somewhere from the whole batch's (otherwise this test compares nothing)");
    }

    [Fact]
    public void Pieces_at_once_give_the_same_bits_at_every_run()
    {
        var (device, store, graph) = Model(seed: 6);
        using var owner = store;
        using var session = new TrainSession(device, graph.Training, store, graph.Loss, concurrentPieces: 2);
        var batch = Batch(8, 16, seed: 1);
        var first = Gradients(session, device, () => session.RunAtOnce(batch, pairedHalves: false));
        for (int run = 0; run < 20; run++)
        {
            var again = Gradients(session, device, () => session.RunAtOnce(batch, pairedHalves: false));
            Assert.Equal(first.Loss, again.Loss);
            foreach (var (p, values) in first.Gradients) Assert.Equal(values, again.Gradients[p]);
        }
    }

    [Fact]
    public void A_batch_of_one_row_runs_whole_and_a_graph_with_dropout_is_refused()
    {
        var (device, store, graph) = Model(seed: 7);
        using var owner = store;
        using var atOnce = new TrainSession(device, graph.Training, store, graph.Loss, concurrentPieces: 2);
        using var whole = new TrainSession(device, graph.Training, store, graph.Loss);
        var batch = Batch(1, 10, seed: 2);
        var one = Gradients(atOnce, device, () => atOnce.RunAtOnce(batch, pairedHalves: false));
        var reference = Gradients(whole, device, () => whole.Run(batch));
        Assert.Equal(reference.Loss, one.Loss);
        foreach (var (p, values) in reference.Gradients) Assert.Equal(values, one.Gradients[p]);

        var dropout = graph.Training with { Model = graph.Training.Model.Clone() };
        dropout.Model.Graph.Node.Add(new global::Onnx.NodeProto { OpType = "Dropout", Input = { graph.Loss }, Output = { "dropped" } });
        var e = Assert.Throws<ArgumentException>(() => new TrainSession(device, dropout, store, graph.Loss, concurrentPieces: 2));
        Assert.Contains("Dropout", e.Message);
    }

    [Fact]
    public void A_trainer_refuses_pieces_at_once_together_with_micro_batches()
    {
        var device = TestDevice.Current;
        using var store = CausalLmTrainer.RandomParameters(device, Tiny, seed: 8);
        var options = new TrainerOptions { Steps = 1, ConcurrentPieces = 2, MicroBatchRows = 2 };
        var e = Assert.Throws<ArgumentException>(() => new CausalLmTrainer(store, Tiny, new AdamWSettings(LearningRate: 1e-3), options));
        Assert.Contains("pieces at once", e.Message);
    }
}
