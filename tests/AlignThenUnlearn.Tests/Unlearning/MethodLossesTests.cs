using AlignThenUnlearn.Onnx;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Tests.Support;
using AlignThenUnlearn.Unlearning;
using Onnx;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Tests.Unlearning;

/// <summary>The baselines' losses against values worked out by hand (uniform logits make every log-probability -ln V)
/// and against a direct C# log-softmax, and their gradients against central differences.</summary>
public class MethodLossesTests
{
    const int Batch = 2, Seq = 4, Vocab = 5;
    static readonly long[] Ids = [1, 4, 0, 2, 3, 3, 1, 0];

    static (ModelProto Model, string Loss) Graph(Func<GraphBuilder, string, string, string, string> loss, bool reference = false, bool retain = false)
    {
        var b = new GraphBuilder("method");
        var logits = b.Input("logits", DataType.Double, Batch, Seq, Vocab);
        var ids = b.Input("ids", DataType.Int64, Batch, Seq);
        var mask = b.Input("mask", DataType.Float, Batch, Seq);
        if (reference) b.Input("reference", DataType.Float, Batch);
        if (retain) b.Input("retain", DataType.Float, Batch, Seq);
        var value = loss(b, logits, ids, mask);
        b.Output(value, DataType.Double);
        return (b.ToModel(), value);
    }

    static Dictionary<string, HostTensor> Inputs(float[] mask, double[]? logits = null, float[]? reference = null, float[]? retain = null)
    {
        var random = new Random(7);
        var inputs = new Dictionary<string, HostTensor>
        {
            ["logits"] = HostTensor.Of(logits ?? Enumerable.Range(0, Batch * Seq * Vocab).Select(_ => 3 * random.NextDouble() - 1.5).ToArray(), Batch, Seq, Vocab),
            ["ids"] = HostTensor.Of(Ids, Batch, Seq),
            ["mask"] = HostTensor.Of(mask, Batch, Seq),
        };
        if (reference is not null) inputs["reference"] = HostTensor.Of(reference, Batch);
        if (retain is not null) inputs["retain"] = HostTensor.Of(retain, Batch, Seq);
        return inputs;
    }

    static double Run(ModelProto model, string loss, Dictionary<string, HostTensor> inputs) => GradCheck.Cpu.Run(model, inputs, [loss])[loss].Doubles[0];

    /// <summary>log softmax(logits[b, t])[ids[b, t+1]], computed directly.</summary>
    static double LogProb(double[] logits, int b, int t)
    {
        var row = logits.AsSpan((b * Seq + t) * Vocab, Vocab).ToArray();
        double max = row.Max();
        return row[Ids[b * Seq + t + 1]] - (max + Math.Log(row.Sum(x => Math.Exp(x - max))));
    }

    static readonly double[] Uniform = new double[Batch * Seq * Vocab];
    static readonly double LnV = Math.Log(Vocab);
    static double LogSigmoid(double x) => -Math.Log(1 + Math.Exp(-x));

