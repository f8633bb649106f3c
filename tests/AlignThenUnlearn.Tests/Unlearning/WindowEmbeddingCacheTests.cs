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
        string[] llmFiles = [Path.Combine(_model.Artifacts, "tokenizer.model")];
        string[] corpus = ["the cat sat on the mat", "a cat can hunt"];
        var cache = _temp.File("cache");
        CorpusWindows first, second;
        var progress = new List<double>();
        using (var encoder = SentenceEncoder.Open(encoderFolder, GradCheck.Cpu))
        {
            first = WindowEmbeddingCache.Compute(corpus, _model.Tokenizer, encoder, 4, cache, llmFiles, progress.Add, batchSize: 5);
            second = WindowEmbeddingCache.Compute(corpus, _model.Tokenizer, encoder, 4, cache, llmFiles, progress.Add);
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
            // Progress rises to 1 in batches of 5 windows over both texts, and says nothing when the cache answers.
            int windows = first.TokenIds.Sum(t => t.Length);
            Assert.Equal((windows + 4) / 5, progress.Count);
            Assert.Equal(1.0, progress[^1]);
            Assert.Equal(progress.Order(), progress);

            // Every token's window is the first four pieces ending after it, embedded bare (the rule restated here).
            for (int i = 0; i < corpus.Length; i++)
            {
                var (pieces, spans) = encoder.Tokenizer.Pieces(corpus[i]);
                var offsets = _model.Tokenizer.Encode(corpus[i]).Offsets;
                for (int t = 0; t < offsets.Count; t++)
                {
                    var window = pieces.Where((_, k) => spans[k].End > offsets[t].End).Take(4).ToList();
                    Assert.Equal(window.Count == 4, first.Full[i][t]);
                    while (window.Count < 4) window.Add(encoder.Tokenizer.PadId);
                    var expected = encoder.EmbedIds([window.ToArray()])[0];
                    var actual = first.Embeddings[i].AsSpan(t * 384, 384).ToArray();
                    for (int d = 0; d < 384; d++) Assert.Equal(expected[d], actual[d], 1e-5);
                }
            }

            Assert.False(WindowEmbeddingCache.Compute(corpus, _model.Tokenizer, encoder, 3, cache, llmFiles).FromCache);
            Assert.False(WindowEmbeddingCache.Compute([corpus[0]], _model.Tokenizer, encoder, 4, cache, llmFiles).FromCache);
            Assert.False(WindowEmbeddingCache.Compute(corpus, _model.Tokenizer, encoder, 4, cache, [.. llmFiles, Path.Combine(_model.Artifacts, "tokenizer_config.json")]).FromCache);
        }
        // The encoder's own files are part of the key without being named: a changed setting recomputes.
        EncoderFolder.SaveSettings(encoderFolder, new EncoderSettings(MaxLength: 128));
        using (var changed = SentenceEncoder.Open(encoderFolder, GradCheck.Cpu))
            Assert.False(WindowEmbeddingCache.Compute(corpus, _model.Tokenizer, changed, 4, cache, llmFiles).FromCache);
        Assert.Equal(5, Directory.GetFiles(cache).Length);
    }
}
