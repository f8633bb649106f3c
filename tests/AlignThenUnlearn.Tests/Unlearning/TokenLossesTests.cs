using AlignThenUnlearn.Onnx;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Tests.Support;
using AlignThenUnlearn.Unlearning;
using Onnx;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Tests.Unlearning;

/// <summary>Next-token cross-entropy against a direct C# computation of log-softmax, and its gradient against
/// finite differences.</summary>
public class TokenLossesTests
{
    const int Batch = 2, Seq = 4, Vocab = 5;

    static (ModelProto Model, string Loss) Graph()
    {
        var b = new GraphBuilder("ce");
        var logits = b.Input("logits", DataType.Double, Batch, Seq, Vocab);
        var ids = b.Input("ids", DataType.Int64, Batch, Seq);
        var mask = b.Input("mask", DataType.Float, Batch, Seq);
        var loss = TokenLosses.NextTokenCrossEntropy(b, logits, ids, mask);
        b.Output(loss, DataType.Double);
        return (b.ToModel(), loss);
    }

    static Dictionary<string, HostTensor> Inputs(float[] mask)
    {
        var random = new Random(12);
        return new()
        {
            ["logits"] = HostTensor.Of(Enumerable.Range(0, Batch * Seq * Vocab).Select(_ => 3 * random.NextDouble() - 1.5).ToArray(), Batch, Seq, Vocab),
            ["ids"] = HostTensor.Of(new long[] { 1, 4, 0, 2, 3, 3, 1, 0 }, Batch, Seq),
            ["mask"] = HostTensor.Of(mask, Batch, Seq),
        };
    }

    /// <summary>-log softmax(logits[b, t])[ids[b, t+1]].</summary>
    static double Nll(double[] logits, long[] ids, int b, int t)
    {
        var row = logits.AsSpan((b * Seq + t) * Vocab, Vocab).ToArray();
        double max = row.Max(), logSum = max + Math.Log(row.Sum(x => Math.Exp(x - max)));
        return logSum - row[ids[b * Seq + t + 1]];
    }

    [Fact]
    public void Loss_is_the_mean_negative_log_likelihood_of_the_next_token_over_masked_positions()
    {
        var (model, loss) = Graph();
        // Counted: (0,0), (0,2), (1,1). (0,3) and (1,3) are last positions, which have no next token and never count.
        var inputs = Inputs([1, 0, 1, 1, 0, 1, 0, 1]);
        var logits = inputs["logits"].Doubles;
        var ids = inputs["ids"].Longs;
        double expected = (Nll(logits, ids, 0, 0) + Nll(logits, ids, 0, 2) + Nll(logits, ids, 1, 1)) / 3;
        Assert.Equal(expected, GradCheck.Cpu.Run(model, inputs, [loss])[loss].Doubles[0], 1e-12);
    }

    [Fact]
    public void Loss_is_zero_when_no_position_counts()
    {
        var (model, loss) = Graph();
        Assert.Equal(0, GradCheck.Cpu.Run(model, Inputs([0, 0, 0, 1, 0, 0, 0, 1]), [loss])[loss].Doubles[0]);
    }

    [Fact]
    public void Gradient_with_respect_to_logits_matches_finite_differences()
    {
        var (model, loss) = Graph();
        GradCheck.Check(model, loss, Inputs([1, 1, 0, 1, 1, 0, 1, 0]), ["logits"]);
    }
}
