using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Onnx;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Tests.Support;
using AlignThenUnlearn.Unlearning;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Tests.Unlearning;

/// <summary>Issue 12's differences between our defaults and the authors' run, each against values worked out by hand:
/// the rows of both sequence modes and the loss averages they give, RWKU's weighted "All", the head's initialisation as
/// nn.TransformerDecoder makes it, the head's key mask, and the paper preset's new keys.</summary>
public sealed class PaperPresetTests : IDisposable
{
    readonly TempFolder _temp = new();
    public void Dispose() => _temp.Dispose();

    const int Bos = 1, Eos = 2;

    /// <summary>Two texts: 3 tokens (BOS 10 11) and 10 tokens (BOS 20..28), 2-d window embeddings numbered by token
    /// (text t, token i: [t + i/10, -(t + i/10)]), windows full on the first token of each text only.</summary>
    static CorpusWindows Corpus()
    {
        int[][] ids = [[Bos, 10, 11], [Bos, 20, 21, 22, 23, 24, 25, 26, 27, 28]];
        var embeddings = ids.Select((t, ti) => t.SelectMany((_, i) => new[] { ti + i / 10f, -(ti + i / 10f) }).ToArray()).ToArray();
        var full = ids.Select(t => t.Select((_, i) => i == 0).ToArray()).ToArray();
        return new CorpusWindows(ids, embeddings, full, 2, FromCache: false);
    }

    static List<(long[] Ids, float[] Mask, float[] Full, float[] Embeddings)> Rows(IReadOnlyDictionary<string, HostTensor> batch)
    {
        var ids = (long[])batch[DecoderGraph.InputIds].Data;
        int rows = (int)batch[DecoderGraph.InputIds].Shape[0], seq = (int)batch[DecoderGraph.InputIds].Shape[1];
        return [.. Enumerable.Range(0, rows).Select(r => (ids[(r * seq)..((r + 1) * seq)], batch[UnlearningGraphs.TokenMask].Floats[(r * seq)..((r + 1) * seq)],
            batch[UnlearningGraphs.WindowFull].Floats[(r * seq)..((r + 1) * seq)], batch[UnlearningGraphs.WindowEmbeddings].Floats[(r * seq * 2)..((r + 1) * seq * 2)]))];
    }

    [Fact]
    public void First_mode_keeps_the_first_tokens_of_each_text_padded_with_eos_to_exactly_the_length_and_masks_nothing()
    {
        var rows = Rows(new WindowBatcher(Corpus(), batchSize: 2, sequenceLength: 8, seed: 3, padId: Eos, SequenceModes.First).Next())
            .OrderBy(r => r.Ids[1]).ToList();
        // The 3-token text: BOS 10 11, then five EOS to length 8; every position counts; only token 0's window is full;
        // the padding's window embeddings are zero (no full window reads them).
        Assert.Equal([Bos, 10, 11, Eos, Eos, Eos, Eos, Eos], rows[0].Ids);
        Assert.Equal([1f, 1, 1, 1, 1, 1, 1, 1], rows[0].Mask);
        Assert.Equal([1f, 0, 0, 0, 0, 0, 0, 0], rows[0].Full);
        Assert.Equal([0f, -0f, 0.1f, -0.1f, 0.2f, -0.2f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], rows[0].Embeddings);
        // The 10-token text: its first 8 tokens only (the authors' truncation), one row.
        Assert.Equal([Bos, 20, 21, 22, 23, 24, 25, 26], rows[1].Ids);
        Assert.Equal(2, new WindowBatcher(Corpus(), 2, 8, 3, Eos, SequenceModes.First).Pieces);
    }

    [Fact]
    public void Chunks_mode_cuts_every_text_into_pieces_padded_to_the_longest_piece_with_the_padding_masked()
    {
        var batcher = new WindowBatcher(Corpus(), batchSize: 3, sequenceLength: 8, seed: 3, padId: 0, SequenceModes.Chunks);
        Assert.Equal(3, batcher.Pieces);   // 3 tokens -> 1 piece; 10 tokens -> 8 + 2
        var rows = Rows(batcher.Next()).OrderBy(r => r.Ids[0] == Bos ? r.Ids[1] : 100).ToList();
        Assert.Equal([Bos, 10, 11, 0, 0, 0, 0, 0], rows[0].Ids);
        Assert.Equal([1f, 1, 1, 0, 0, 0, 0, 0], rows[0].Mask);
        Assert.Equal([Bos, 20, 21, 22, 23, 24, 25, 26], rows[1].Ids);
        Assert.Equal([1f, 1, 1, 1, 1, 1, 1, 1], rows[1].Mask);
        // The rest of the long text starts mid-text without BOS; its windows are tokens 8 and 9's: [1.8, -1.8], [1.9, -1.9].
        Assert.Equal([27L, 28, 0, 0, 0, 0, 0, 0], rows[2].Ids);
        Assert.Equal([1f, 1, 0, 0, 0, 0, 0, 0], rows[2].Mask);
        Assert.Equal([1.8f, -1.8f, 1.9f, -1.9f], rows[2].Embeddings[..4]);
    }

