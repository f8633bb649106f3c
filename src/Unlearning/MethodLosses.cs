using AlignThenUnlearn.Onnx;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Unlearning;

/// <summary>The losses of the token-level baselines as RWKU's trainers compute them (jinzhuoran/RWKU,
/// LLaMA-Factory/src/llmtuner/train/{ga,npo,dpo,rt}/trainer.py; GradDiff as open-unlearning's), from logits
/// [batch, seq, vocab], <c>input_ids</c> [batch, seq] and a loss mask [batch, seq] in <see cref="TokenLosses"/>'s convention
/// (1 at position t when token t+1 is a label, as Hugging Face's labels != -100 shifted by one). Token means follow
/// Hugging Face's causal-LM loss (mean over every label token of the batch); sequence sums follow RWKU's
/// <c>get_batch_loss</c> and trl's <c>get_batch_logps</c>.</summary>
public static class MethodLosses
{
    /// <summary>RWKU's scripts: <c>--dpo_beta 0.2</c> for NPO.</summary>
    public const double NpoBeta = 0.2;
    /// <summary>LLaMA-Factory's default <c>dpo_beta</c>, which RWKU's DPO scripts keep.</summary>
    public const double DpoBeta = 0.1;

    /// <summary>sum over the masked positions t of log p(ids[:, t+1] | ids[:, ..t]): [batch], the sequence log-probability
    /// that NPO and DPO compare with the reference model's.</summary>
    public static string SequenceLogProbabilities(GraphBuilder b, string logits, string inputIds, string lossMask)
    {
        var logProbs = TokenLosses.NextTokenLogProbabilities(b, logits, inputIds);
        var type = Losses.TypeOf(b, logProbs);
        var mask = b.Op("Slice", Losses.As(b, lossMask, type), b.Ints(0), b.Ints(-1), b.Ints(1));
        return b.ReduceSum(b.Mul(logProbs, mask), [1], keepDims: false);
    }

    /// <summary>GA: minus the mean next-token cross-entropy over the masked positions (RWKU's ga trainer negates the
    /// ordinary causal-LM loss), so descending it raises the forget corpus's loss.</summary>
    public static string GradientAscent(GraphBuilder b, string logits, string inputIds, string lossMask) =>
        b.Neg(TokenLosses.NextTokenCrossEntropy(b, logits, inputIds, lossMask));

    /// <summary>GradDiff: <c>gamma * GA(forget) + alpha * NLL(retain)</c> on one batch that holds forget and retain rows;
    /// <paramref name="forgetMask"/> marks the forget rows' labels, <paramref name="retainMask"/> the retain rows', and each
    /// term is the mean over its own labels (as two separate batches would give).</summary>
    public static string GradientDifference(GraphBuilder b, string logits, string inputIds, string forgetMask, string retainMask,
        double gamma = 1, double alpha = 1)
    {
        var forget = GradientAscent(b, logits, inputIds, forgetMask);
        var retain = TokenLosses.NextTokenCrossEntropy(b, logits, inputIds, retainMask);
        var type = Losses.TypeOf(b, forget);
        return b.Add(b.Mul(b.Scalar(gamma, type), forget), b.Mul(b.Scalar(alpha, type), retain));
    }

    /// <summary>NPO: <c>-(2/beta) * mean_s logsigmoid(beta * (NLL_s(theta) - NLL_s(ref)))</c> with NLL_s the summed negative
    /// log-likelihood of sequence s; <paramref name="referenceLogProbs"/> [batch] holds the frozen model's summed log-probs
    /// (minus its NLL), computed once (<see cref="ReferenceLogProbabilities"/>).</summary>
    public static string Npo(GraphBuilder b, string logits, string inputIds, string lossMask, string referenceLogProbs, double beta = NpoBeta)
    {
        var policy = SequenceLogProbabilities(b, logits, inputIds, lossMask);
        var type = Losses.TypeOf(b, policy);
        var negLogRatio = b.Sub(Losses.As(b, referenceLogProbs, type), policy);   // NLL(theta) - NLL(ref)
        var logSigmoid = LogSigmoid(b, b.Mul(b.Scalar(beta, type), negLogRatio));
        return b.Mul(b.Scalar(-2 / beta, type), Losses.Mean(b, logSigmoid, Runtime.BatchCount.Rows, inputIds));
    }

    /// <summary>DPO's sigmoid loss (trl, label smoothing 0, no SFT term): <c>-mean_i logsigmoid(beta * ((pi_c - ref_c) - (pi_r - ref_r)))</c>.
    /// The batch holds the chosen sequences first and their rejected partners after them (trl's concatenated forward), so
    /// pair i is rows i and i + batch/2; <paramref name="referenceLogProbs"/> [batch] holds the reference model's summed
    /// log-probs in the same order.</summary>
    public static string Dpo(GraphBuilder b, string logits, string inputIds, string lossMask, string referenceLogProbs, double beta = DpoBeta)
    {
        var policy = SequenceLogProbabilities(b, logits, inputIds, lossMask);
        var type = Losses.TypeOf(b, policy);
        var ratios = b.Reshape(b.Sub(policy, Losses.As(b, referenceLogProbs, type)), 2, -1);   // [chosen | rejected, pairs]
        var halves = b.Node("Split", [ratios, b.Ints(1, 1)], 2, [Attr.Int("axis", 0)]);
        var margin = b.Squeeze(b.Sub(halves[0], halves[1]), 0);
        var logSigmoid = LogSigmoid(b, b.Mul(b.Scalar(beta, type), margin));
        return b.Neg(Losses.Mean(b, logSigmoid, Runtime.BatchCount.Pairs, inputIds));
    }

    /// <summary>RT: supervised fine-tuning on refusals, the mean cross-entropy over the answer tokens (the mask holds the
    /// answers' labels only, as LLaMA-Factory's supervised preprocessing sets the prompt's labels to -100).</summary>
    public static string RejectionTuning(GraphBuilder b, string logits, string inputIds, string answerMask) =>
        TokenLosses.NextTokenCrossEntropy(b, logits, inputIds, answerMask);

    /// <summary>log sigmoid(x) = log(e^x / (e^0 + e^x)): the second entry of a log-softmax over (0, x), which stays finite
    /// where log(sigmoid(x)) underflows (x far below 0). x is [n].</summary>
    public static string LogSigmoid(GraphBuilder b, string x)
    {
        var column = b.Unsqueeze(x, 1);                                                   // [n, 1]
        var info = ShapeInference.Run(b.Graph)[column] ?? throw new ArgumentException($"the type of '{x}' cannot be inferred in graph '{b.Graph.Name}'");
        var zeros = b.Expand(b.Scalar(0, info.ElementType), b.Shape(column));
        b.Graph.ValueInfo.Add(GraphBuilder.ValueInfo(zeros, info.ElementType, info.Shape));   // shape inference cannot read a runtime shape
        var logSoftmax = b.Op("LogSoftmax", [b.Concat(1, zeros, column)], Attr.Int("axis", 1));
        return b.Squeeze(b.Op("Slice", logSoftmax, b.Ints(1), b.Ints(2), b.Ints(1)), 1);
    }
}
