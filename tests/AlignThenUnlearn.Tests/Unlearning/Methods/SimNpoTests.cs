using AlignThenUnlearn.Onnx;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Tests.Support;
using AlignThenUnlearn.Unlearning;
using Onnx;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Tests.Unlearning;

/// <summary>SimNPO's loss against values worked out by hand from the authors' formula (OPTML-Group/Unlearn-Simple,
/// TOFU/dataloader.py, <c>simnpo_grad_diff</c>), evaluated in C# from a direct log-softmax, and its gradient against
/// central differences. Rows 0 and 1 are forget rows with different label counts (so the length normalisation shows),
/// row 2 a retain row.</summary>
public class SimNpoTests
{
    const int Rows = 3, Seq = 5, Vocab = 6;
    static readonly long[] Ids = [1, 4, 0, 2, 3, /**/ 3, 1, 0, 5, 2, /**/ 2, 2, 4, 1, 0];
    static readonly float[] ForgetMask = [1, 1, 1, 0, 0, /**/ 0, 1, 0, 0, 0, /**/ 0, 0, 0, 0, 0];
    static readonly float[] RetainMask = [0, 0, 0, 0, 0, /**/ 0, 0, 0, 0, 0, /**/ 1, 1, 0, 1, 0];

    static (ModelProto Model, string Loss) Graph(double beta, double gamma, double forgetWeight, double retainWeight)
    {
        var b = new GraphBuilder("simnpo");
        var loss = SimNpo.Loss(b, b.Input("logits", DataType.Double, Rows, Seq, Vocab), b.Input("ids", DataType.Int64, Rows, Seq),
            b.Input("forget", DataType.Float, Rows, Seq), b.Input("retain", DataType.Float, Rows, Seq), beta, gamma, forgetWeight, retainWeight);
        b.Output(loss, DataType.Double);
        return (b.ToModel(), loss);
    }

    static Dictionary<string, HostTensor> Inputs(double[] logits) => new()
    {
        ["logits"] = HostTensor.Of(logits, Rows, Seq, Vocab),
        ["ids"] = HostTensor.Of(Ids, Rows, Seq),
        ["forget"] = HostTensor.Of(ForgetMask, Rows, Seq),
        ["retain"] = HostTensor.Of(RetainMask, Rows, Seq),
    };

    static double[] RandomLogits(int seed)
    {
        var random = new Random(seed);
        return [.. Enumerable.Range(0, Rows * Seq * Vocab).Select(_ => 4 * random.NextDouble() - 2)];
    }

    /// <summary>-log softmax(logits[r, t])[ids[r, t+1]]: the NLL of the label at position t, computed directly.</summary>
    static double Nll(double[] logits, int r, int t)
    {
        var row = logits.AsSpan((r * Seq + t) * Vocab, Vocab).ToArray();
        double max = row.Max();
        return max + Math.Log(row.Sum(x => Math.Exp(x - max))) - row[Ids[r * Seq + t + 1]];
    }

    static double LogSigmoid(double x) => -Math.Log(1 + Math.Exp(-x));

    static double Run(ModelProto model, string loss, double[] logits) => GradCheck.Cpu.Run(model, Inputs(logits), [loss])[loss].Doubles[0];

    [Fact]
    public void Uniform_logits_give_the_closed_form_value()
    {
        // Every label's NLL is ln 6, so each forget row's length-normalised NLL is ln 6 whatever its length, and the retain
        // cross-entropy is ln 6: loss = w_f * -(2/beta) logsigmoid(beta (ln 6 - gamma)) + w_r ln 6.
        var (model, loss) = Graph(beta: 2.5, gamma: 0.5, forgetWeight: 0.1375, retainWeight: 1);
        double ln6 = Math.Log(Vocab);
        double expected = 0.1375 * -(2 / 2.5) * LogSigmoid(2.5 * (ln6 - 0.5)) + ln6;
        Assert.Equal(expected, Run(model, loss, new double[Rows * Seq * Vocab]), 1e-12);
    }

    [Fact]
    public void Random_logits_match_the_authors_formula_with_the_margin_inside_beta()
    {
        const double beta = 2.5, gamma = 0.7, wf = 0.3, wr = 0.9;
        var (model, loss) = Graph(beta, gamma, wf, wr);
        var x = RandomLogits(3);
        // Row 0 labels at t = 0, 1, 2 (mean of three NLLs), row 1 at t = 1 (one NLL); row 2 is a retain row (t = 0, 1, 3).
        double row0 = (Nll(x, 0, 0) + Nll(x, 0, 1) + Nll(x, 0, 2)) / 3, row1 = Nll(x, 1, 1);
        double forget = -(2 / beta) * (LogSigmoid(beta * (row0 - gamma)) + LogSigmoid(beta * (row1 - gamma))) / 2;
        double retain = (Nll(x, 2, 0) + Nll(x, 2, 1) + Nll(x, 2, 3)) / 3;
        Assert.Equal(wf * forget + wr * retain, Run(model, loss, x), 1e-12);
        // The paper's equation puts gamma outside beta; the authors' code (and this loss) do not: with gamma != 0 they differ.
        double outside = -(2 / beta) * (LogSigmoid(beta * row0 - gamma) + LogSigmoid(beta * row1 - gamma)) / 2;
        Assert.True(Math.Abs(wf * outside + wr * retain - Run(model, loss, x)) > 1e-3);
    }

    [Fact]
    public void Without_a_retain_weight_the_retain_rows_do_not_count()
    {
        var (model, loss) = Graph(beta: 1, gamma: 0, forgetWeight: 1, retainWeight: 0);
        var x = RandomLogits(4);
        double before = Run(model, loss, x);
        for (int i = 2 * Seq * Vocab; i < x.Length; i++) x[i] += 3 * Math.Sin(i);   // change only the retain row's logits
        Assert.Equal(before, Run(model, loss, x), 1e-12);
    }

    [Fact]
    public void Gradient_with_respect_to_logits_matches_central_differences()
    {
        var (model, loss) = Graph(beta: 2.5, gamma: 0.3, forgetWeight: 0.1375, retainWeight: 1);
        GradCheck.Check(model, loss, Inputs(RandomLogits(5)), ["logits"]);
    }
}
