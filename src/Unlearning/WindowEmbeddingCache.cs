using System.Security.Cryptography;
using System.Text;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Models.Checkpoints;
using AlignThenUnlearn.Runtime;

namespace AlignThenUnlearn.Unlearning;

/// <summary>A corpus tokenized by the LLM with every token's future-window embedding: the alignment targets.</summary>
public sealed record CorpusWindows(IReadOnlyList<int[]> TokenIds, float[][] Embeddings, bool[][] Full, int Dimension, bool FromCache)
{
    /// <summary>The windows of the first <paramref name="count"/> texts.</summary>
    public CorpusWindows First(int count) => this with { TokenIds = TokenIds.Take(count).ToList(), Embeddings = Embeddings[..count], Full = Full[..count] };
}

/// <summary>Window embeddings depend only on the corpus, the two tokenizers, the encoder and the window size, never on the
/// LLM's weights, so they are computed once and kept on disk under a key that hashes all of those.</summary>
public static class WindowEmbeddingCache
{
    /// <summary>Changes whenever the way windows are built or embedded changes, so older cache files are not reused.</summary>
    const string FormatVersion = "windows-2";

    /// <param name="llmTokenizerFiles">The LLM tokenizer's files (tokenizer.model / tokenizer.json, tokenizer_config.json):
    /// part of the key, with the encoder's own files (<see cref="SentenceEncoder.Files"/>).</param>
    /// <param name="progress">Fraction of the windows embedded, after every batch (not called when the cache answers).</param>
    /// <param name="batchSize">Windows per encoder run; windows of all texts are batched together.</param>
    public static CorpusWindows Compute(IReadOnlyList<string> texts, LlmTokenizer llm, SentenceEncoder encoder, int windowSize,
        string cacheFolder, IEnumerable<string> llmTokenizerFiles, Action<double>? progress = null, int batchSize = 256)
    {
        var key = Key(texts, windowSize, encoder.Files.Concat(llmTokenizerFiles));
        var path = Path.Combine(cacheFolder, $"windows-{key}.safetensors");
        var tokenized = texts.Select(t => llm.Encode(t)).ToList();
        var ids = tokenized.Select(t => t.Ids.ToArray()).ToList();
        if (File.Exists(path)) return Read(path, ids);

        var windows = tokenized.Select(t =>
        {
            var (pieceIds, pieceSpans) = encoder.Tokenizer.Pieces(t.Text);
            return FutureWindows.Build(t.Offsets, pieceIds, pieceSpans, windowSize, encoder.Tokenizer.PadId);
        }).ToList();
        var flat = encoder.EmbedIds(windows.SelectMany(w => w.Windows).ToList(), batchSize, (done, total) => progress?.Invoke((double)done / total));
        var embeddings = new float[texts.Count][];
        var full = new bool[texts.Count][];
        for (int i = 0, next = 0; i < texts.Count; next += ids[i].Length, i++)
        {
            embeddings[i] = flat[next..(next + ids[i].Length)].SelectMany(e => e).ToArray();
            full[i] = windows[i].Full;
        }
        Directory.CreateDirectory(cacheFolder);
        var sources = new List<TensorSource>();
        for (int i = 0; i < texts.Count; i++)
        {
            sources.Add(TensorSource.FromArray($"{i}.embeddings", [ids[i].Length, encoder.Dimension], embeddings[i]));
            sources.Add(TensorSource.FromArray($"{i}.full", [ids[i].Length], full[i].Select(f => f ? 1f : 0f).ToArray()));
        }
        SafetensorsWriter.Write(path, sources, new Dictionary<string, string> { ["window_size"] = windowSize.ToString(), ["texts"] = texts.Count.ToString() });
        return new CorpusWindows(ids, embeddings, full, encoder.Dimension, FromCache: false);
    }

    static CorpusWindows Read(string path, List<int[]> ids)
    {
        using var file = SafetensorsFile.Open(path);
        var embeddings = new float[ids.Count][];
        var full = new bool[ids.Count][];
        int dimension = 0;
        for (int i = 0; i < ids.Count; i++)
        {
            var entry = file.Entry($"{i}.embeddings");
            if (entry.Shape[0] != ids[i].Length) throw new InvalidDataException($"window cache '{path}' does not match text {i}: delete it to recompute");
            dimension = (int)entry.Shape[1];
            embeddings[i] = file.ReadSingles($"{i}.embeddings");
            full[i] = file.ReadSingles($"{i}.full").Select(v => v != 0).ToArray();
        }
        return new CorpusWindows(ids, embeddings, full, dimension, FromCache: true);
    }

    /// <summary>SHA-256 over the format version, the window size, every text and every tokenizer and encoder file's bytes.</summary>
    static string Key(IReadOnlyList<string> texts, int windowSize, IEnumerable<string> files)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        void Add(string s) { var bytes = Encoding.UTF8.GetBytes(s); hash.AppendData(BitConverter.GetBytes(bytes.Length)); hash.AppendData(bytes); }
        Add(FormatVersion);
        Add($"window_size={windowSize}");
        foreach (var t in texts) Add(t);
        // Names and contents, not paths: the same files in another folder give the same key.
        var described = files.Select(f =>
        {
            using var stream = File.OpenRead(f);
            return (Name: Path.GetFileName(f), Hash: Convert.ToHexStringLower(SHA256.HashData(stream)));
        });
        foreach (var (name, contentHash) in described.Order()) { Add(name); Add(contentHash); }
        return Convert.ToHexStringLower(hash.GetHashAndReset())[..24];
    }
}
