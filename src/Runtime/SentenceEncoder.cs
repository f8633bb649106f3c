using AlignThenUnlearn.Models;
using Microsoft.ML.OnnxRuntime;

namespace AlignThenUnlearn.Runtime;

/// <summary>A sentence-transformers ONNX encoder (inputs input_ids, attention_mask and, when the export has it,
/// token_type_ids) with mean pooling over the attention mask. An export with token embeddings [batch, seq, dim] is
/// pooled here; one that outputs only a pooled <c>sentence_embedding</c> [batch, dim] has pooled inside the graph.</summary>
public sealed class SentenceEncoder : IDisposable
{
    /// <summary>Files of an encoder folder that decide its embeddings, where present.</summary>
    static readonly string[] DecidingFiles = [EncoderFolder.VocabFile, EncoderFolder.SettingsFile, "tokenizer_config.json", "tokenizer.json",
        "special_tokens_map.json", "sentence_bert_config.json", "modules.json", Path.Combine("1_Pooling", "config.json")];

    readonly InferenceSession _session;
    readonly bool _tokenTypes, _pooledByModel;
    readonly string _output;
    public EncoderTokenizer Tokenizer { get; }
    public EncoderSettings Settings { get; }
    public int Dimension { get; }
    /// <summary>The model, vocabulary and configuration files the embeddings depend on (for cache keys).</summary>
    public IReadOnlyList<string> Files { get; }

    SentenceEncoder(InferenceSession session, EncoderTokenizer tokenizer, EncoderSettings settings, IReadOnlyList<string> files, string modelPath)
    {
        (_session, Tokenizer, Settings, Files) = (session, tokenizer, settings, files);
        _tokenTypes = session.InputMetadata.ContainsKey("token_type_ids");
        foreach (var required in new[] { "input_ids", "attention_mask" })
            if (!session.InputMetadata.ContainsKey(required)) throw new ModelFormatException($"encoder '{modelPath}' has no input '{required}' (inputs: {string.Join(", ", session.InputMetadata.Keys)})");
        var outputs = session.OutputMetadata;
        var tokens = outputs.Where(o => o.Value.Dimensions.Length == 3).OrderByDescending(o => o.Key is "token_embeddings" or "last_hidden_state").FirstOrDefault();
        var pooled = outputs.FirstOrDefault(o => o.Key == "sentence_embedding" && o.Value.Dimensions.Length == 2);
        (_output, _pooledByModel, Dimension) = (tokens.Key, pooled.Key) switch
        {
            (string name, _) => (name, false, tokens.Value.Dimensions[2]),
            (null, string name) => (name, true, pooled.Value.Dimensions[1]),
            _ => throw new ModelFormatException($"encoder '{modelPath}' has neither token embeddings [batch, seq, dim] nor a sentence_embedding [batch, dim] output (outputs: {string.Join(", ", outputs.Keys)})"),
        };
        if (Dimension <= 0) throw new ModelFormatException($"encoder '{modelPath}': output '{_output}' has no fixed embedding dimension");
    }

    public static SentenceEncoder Open(string directory, ExecutionDevice device)
    {
        var settings = EncoderFolder.LoadSettings(directory);
        var tokenizer = EncoderTokenizer.Load(directory, settings);
        var model = EncoderFolder.ModelPath(directory);
        var files = DecidingFiles.Select(f => Path.Combine(directory, f)).Where(File.Exists).Prepend(model).ToList();
        return new SentenceEncoder(device.Open(model), tokenizer, settings, files, model);
    }

    /// <summary>Sentence embeddings of texts encoded with the special tokens (as sentence-transformers does).</summary>
    public float[][] Embed(IReadOnlyList<string> texts, int batchSize = 64) =>
        EmbedIds(texts.Select(t => Tokenizer.EncodeWithSpecialTokens(t, Settings.MaxLength)).ToList(), batchSize);

    /// <summary>Mean-pooled embeddings of id sequences as given (future windows are bare pieces with an all-ones mask).
    /// Sequences run in batches of similar length; within a batch shorter ones are padded and masked, which does not
    /// change their embeddings. <paramref name="progress"/> gets (sequences done, total) after every batch.</summary>
    public float[][] EmbedIds(IReadOnlyList<int[]> sequences, int batchSize = 64, Action<int, int>? progress = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        if (sequences.Any(s => s.Length == 0)) throw new ArgumentException("an encoder input needs at least one id");
        var result = new float[sequences.Count][];
        var byLength = Enumerable.Range(0, sequences.Count).OrderBy(i => sequences[i].Length).ToArray();
        for (int first = 0; first < byLength.Length; first += batchSize)
        {
            var batch = byLength[first..Math.Min(first + batchSize, byLength.Length)];
            var embeddings = EmbedBatch(batch.Select(i => sequences[i]).ToList());
            for (int k = 0; k < batch.Length; k++) result[batch[k]] = embeddings[k];
            progress?.Invoke(first + batch.Length, sequences.Count);
        }
        return result;
    }

    float[][] EmbedBatch(IReadOnlyList<int[]> sequences)
    {
        int batch = sequences.Count, length = sequences.Max(s => s.Length);
        var ids = new long[batch * length];
        var mask = new long[batch * length];
        Array.Fill(ids, Tokenizer.PadId);
        for (int b = 0; b < batch; b++)
            for (int t = 0; t < sequences[b].Length; t++) { ids[b * length + t] = sequences[b][t]; mask[b * length + t] = 1; }
        var feeds = new Dictionary<string, HostTensor>
        {
            ["input_ids"] = HostTensor.Of(ids, batch, length),
            ["attention_mask"] = HostTensor.Of(mask, batch, length),
        };
        if (_tokenTypes) feeds["token_type_ids"] = HostTensor.Of(new long[batch * length], batch, length);
        var output = ExecutionDevice.Run(_session, feeds, [_output])[_output].Floats;
        var result = new float[batch][];
        for (int b = 0; b < batch; b++)
        {
            if (_pooledByModel) { result[b] = output.AsSpan(b * Dimension, Dimension).ToArray(); continue; }
            var sum = new double[Dimension];
            int count = 0;
            for (int t = 0; t < length; t++)
            {
                if (mask[b * length + t] == 0) continue;
                count++;
                for (int d = 0; d < Dimension; d++) sum[d] += output[(b * length + t) * Dimension + d];
            }
            result[b] = sum.Select(v => (float)(v / count)).ToArray();
        }
        return result;
    }

    public void Dispose() => _session.Dispose();
}
