using AlignThenUnlearn.Onnx;

namespace AlignThenUnlearn.Unlearning;

/// <summary>SimNPO (Fan et al., 2024, "Simplicity Prevails: Rethinking Negative Preference Optimization for LLM
/// Unlearning"): NPO without the reference model, the sequence NLL normalised by its length and shifted by a margin.
/// The loss as the authors' code computes it (OPTML-Group/Unlearn-Simple, TOFU/dataloader.py, loss type
/// <c>simnpo_grad_diff</c>; open-unlearning's <c>SimNPO</c> is the same with delta for gamma):
/// <code>
/// forget = get_batch_loss(logits, labels) / (labels != -100).sum(-1) - gamma      # mean NLL per label token, minus gamma
/// loss   = npo_coeff * (-(2/beta) * mean(logsigmoid(beta * forget))) + grad_diff_coeff * NLL(retain)
/// </code>
/// The margin sits inside beta (beta * (NLL/|y| - gamma)), as their code has it, not outside as the paper's equation
/// writes it; with their gamma 0 the two agree. |y| is the number of label tokens the NLL sums over: the authors' count of
/// labels != -100 is the same for a prompt and answer, and one more for a text labelled on every token (Hugging Face
/// labels token 0 too, which predicts nothing).</summary>
public sealed class SimNpo : TokenLossMethod
{
    public const string Id = "simnpo";
    public override string Name => Id;
    public override string DisplayName => "SimNPO";
    public override string Summary => "reference-free, length-normalised NPO on the forget corpus plus NLL on other targets' texts";
    public override bool HasRetainRows => true;

    /// <summary>The authors' TOFU setting (TOFU/config/forget.yaml): beta 2.5, gamma 0, npo_coeff 0.1375, grad_diff_coeff 1.</summary>
    public const double Beta = 2.5, Gamma = 0, ForgetWeight = 0.1375, RetainWeight = 1;

    /// <summary>A preset's <c>"options"</c>: the margin and the two terms' weights (beta is the preset's <c>beta</c>).</summary>
    public const string GammaOption = "gamma", ForgetWeightOption = "forget_weight", RetainWeightOption = "retain_weight";

    public override IReadOnlyDictionary<string, double> Options { get; } = new Dictionary<string, double>
    {
        [GammaOption] = Gamma, [ForgetWeightOption] = ForgetWeight, [RetainWeightOption] = RetainWeight,
    };

    /// <summary>GradDiff's examples: each forget text with a text of another target as its retain row (the authors'
    /// retain set is TOFU's retain split; RWKU ships none, and other people's biographies are the nearest).</summary>
    public override List<LabelledSequence[]> Examples(MethodPreset preset, ITargetTexts texts, ExampleTokenizer tokens) =>
        MethodRegistry.GetTrained(GradientDifference.Id).Examples(preset, texts, tokens);

    public override string Loss(TokenLossInputs x, MethodPreset preset) =>
        Loss(x.Builder, x.Logits, x.InputIds, x.LossMask, x.RetainMask(), preset.Beta ?? Beta,
            preset.Option(GammaOption), preset.Option(ForgetWeightOption), preset.Option(RetainWeightOption));

    /// <summary>The SimNPO loss of one batch whose forget rows' labels are in <paramref name="forgetMask"/> and retain rows'
    /// in <paramref name="retainMask"/> (GradDiff's batch: <see cref="TokenLossGraph.RetainMask"/>), masks in
    /// <see cref="TokenLosses"/>'s convention. The forget term averages over the rows that have forget labels; the retain
    /// term is the mean cross-entropy over the retain labels (Hugging Face's <c>outputs.loss</c>).</summary>
    public static string Loss(GraphBuilder b, string logits, string inputIds, string forgetMask, string retainMask,
        double beta = Beta, double gamma = Gamma, double forgetWeight = ForgetWeight, double retainWeight = RetainWeight)
    {
        var forget = ForgetTerm(b, logits, inputIds, forgetMask, beta, gamma);
        var type = Losses.TypeOf(b, forget);
        var retain = TokenLosses.NextTokenCrossEntropy(b, logits, inputIds, retainMask);
        return b.Add(b.Mul(b.Scalar(forgetWeight, type), forget), b.Mul(b.Scalar(retainWeight, type), retain));
    }

    /// <summary><c>-(2/beta) mean_s logsigmoid(beta (NLL_s / |y_s| - gamma))</c> over the rows s with at least one label.</summary>
    public static string ForgetTerm(GraphBuilder b, string logits, string inputIds, string forgetMask, double beta = Beta, double gamma = Gamma)
    {
        var logProbs = MethodLosses.SequenceLogProbabilities(b, logits, inputIds, forgetMask);        // [batch], minus the NLL
        var type = Losses.TypeOf(b, logProbs);
        var labels = b.Op("Slice", Losses.As(b, forgetMask, type), b.Ints(0), b.Ints(-1), b.Ints(1));
        var counts = b.ReduceSum(labels, [1], keepDims: false);                                       // |y_s|, 0 for retain rows
        var one = b.Scalar(1, type);
        var meanNll = b.Div(b.Neg(logProbs), b.Op("Clip", counts, one));
        var logSigmoid = MethodLosses.LogSigmoid(b, b.Mul(b.Scalar(beta, type), b.Sub(meanNll, b.Scalar(gamma, type))));
        var rows = b.Op("Clip", counts, b.Scalar(0, type), one);                                     // 1 for a row with labels
        return b.Mul(b.Scalar(-2 / beta, type), Losses.WeightedMean(b, logSigmoid, rows,
            Runtime.MicroBatching.TotalInput(b, Runtime.BatchCount.LabelledRows, forgetMask)));
    }
}
