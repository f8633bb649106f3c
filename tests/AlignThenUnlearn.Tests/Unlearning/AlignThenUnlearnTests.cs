using AlignThenUnlearn.Models;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Tests.Support;
using AlignThenUnlearn.Unlearning;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Tests.Unlearning;

/// <summary>The method's three moves on a tiny random decoder with the real all-MiniLM-L6-v2 encoder: alignment lowers its
/// loss; unlearning pushes the predictions' cosine to the target below tau and then stops changing the model (loss exactly
/// zero); realignment raises the cosine to the target again.</summary>
public sealed class AlignThenUnlearnTests : IDisposable
{
    readonly TinyChatModel _model = new();
    readonly TempFolder _temp = new();
    public void Dispose() { _model.Dispose(); _temp.Dispose(); }

    const int Layer = 1, Window = 4;
    static readonly string[] Corpus = ["the cat sat on the mat in the sun", "a cat can hunt at night", "the other cat ran to the tree", "cats hate rain on their coats"];

    [Fact]
    public void Align_unlearn_realign_on_a_tiny_model_with_minilm()
    {
        using var encoder = SentenceEncoder.Open(EncoderFolder.FromMiniLmPackage(_temp.File("minilm")), GradCheck.Cpu);
        int dim = encoder.Dimension;

        // Batch: LLM tokens right-padded; each token's future window embedded once.
        var encoded = Corpus.Select(t => _model.Tokenizer.Encode(t)).ToList();
        int seq = encoded.Max(e => e.Count), batch = Corpus.Length;
        var ids = new long[batch * seq];
        var tokenMask = new float[batch * seq];
        var full = new float[batch * seq];
        var references = new float[batch * seq * dim];
        for (int b = 0; b < batch; b++)
        {
            var (pieceIds, pieceSpans) = encoder.Tokenizer.Pieces(Corpus[b]);
            var windows = FutureWindows.Build(encoded[b].Offsets, pieceIds, pieceSpans, Window, encoder.Tokenizer.PadId);
            var embedded = encoder.EmbedIds(windows.Windows);
            for (int t = 0; t < encoded[b].Count; t++)
            {
                ids[b * seq + t] = encoded[b].Ids[t];
                tokenMask[b * seq + t] = 1;
                full[b * seq + t] = windows.Full[t] ? 1 : 0;
                embedded[t].CopyTo(references, (b * seq + t) * dim);
            }
        }
        Assert.True(full.Sum() >= 8, "the corpus must give enough full windows");
        var target = encoder.Embed(["cat"])[0];

        var head = new EmbeddingHead(new EmbeddingHeadConfig(_model.Config.HiddenSize, DModel: 32, Heads: 4, FeedForward: 64, Layers: 1, OutputSize: dim));
        using var store = new ParameterStore(GradCheck.Cpu);
        foreach (var (name, value) in _model.Model.ReadWeights(DecoderBuilder.Parameters(_model.Config)))
            store.Add(name, value.Floats, value.Shape, trainable: false);
        var random = new Random(3);
        foreach (var p in head.Parameters)
        {
            bool normWeight = p.Name.Contains(".norm") && p.Name.EndsWith(".weight");
            store.Add(p.Name, Enumerable.Range(0, (int)p.ElementCount).Select(_ => normWeight ? 1f : (float)(0.1 * (random.NextDouble() * 2 - 1))).ToArray(), p.Shape, trainable: true);
        }

        var alignment = UnlearningGraphs.Alignment(_model.Config, Layer, head, dim);
        var unlearning = UnlearningGraphs.Unlearning(_model.Config, Layer, head, dim);
        using var align = new TrainSession(GradCheck.Cpu, alignment.Training, store, UnlearningGraphs.Loss, [UnlearningGraphs.MeanCosine]);
        using var unlearn = new TrainSession(GradCheck.Cpu, unlearning.Training, store, UnlearningGraphs.Loss, [UnlearningGraphs.MeanCosine]);
        var alignBatch = new Dictionary<string, HostTensor>
        {
            ["input_ids"] = HostTensor.Of(ids, batch, seq),
            [UnlearningGraphs.WindowEmbeddings] = HostTensor.Of(references, batch, seq, dim),
            [UnlearningGraphs.WindowFull] = HostTensor.Of(full, batch, seq),
            [UnlearningGraphs.TokenMask] = HostTensor.Of(tokenMask, batch, seq),
            [EmbeddingHead.DropoutRatio] = HostTensor.Of([0.1f]),
        };
        Dictionary<string, HostTensor> UnlearnBatch(double tau) => new()
        {
            ["input_ids"] = HostTensor.Of(ids, batch, seq),
            [UnlearningGraphs.TokenMask] = HostTensor.Of(tokenMask, batch, seq),
            [UnlearningGraphs.TargetEmbedding] = HostTensor.Of(target, dim),
            [UnlearningGraphs.Tau] = HostTensor.Of([(float)tau]),
        };
        double CosineToTarget() => unlearn.Run(UnlearnBatch(1)).Metrics[UnlearningGraphs.MeanCosine][0];

        // Align: the head learns to predict the windows' embeddings (the LLM is frozen).
        double AlignSteps(int steps)
        {
            using var adam = new Optimizer(store, new AdamWSettings(LearningRate: 3e-3, WeightDecay: 0, MaxGradNorm: 1.0));
            for (int s = 0; s < steps; s++) { align.Run(alignBatch); adam.Step(align.Gradients, 3e-3); }
            return align.Run(alignBatch).Loss;
        }
        double before = align.Run(alignBatch).Loss;
        double aligned = AlignSteps(60);
        Assert.True(aligned < before - 0.1, $"alignment loss {before:F4} -> {aligned:F4}");

        // Unlearn: the LLM (embeddings and layer 0) moves until every prediction is below tau; then nothing changes.
        double alignedCosine = CosineToTarget();
        double tau = alignedCosine - 0.05;
        store.SetTrainable(unlearning.Training.Gradients.Keys);
        using var sgd = new Optimizer(store, new SgdSettings(LearningRate: 0.5, MaxGradNorm: 1.0));
        double loss = double.NaN;
        for (int s = 0; s < 300 && loss != 0; s++) { loss = unlearn.Run(UnlearnBatch(tau)).Loss; if (loss != 0) sgd.Step(unlearn.Gradients, 0.5); }
        Assert.Equal(0.0, loss);
        double unlearnedCosine = CosineToTarget();
        Assert.True(unlearnedCosine < tau, $"mean cosine to the target {alignedCosine:F4} -> {unlearnedCosine:F4}, tau {tau:F4}");
        var frozen = store.Read("model.embed_tokens.weight");
        unlearn.Run(UnlearnBatch(tau));
        sgd.Step(unlearn.Gradients, 0.5);
        Assert.Equal(frozen, store.Read("model.embed_tokens.weight"));

        // Realign: the head (LLM frozen again) relearns the windows, and its predictions move back toward the target.
        store.SetTrainable(head.Parameters.Select(p => p.Name));
        AlignSteps(60);
        double realignedCosine = CosineToTarget();
        Assert.True(realignedCosine > unlearnedCosine, $"realignment: mean cosine to the target {unlearnedCosine:F4} -> {realignedCosine:F4}");
    }
}