    /// <summary>The unlearning loss mean relu(cos - tau) and the alignment's mean cosine over full windows of the 3-token
    /// text at length 8, each mode's batch into the loss graphs' averaging.</summary>
    [Theory]
    [InlineData(SequenceModes.First)]
    [InlineData(SequenceModes.Chunks)]
    public void The_losses_average_over_every_position_in_first_mode_and_over_real_tokens_in_chunks_mode(string mode)
    {
        var corpus = Corpus().First(1);
        var batch = new WindowBatcher(corpus, 1, 8, 3, Eos, mode).Next();
        int seq = (int)batch[DecoderGraph.InputIds].Shape[1];
        // Head outputs: token 0 [1, 0] (cos 1 to the target [1, 0]), token 1 [0, 1] (cos 0), token 2 [1, 1] (cos 1/sqrt 2),
        // every padding position [1, 0] (cos 1).
        var predictions = new float[seq * 2];
        float[][] real = [[1, 0], [0, 1], [1, 1]];
        for (int i = 0; i < seq; i++) (predictions[2 * i], predictions[2 * i + 1]) = i < 3 ? (real[i][0], real[i][1]) : (1f, 0f);
        var b = new GraphBuilder("loss");
        var p = b.Input("p", DataType.Float, 1, seq, 2);
        var t = b.Input("t", DataType.Float, 2);
        var tau = b.Input("tau", DataType.Float);
        var mask = b.Input(UnlearningGraphs.TokenMask, DataType.Float, 1, seq);
        var full = b.Input(UnlearningGraphs.WindowFull, DataType.Float, 1, seq);
        var margin = Losses.MarginLoss(b, p, t, tau, mask);
        var alignment = Losses.WeightedMean(b, Losses.CosineSimilarity(b, p, t), full);
        b.Output(margin, DataType.Float);
        b.Output(alignment, DataType.Float);
        var outputs = GradCheck.Cpu.Run(b.ToModel(), new Dictionary<string, HostTensor>
        {
            ["p"] = HostTensor.Of(predictions, 1, seq, 2), ["t"] = HostTensor.Of([1f, 0], 2), ["tau"] = HostTensor.Of([0.5f]),
            [UnlearningGraphs.TokenMask] = batch[UnlearningGraphs.TokenMask], [UnlearningGraphs.WindowFull] = batch[UnlearningGraphs.WindowFull],
        });
        // relu(cos - 0.5): 0.5, 0, 1/sqrt 2 - 0.5 = 0.20711 at the tokens; 0.5 at each of the 5 padding positions.
        // first:  (0.5 + 0 + 0.20711 + 5 x 0.5) / 8 = 3.20711 / 8 = 0.40089 (the authors average over all 16 x 256 positions);
        // chunks: the batch is 3 wide (no padding) and (0.5 + 0 + 0.20711) / 3 = 0.23570.
        double expected = mode == SequenceModes.First ? (0.5 + (1 / Math.Sqrt(2) - 0.5) + 5 * 0.5) / 8 : (0.5 + (1 / Math.Sqrt(2) - 0.5)) / 3;
        Assert.Equal(mode == SequenceModes.First ? 8 : 3, seq);
        Assert.Equal(expected, outputs[margin].Floats[0], 5);
        // The alignment averages over full windows only: token 0's, cos 1, in both modes.
        Assert.Equal(1, outputs[alignment].Floats[0], 5);
    }

