using AlignThenUnlearn.Models;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Tests.Support;
using AlignThenUnlearn.Unlearning;

namespace AlignThenUnlearn.Tests.Unlearning;

/// <summary>Window embeddings are computed once per (corpus, tokenizers, encoder, window size) and read back unchanged.</summary>
public sealed class WindowEmbeddingCacheTests : IDisposable
{
    readonly TinyChatModel _model = new();
    readonly TempFolder _temp = new();
    public void Dispose() { _model.Dispose(); _temp.Dispose(); }

    [Fact]
    public void Second_computation_reads_the_cache_and_any_change_in_the_key_recomputes()
    {
        var encoderFolder = EncoderFolder.FromMiniLmPackage(_temp.File("minilm"));
        using var encoder = SentenceEncoder.Open(encoderFolder, GradCheck.Cpu);
        string[] fingerprint = [Path.Combine(encoderFolder, EncoderFolder.VocabFile), Path.Combine(_model.Artifacts, "tokenizer.model")];
        string[] corpus = ["the cat sat on the mat", "a cat can hunt"];
        var cache = _temp.File("cache");

        var first = WindowEmbeddingCache.Compute(corpus, _model.Tokenizer, encoder, 4, cache, fingerprint);
        var second = WindowEmbeddingCache.Compute(corpus, _model.Tokenizer, encoder, 4, cache, fingerprint);
        Assert.False(first.FromCache);
        Assert.True(second.FromCache);
        Assert.Equal(384, second.Dimension);
        for (int i = 0; i < corpus.Length; i++)
        {
            Assert.Equal(first.TokenIds[i], second.TokenIds[i]);
            Assert.Equal(first.Embeddings[i], second.Embeddings[i]);
            Assert.Equal(first.Full[i], second.Full[i]);
            Assert.Equal(first.TokenIds[i].Length * 384, first.Embeddings[i].Length);
        }
        // The first token's window is the first four pieces ending after it, embedded bare.
        var (pieces, spans) = encoder.Tokenizer.Pieces(corpus[0]);
        int end = _model.Tokenizer.Encode(corpus[0]).Offsets[0].End;
        var window = pieces.Where((_, k) => spans[k].End > end).Take(4).ToArray();
        Assert.Equal(encoder.EmbedIds([window])[0], first.Embeddings[0][..384]);

        Assert.False(WindowEmbeddingCache.Compute(corpus, _model.Tokenizer, encoder, 3, cache, fingerprint).FromCache);
        Assert.False(WindowEmbeddingCache.Compute([corpus[0]], _model.Tokenizer, encoder, 4, cache, fingerprint).FromCache);
        Assert.Equal(3, Directory.GetFiles(cache).Length);
    }
}
