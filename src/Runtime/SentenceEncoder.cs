using AlignThenUnlearn.Models;
using Microsoft.ML.OnnxRuntime;

namespace AlignThenUnlearn.Runtime;

/// <summary>A sentence-transformers ONNX encoder (inputs input_ids, attention_mask and, when the export has it,
/// token_type_ids; output token embeddings [batch, seq, dim]) with mean pooling over the attention mask.</summary>
public sealed class SentenceEncoder : IDisposable
{
    readonly InferenceSession _session;
    readonly bool _tokenTypes;
    readonly string _output;
    public EncoderTokenizer Tokenizer { get; }
    public EncoderSettings Settings { get; }
    public int Dimension { get; }

    SentenceEncoder(InferenceSession session, EncoderTokenizer tokenizer, EncoderSettings settings)
    {
        (_session, Tokenizer, Settings) = (session, tokenizer, settings);
        _tokenTypes = session.InputMetadata.ContainsKey("token_type_ids");
        foreach (var required in new[] { "input_ids", "attention_mask" })
            if (!session.InputMetadata.ContainsKey(required)) throw new ModelFormatException($"the encoder has no input '{required}' (inputs: {string.Join(", ", session.InputMetadata.Keys)})");
        var tokenOutput = session.OutputMetadata.FirstOrDefault(o => o.Value.Dimensions.Length == 3);
        if (tokenOutput.Key is null) throw new ModelFormatException($"the encoder has no token-embedding output [batch, seq, dim] (outputs: {string.Join(", ", session.OutputMetadata.Keys)})");
        _output = tokenOutput.Key;
        Dimension = tokenOutput.Value.Dimensions[2];
    }

    public static SentenceEncoder Open(string directory, ExecutionDevice device)
    {
        var settings = EncoderFolder.LoadSettings(directory);
        var tokenizer = EncoderTokenizer.Load(directory, settings);
        return new SentenceEncoder(device.Open(Path.Combine(directory, EncoderFolder.ModelFile)), tokenizer, settings);
    }

    /// <summary>Sentence embeddings of texts encoded with the special tokens (as sentence-transformers does).</summary>
    public float[][] Embed(IReadOnlyList<string> texts) =>
        EmbedIds(texts.Select(t => Tokenizer.EncodeWithSpecialTokens(t, Settings.MaxLength)).ToList());

    /// <summary>Mean-pooled embeddings of id sequences as given (future windows are bare pieces with an all-ones mask);
    /// shorter sequences in a batch are padded and masked.</summary>
    public float[][] EmbedIds(IReadOnlyList<int[]> sequences)
    {
        if (sequences.Count == 0) return [];
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
        var tokens = ExecutionDevice.Run(_session, feeds, [_output])[_output].Floats;
        var result = new float[batch][];
        for (int b = 0; b < batch; b++)
        {
            var sum = new double[Dimension];
            int count = 0;
            for (int t = 0; t < length; t++)
            {
                if (mask[b * length + t] == 0) continue;
                count++;
                for (int d = 0; d < Dimension; d++) sum[d] += tokens[(b * length + t) * Dimension + d];
            }
            result[b] = sum.Select(v => (float)(v / Math.Max(count, 1))).ToArray();
        }
        return result;
    }

    public void Dispose() => _session.Dispose();
}