    [Fact]
    public void The_head_cross_attention_with_a_key_mask_gives_real_tokens_the_outputs_they_have_without_padding()
    {
        var head = new EmbeddingHead(new EmbeddingHeadConfig(InputSize: 5, DModel: 8, Heads: 2, FeedForward: 12, Layers: 2, OutputSize: 3));
        var parameters = head.InitialValues(seed: 4).ToDictionary(kv => kv.Key, kv => HostTensor.Of(kv.Value, head.Parameters.Single(p => p.Name == kv.Key).Shape));
        float[] Outputs(int seq, float[] hidden, float[]? keyMask)
        {
            var b = new GraphBuilder("head");
            var h = b.Input("hidden", DataType.Float, 1, seq, 5);
            var mask = keyMask is null ? null : b.Input("mask", DataType.Float, 1, seq);
            var y = head.Emit(b, h, training: false, mask);
            b.Output(y, DataType.Float, 1, seq, 3);
            var feeds = new Dictionary<string, HostTensor>(parameters) { ["hidden"] = HostTensor.Of(hidden, 1, seq, 5) };
            if (keyMask is not null) feeds["mask"] = HostTensor.Of(keyMask, 1, seq);
            return GradCheck.Cpu.Run(b.ToModel(), feeds)[y].Floats;
        }
        var random = new Random(9);
        var padded = Enumerable.Range(0, 5 * 5).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();   // 3 real tokens, 2 padding
        var alone = Outputs(3, padded[..15], null);
        var masked = Outputs(5, padded, [1, 1, 1, 0, 0]);
        Assert.True(alone.Zip(masked[..9]).Max(x => Math.Abs(x.First - x.Second)) < 1e-5);
        // Unmasked (the authors' head), the padding's keys change the real tokens' outputs.
        var unmasked = Outputs(5, padded, null);
        Assert.True(alone.Zip(unmasked[..9]).Max(x => Math.Abs(x.First - x.Second)) > 1e-3);
    }

    [Fact]
    public void The_head_starts_as_nn_TransformerDecoder_does_with_identical_layers_and_xavier_in_projections()
    {
        const int d = 16, ff = 24;
        var head = new EmbeddingHead(new EmbeddingHeadConfig(InputSize: 10, DModel: d, Heads: 4, FeedForward: ff, Layers: 3, OutputSize: 6));
        var values = head.InitialValues(seed: 5);
        // Deep copies of one layer: every layer's tensors equal layer 0's.
        foreach (var name in values.Keys.Where(n => n.StartsWith("head.layers.0.", StringComparison.Ordinal)))
            for (int layer = 1; layer < 3; layer++)
                Assert.Equal(values[name], values[name.Replace("layers.0.", $"layers.{layer}.")]);
        // xavier_uniform over the whole [3d, d] in_proj_weight: bound sqrt(6 / (fan_in d + fan_out 3d)) = sqrt(6 / 64) = 0.30619.
        double xavier = Math.Sqrt(6.0 / (4 * d));
        foreach (var attention in new[] { "self_attn", "multihead_attn" })
        {
            var w = values[$"head.layers.0.{attention}.in_proj_weight"];
            Assert.Equal(3 * d * d, w.Length);
            Assert.All(w, v => Assert.InRange(Math.Abs(v), 0, xavier));
            // 768 uniform draws reach within 2% of the bound (a chance of 0.98^768 ~ 2e-7 to fail); the per-projection bound
            // sqrt(6 / 2d) = 0.433 would put about a third of them outside.
            Assert.True(w.Max(Math.Abs) > 0.98 * xavier);
            Assert.All(values[$"head.layers.0.{attention}.in_proj_bias"], v => Assert.Equal(0f, v));
            Assert.All(values[$"head.layers.0.{attention}.out_proj.bias"], v => Assert.Equal(0f, v));
        }
        // Other Linears: PyTorch's default, uniform in +-1/sqrt(fan_in) for weight and bias.
        Assert.All(values["head.layers.0.linear1.weight"], v => Assert.InRange(Math.Abs(v), 0, 1 / Math.Sqrt(d)));
        Assert.All(values["head.layers.0.linear2.weight"], v => Assert.InRange(Math.Abs(v), 0, 1 / Math.Sqrt(ff)));
        Assert.All(values["head.layers.0.linear2.bias"], v => Assert.InRange(Math.Abs(v), 0, 1 / Math.Sqrt(ff)));
        Assert.All(values["head.input_proj.weight"], v => Assert.InRange(Math.Abs(v), 0, 1 / Math.Sqrt(10)));
        Assert.All(values["head.layers.0.norm2.weight"], v => Assert.Equal(1f, v));
        Assert.NotEqual(values["head.input_proj.weight"], head.InitialValues(seed: 6)["head.input_proj.weight"]);
    }

