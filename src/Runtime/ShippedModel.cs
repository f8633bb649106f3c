using AlignThenUnlearn.Models;
using AlignThenUnlearn.Onnx;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace AlignThenUnlearn.Runtime;

/// <summary>A folder a decoder runs from, with its configuration and tokenizer: an artifact folder (`atu export`) or a
/// folder `atu ship` wrote.</summary>
public interface IModelFolder
{
    string Folder { get; }
    DecoderConfig Config { get; }
    LlmTokenizer? Tokenizer { get; }

    /// <summary>The folder's inference graph in a session on <paramref name="device"/>, with trained weights of the same
    /// names where the folder takes them (null: its own).</summary>
    InferenceModel OpenInference(ExecutionDevice device, string? weightsPath = null, Action<string>? notice = null);
}

/// <summary>A folder `atu ship` wrote for ONNX Runtime GenAI, found by its <c>genai_config.json</c> and run with plain ONNX
/// Runtime, so that what is scored is the deployed artefact itself (its graph, its int4 MatMulNBits, its weights in
/// <c>model.onnx.data</c>). The graph's file and input/output names come from <c>genai_config.json</c>; each is checked
/// against the graph, and the sizes against <c>config.json</c>, before a session opens; first of all every file is checked
/// against its SHA-256 in <c>shipped.json</c>.</summary>
public sealed class ShippedModel : IModelFolder
{
    public string Folder { get; }
    public DecoderConfig Config { get; }
    public LlmTokenizer? Tokenizer { get; }
    public GenAiDecoder Decoder { get; }
    /// <summary>Element type of the cache and the logits, as the graph declares them.</summary>
    public TensorElementType ElementType { get; }
    /// <summary>Whether the graph takes position ids (GenAI's graphs may derive them from the attention mask instead).</summary>
    public bool TakesPositionIds { get; }

    ShippedModel(string folder, DecoderConfig config, LlmTokenizer? tokenizer, GenAiDecoder decoder, TensorElementType elementType, bool takesPositionIds) =>
        (Folder, Config, Tokenizer, Decoder, ElementType, TakesPositionIds) = (folder, config, tokenizer, decoder, elementType, takesPositionIds);

    /// <summary>Whether <paramref name="folder"/> is a shipped folder: one with a <c>genai_config.json</c>.</summary>
    public static bool IsShipped(string folder) => File.Exists(Path.Combine(folder, GenAiConfig.FileName));

    public static ShippedModel Open(string folder)
    {
        // Before anything is read: a file changed since `atu ship` wrote it is not what was shipped.
        ShippedManifest.VerifyFolder(folder);
        var decoder = GenAiConfig.Read(folder);
        var configPath = Path.Combine(folder, HfConfig.FileName);
        if (!File.Exists(configPath)) throw new FileNotFoundException($"shipped folder '{folder}' has no {HfConfig.FileName} (the model's configuration `atu ship` copies)", configPath);
        var config = HfConfig.Load(configPath);
        foreach (var (key, stated, expected) in new[] { ("num_hidden_layers", decoder.Layers, config.NumHiddenLayers),
            ("num_key_value_heads", decoder.KeyValueHeads, config.NumKeyValueHeads), ("head_size", decoder.HeadSize, config.HeadDimension) })
            if (stated != expected) throw new ModelFormatException($"'{decoder.ConfigPath}': {key} is {stated}, but '{configPath}' gives {expected}");
        if (!File.Exists(decoder.ModelPath))
            throw new FileNotFoundException($"'{decoder.ConfigPath}' names the decoder '{Path.GetFileName(decoder.ModelPath)}', which '{folder}' lacks", decoder.ModelPath);
        // The graph alone (its external data checked to exist, not read), to check the names before ONNX Runtime loads it.
        var graph = ModelFile.Load(decoder.ModelPath, loadExternalData: false).Graph;
        var inputs = graph.Input.ToDictionary(v => v.Name);
        var outputs = graph.Output.ToDictionary(v => v.Name);
        var io = decoder.Io;
        var pastNames = io.PastNames(config.NumHiddenLayers);
        var presentNames = io.PresentNames(config.NumHiddenLayers);
        foreach (var name in new[] { io.InputIds, io.AttentionMask }.Concat(pastNames))
            if (!inputs.ContainsKey(name)) throw new ModelFormatException($"'{decoder.ModelPath}' has no input '{name}', which '{decoder.ConfigPath}' names");
        foreach (var name in new[] { io.Logits }.Concat(presentNames))
            if (!outputs.ContainsKey(name)) throw new ModelFormatException($"'{decoder.ModelPath}' has no output '{name}', which '{decoder.ConfigPath}' names");
        // Inputs with an initializer are optional (logits_from: every position unless fed).
        var known = new HashSet<string>([io.InputIds, io.AttentionMask, io.PositionIds, .. pastNames, .. graph.Initializer.Select(t => t.Name)]);
        if (inputs.Keys.FirstOrDefault(name => !known.Contains(name)) is string unknown)
            throw new ModelFormatException($"'{decoder.ModelPath}' takes input '{unknown}', which is none of the decoder inputs '{decoder.ConfigPath}' names");
        var elementType = (TensorElementType)outputs[io.Logits].Type.TensorType.ElemType;
        if (elementType is not (TensorElementType.Float or TensorElementType.Float16))
            throw new ModelFormatException($"'{decoder.ModelPath}': output '{io.Logits}' is {elementType}; expected float or float16 logits");
        if (pastNames.Select(n => inputs[n]).Concat(presentNames.Select(n => outputs[n])).FirstOrDefault(v => (TensorElementType)v.Type.TensorType.ElemType != elementType) is { } other)
            throw new ModelFormatException($"'{decoder.ModelPath}': cache tensor '{other.Name}' is {(TensorElementType)other.Type.TensorType.ElemType}, the logits {elementType}; the cache must match them");
        return new ShippedModel(folder, config, ArtifactModel.TokenizerIn(folder), decoder, elementType, inputs.ContainsKey(io.PositionIds));
    }

    /// <summary>Opens the folder's decoder once in an ONNX Runtime session on the CPU and closes it: what `atu ship` does
    /// before it declares a folder done (a graph ONNX Runtime refuses, e.g. MatMulNBits with a block size its kernels do
    /// not run, must not ship). The graph is loaded as written, without graph optimisations, which only cost time here.</summary>
    public static void CheckLoads(string folder)
    {
        var decoder = GenAiConfig.Read(folder);
        try
        {
            // Errors only: the load itself is the check (its warning about logits_from's default is intended).
            using var options = new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_DISABLE_ALL, LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR };
            using var session = new InferenceSession(decoder.ModelPath, options);
        }
        catch (OnnxRuntimeException e)
        {
            throw new ModelFormatException($"ONNX Runtime cannot load the shipped model '{decoder.ModelPath}': {e.Message}", e);
        }
    }

    public InferenceModel OpenInference(ExecutionDevice device, string? weightsPath = null, Action<string>? notice = null) =>
        weightsPath is null ? InferenceModel.Open(this, device)
        : throw new ArgumentException($"'{Folder}' is a shipped folder, which carries its own weights; trained weights ('{weightsPath}') go into an artifact folder's model (or ship them with `atu ship`)");
}
