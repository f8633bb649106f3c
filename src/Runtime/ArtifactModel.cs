using AlignThenUnlearn.Models;
using AlignThenUnlearn.Models.Checkpoints;
using Microsoft.ML.OnnxRuntime;

namespace AlignThenUnlearn.Runtime;

/// <summary>An artifact folder written by `atu export`, opened for running: its manifest, configuration,
/// tokenizer (when the folder has one) and weights.</summary>
public sealed class ArtifactModel : IModelFolder
{
    public string Folder { get; }
    public ArtifactManifest Manifest { get; }
    public DecoderConfig Config { get; }
    public LlmTokenizer? Tokenizer { get; }

    ArtifactModel(string folder, ArtifactManifest manifest, DecoderConfig config, LlmTokenizer? tokenizer) =>
        (Folder, Manifest, Config, Tokenizer) = (folder, manifest, config, tokenizer);

    public static ArtifactModel Open(string folder)
    {
        var manifest = ArtifactManifest.Load(folder);
        manifest.Verify(folder);
        var config = HfConfig.Load(Path.Combine(folder, HfConfig.FileName));
        return new ArtifactModel(folder, manifest, config, TokenizerIn(folder));
    }

    /// <summary>The tokenizer of a model folder, or null when it has no tokenizer files.</summary>
    internal static LlmTokenizer? TokenizerIn(string folder) =>
        File.Exists(Path.Combine(folder, TokenizerFolder.SentencePieceFile)) || File.Exists(Path.Combine(folder, TokenizerFolder.TokenizerJsonFile))
            ? TokenizerFolder.Load(folder) : null;

    public InferenceModel OpenInference(ExecutionDevice device, string? weightsPath = null, Action<string>? notice = null) =>
        InferenceModel.Open(this, device, weightsPath, notice);

    public string PathOf(string file) => Path.Combine(Folder, file);

    /// <summary>Parameters of <paramref name="specs"/> as float32 host tensors, read from <paramref name="weightsFile"/>
    /// (the artifact's own weights unless trained weights are given), names and shapes checked.</summary>
    public Dictionary<string, HostTensor> ReadWeights(IEnumerable<ParameterSpec> specs, string? weightsFile = null)
    {
        var path = weightsFile ?? PathOf(ArtifactExporter.WeightsFile);
        using var checkpoint = SafetensorsCheckpoint.Open(path);
        var result = new Dictionary<string, HostTensor>();
        foreach (var spec in specs)
        {
            checkpoint.RequireWeight(spec.Name, spec.Shape);
            var data = new float[spec.ElementCount];
            checkpoint.Read(spec.Name, data);
            result[spec.Name] = HostTensor.Of(data, spec.Shape);
        }
        return result;
    }

    /// <summary>Runs forward.onnx (float32 artifacts) on equal-length token sequences: logits and every hidden state.</summary>
    public Dictionary<string, HostTensor> Forward(ExecutionDevice device, long[][] ids, string? weightsFile = null)
    {
        if (Manifest.Dtype != "f32") throw new NotSupportedException($"'{Folder}' holds {Manifest.Dtype} weights; `atu forward` runs f32 artifacts (export with --dtype f32)");
        if (ids.Length == 0 || ids.Any(r => r.Length != ids[0].Length || r.Length == 0)) throw new ArgumentException("forward needs one or more non-empty token sequences of equal length");
        if (ids[0].Length > Manifest.MaxSequenceLength) throw new ArgumentException($"{ids[0].Length} tokens exceed the artifact's maximum sequence length {Manifest.MaxSequenceLength}");
        foreach (var id in ids.SelectMany(r => r))
            if (id < 0 || id >= Config.VocabSize) throw new ArgumentException($"token id {id} is outside the vocabulary (0..{Config.VocabSize - 1})");
        var specs = DecoderBuilder.Parameters(Config);
        var feeds = ReadWeights(specs, weightsFile);
        feeds[DecoderGraph.InputIds] = HostTensor.Of(ids.SelectMany(r => r).ToArray(), ids.Length, ids[0].Length);
        using var session = device.Open(PathOf(ArtifactExporter.ForwardGraphFile));
        return ExecutionDevice.Run(session, feeds);
    }
}