    [Fact]
    public void All_weights_the_levels_by_RWKU_probe_counts_and_names_threshold_checkpoints_by_it()
    {
        var scores = new RwkuScores(0.5, 0.4, 0.2, 0.6, 0.3, null) { Weights = AllWeights.Rwku };
        // forget: (0.5 x 3268 + 0.4 x 2879 + 0.2 x 6984) / 13131 = (1634 + 1151.6 + 1396.8) / 13131 = 4182.4 / 13131 = 0.318513
        Assert.Equal(4182.4 / 13131, scores.ForgetAll!.Value, 12);
        // neighbour: (0.6 x 5846 + 0.3 x 5533) / 11379 = (3507.6 + 1659.9) / 11379 = 5167.5 / 11379 = 0.454126
        Assert.Equal(5167.5 / 11379, scores.NeighborAll!.Value, 12);
        // The plain mean (0.5 + 0.4 + 0.2) / 3 = 36.7% would not cross 35; the weighted 31.9% does.
        var run = new RunSummary("stage", [new TargetScores(1, "A", scores with { Weights = null }, new RwkuCounts(2, 2, 2, 2, 2, 0))], Weights: AllWeights.Rwku);
        Assert.Equal(["forget-below-35"], new ThresholdCheckpoints([35, 20]).Observe(1, 100 * run.Mean.ForgetAll!.Value).Select(ThresholdCheckpoints.NameOf));
        var plain = run with { Targets = [run.Targets[0] with { Scores = scores with { Weights = new AllWeights(1, 1, 1, 1, 1) } }], Weights = null };
        Assert.Equal(1.1 / 3, plain.Mean.ForgetAll!.Value, 12);
        Assert.Empty(new ThresholdCheckpoints([35, 20]).Observe(1, 100 * plain.Mean.ForgetAll!.Value));
    }

    [Fact]
    public void Without_preset_weights_All_weights_the_levels_by_the_probe_counts_of_the_evaluated_set()
    {
        // Target A: FB .2 QA .4 AA .6 over (2, 1, 1) probes; B: FB .4 QA 0 AA .2 over (2, 3, 1). Level means: .3, .2, .4;
        // counts together (4, 4, 2): All = (.3 x 4 + .2 x 4 + .4 x 2) / 10 = 0.28 (the plain mean would be 0.3).
        TargetScores Target(int n, double fb, double qa, double aa, RwkuCounts c) =>
            new(n, $"T{n}", new RwkuScores(fb, qa, aa, null, null, null) { Weights = AllWeights.Of(c) }, c);
        var run = new RunSummary("r", [Target(1, 0.2, 0.4, 0.6, new(2, 1, 1, 0, 0, 0)), Target(2, 0.4, 0, 0.2, new(2, 3, 1, 0, 0, 0))]);
        Assert.Equal(0.28, run.Mean.ForgetAll!.Value, 12);
        // A target alone: (.2 x 2 + .4 + .6) / 4 = 0.35.
        Assert.Equal(0.35, run.Targets[0].Scores.ForgetAll!.Value, 12);
        // results.json keeps the counts (and a run's own weights) so that reading it back gives the same averages.
        var path = _temp.File("results.json");
        File.WriteAllBytes(path, ResultsJson.Serialize(run));
        Assert.Equal(0.28, ResultsJson.Read(path).Mean.ForgetAll!.Value, 12);
        File.WriteAllBytes(path, ResultsJson.Serialize(run with { Weights = AllWeights.Rwku }));
        Assert.Equal((0.3 * 3268 + 0.2 * 2879 + 0.4 * 6984) / 13131, ResultsJson.Read(path).Mean.ForgetAll!.Value, 12);
    }

    [Fact]
    public void The_paper_preset_names_the_authors_corpus_sequences_encoder_and_weights_and_the_toy_preset_keeps_its_own()
    {
        var paper = AtuPreset.Load("paper");
        Assert.Equal("positive_phi.json", paper.ForgetCorpus);
        Assert.Equal(SequenceModes.First, paper.Sequences);
        Assert.Equal("all-mpnet-base-v2", paper.Encoder);
        Assert.Equal([3268.0, 2879, 6984], paper.AllWeights!.Forget);
        Assert.Equal([5846.0, 5533], paper.AllWeights.Neighbour);
        var toy = AtuPreset.Load("toy");
        Assert.Equal((RwkuDataset.PassageFile, SequenceModes.Chunks, (AllWeightSettings?)null), (toy.ForgetCorpus, toy.Sequences, toy.AllWeights));

        File.WriteAllText(_temp.File("bad.json"), toy.ToJson().Replace("\"sequences\": \"chunks\"", "\"sequences\": \"whole\""));
        Assert.Contains("whole", Assert.Throws<InvalidDataException>(() => AtuPreset.Load(_temp.File("bad.json"))).Message);
    }
}