    static void Close(double[] expected, double[] actual, double tolerance)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++) Assert.Equal(expected[i], actual[i], tolerance);
    }

    [Fact]
    public void Sequence_log_probabilities_sum_the_masked_next_token_log_probabilities_of_each_row()
    {
        var b = new GraphBuilder("seq");
        var logits = b.Input("logits", DataType.Double, Batch, Seq, Vocab);
        var sums = MethodLosses.SequenceLogProbabilities(b, logits, b.Input("ids", DataType.Int64, Batch, Seq), b.Input("mask", DataType.Float, Batch, Seq));
        b.Output(sums, DataType.Double, Batch);
        var inputs = Inputs([1, 0, 1, 1, 0, 1, 1, 0]);
        var x = inputs["logits"].Doubles;
        var result = GradCheck.Cpu.Run(b.ToModel(), inputs, [sums])[sums].Doubles;
        // Row 0 counts t = 0 and 2 (t = 3 is last and has no next token); row 1 counts t = 1 and 2.
        Close([LogProb(x, 0, 0) + LogProb(x, 0, 2), LogProb(x, 1, 1) + LogProb(x, 1, 2)], result, 1e-12);
    }

    [Fact]
    public void Gradient_ascent_is_minus_the_mean_cross_entropy_over_labels_only()
    {
        var (model, loss) = Graph(MethodLosses.GradientAscent);
        // Uniform logits: every label has log-prob -ln 5, so the mean cross-entropy is ln 5 and GA is -ln 5, whatever the mask.
        Assert.Equal(-LnV, Run(model, loss, Inputs([1, 1, 1, 0, 0, 1, 0, 0], Uniform)), 1e-12);
        // Random logits: the mean over the three labelled positions, negated.
        var inputs = Inputs([1, 0, 0, 0, 0, 1, 1, 0]);
        var x = inputs["logits"].Doubles;
        double expected = (LogProb(x, 0, 0) + LogProb(x, 1, 1) + LogProb(x, 1, 2)) / 3;
        Assert.Equal(expected, Run(model, loss, inputs), 1e-12);
        Assert.True(expected < 0, "GA is the mean log-probability, never positive");
        // Masked positions do not count: changing their logits changes nothing.
        var changed = (double[])x.Clone();
        for (int v = 0; v < Vocab; v++) changed[(0 * Seq + 1) * Vocab + v] += v;
        Assert.Equal(expected, Run(model, loss, Inputs([1, 0, 0, 0, 0, 1, 1, 0], changed)), 1e-12);
    }

    [Fact]
    public void Gradient_difference_adds_the_forget_rows_ascent_and_the_retain_rows_cross_entropy()
    {
        var (model, loss) = Graph((b, l, i, m) => MethodLosses.GradientDifference(b, l, i, m, "retain"), retain: true);
        var inputs = Inputs([1, 1, 1, 0, 0, 0, 0, 0], retain: [0, 0, 0, 0, 1, 0, 1, 0]);
        var x = inputs["logits"].Doubles;
        double ga = (LogProb(x, 0, 0) + LogProb(x, 0, 1) + LogProb(x, 0, 2)) / 3;     // forget row 0, three labels
        double nll = -(LogProb(x, 1, 0) + LogProb(x, 1, 2)) / 2;                      // retain row 1, two labels
        Assert.Equal(ga + nll, Run(model, loss, inputs), 1e-12);
    }

    [Fact]
    public void Npo_matches_hand_computed_values()
    {
        var (model, loss) = Graph((b, l, i, m) => MethodLosses.Npo(b, l, i, m, "reference"), reference: true);
        // Uniform logits, two labels per row: log-prob -2 ln 5 per row. With the reference equal to it the log-ratio is 0 and
        // the loss is -(2/0.2) log sigmoid(0) = 10 ln 2.
        var mask = new float[] { 1, 1, 0, 0, 0, 1, 1, 0 };
        float same = (float)(-2 * LnV);
        Assert.Equal(10 * Math.Log(2), Run(model, loss, Inputs(mask, Uniform, [same, same])), 1e-6);
        // Reference -1 and -5: NLL(theta) - NLL(ref) = 2 ln 5 - 1 and 2 ln 5 - 5; loss = -(2/beta) mean logsigmoid(beta * that).
        double r0 = 2 * LnV - 1, r1 = 2 * LnV - 5;
        double expected = -(2 / 0.2) * (LogSigmoid(0.2 * r0) + LogSigmoid(0.2 * r1)) / 2;
        Assert.Equal(expected, Run(model, loss, Inputs(mask, Uniform, [-1f, -5f])), 1e-6);
    }

    [Fact]
    public void Dpo_matches_hand_computed_values()
    {
        var (model, loss) = Graph((b, l, i, m) => MethodLosses.Dpo(b, l, i, m, "reference"), reference: true);
        // One pair: row 0 chosen (three labels, -3 ln 5), row 1 rejected (one label, -ln 5). With the reference equal to the
        // policy the margin is 0 and the loss is -log sigmoid(0) = ln 2.
        var mask = new float[] { 1, 1, 1, 0, 0, 1, 0, 0 };
        float chosen = (float)(-3 * LnV), rejected = (float)-LnV;
        Assert.Equal(Math.Log(2), Run(model, loss, Inputs(mask, Uniform, [chosen, rejected])), 1e-6);
        // Reference chosen -2, rejected -4: margin = (-3 ln 5 + 2) - (-ln 5 + 4) = -2 ln 5 - 2; loss = -logsigmoid(0.1 * margin).
        double margin = -2 * LnV - 2;
        Assert.Equal(-LogSigmoid(0.1 * margin), Run(model, loss, Inputs(mask, Uniform, [-2f, -4f])), 1e-6);
    }

    [Fact]
    public void Log_sigmoid_stays_finite_far_below_zero_in_float32()
    {
        var b = new GraphBuilder("logsigmoid");
        var y = MethodLosses.LogSigmoid(b, b.Input("x", DataType.Float, 3));
        b.Output(y, DataType.Float, 3);
        var result = GradCheck.Cpu.Run(b.ToModel(), new Dictionary<string, HostTensor> { ["x"] = HostTensor.Of([-1000f, 0f, 2f], 3) })[y].Floats;
        // log sigmoid(-1000) = -1000 - log(1 + e^-1000) = -1000; log(sigmoid(-1000)) would be log(0) = -inf in float32.
        Close([-1000, Math.Log(0.5), LogSigmoid(2)], result.Select(v => (double)v).ToArray(), 1e-6);
    }

    public static TheoryData<string> Methods => ["ga", "graddiff", "npo", "dpo", "rt"];

    [Theory]
    [MemberData(nameof(Methods))]
    public void Gradient_with_respect_to_logits_matches_finite_differences(string method)
    {
        var mask = new float[] { 1, 1, 0, 0, 0, 1, 1, 0 };
        var (model, loss) = method switch
        {
            "ga" => Graph(MethodLosses.GradientAscent),
            "graddiff" => Graph((b, l, i, m) => MethodLosses.GradientDifference(b, l, i, m, "retain"), retain: true),
            "npo" => Graph((b, l, i, m) => MethodLosses.Npo(b, l, i, m, "reference"), reference: true),
            "dpo" => Graph((b, l, i, m) => MethodLosses.Dpo(b, l, i, m, "reference"), reference: true),
            _ => Graph(MethodLosses.RejectionTuning),
        };
        var inputs = Inputs(mask, reference: method is "npo" or "dpo" ? [-2.5f, -4f] : null, retain: method == "graddiff" ? [0, 0, 0, 0, 1, 0, 1, 0] : null);
        GradCheck.Check(model, loss, inputs, ["logits"]);
    }
}
