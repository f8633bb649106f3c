using System.Text.Json.Nodes;
using AlignThenUnlearn.Models.Checkpoints;
using AlignThenUnlearn.Onnx;
using Onnx;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Models;

/// <summary>What `atu export` writes.</summary>
public sealed record ExportOptions
{
    /// <summary>Run dtype of the weights and graphs: Float (f32) or Float16 (f16).</summary>
    public DataType ElementType { get; init; } = DataType.Float;
    /// <summary>Hidden-state index that feeds the embedding head (Hugging Face indexing), recorded in the manifest.</summary>
    public int? Layer { get; init; }
    /// <summary>Longest sequence (past plus new tokens) the graphs serve; null: the configuration's max_position_embeddings.</summary>
    public int? MaxSequenceLength { get; init; }
    public bool Force { get; init; }
    /// <summary>Elements converted per chunk: bounds the exporter's memory whatever the checkpoint's size.</summary>
    public int ChunkElements { get; init; } = 1 << 20;
}

/// <summary>Turns a Hugging Face snapshot (config.json, safetensors shards, tokenizer files) into a self-describing
/// artifact folder: <c>manifest.json</c>, <c>config.json</c>, <c>weights.safetensors</c> (converted to the run dtype,
/// Hugging Face tensor names), <c>model.onnx</c> (inference lowering with KV cache, whose initializers are ONNX external
/// data pointing into weights.safetensors, so the weights exist once), <c>forward.onnx</c> (training lowering with
/// every hidden state and the logits, parameters as inputs) and the tokenizer files. The folder appears complete or not
/// at all. Weights are streamed in chunks, so memory stays far below the checkpoint's size.</summary>
public static class ArtifactExporter
{
    public const string WeightsFile = "weights.safetensors", InferenceGraphFile = "model.onnx", ForwardGraphFile = "forward.onnx";
    /// <summary>Tokenizer and generation files copied as they are from a snapshot into an artifact, and from an artifact into a shipped model.</summary>
    public static readonly string[] TokenizerFiles = ["tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "generation_config.json"];

    public static ArtifactManifest Export(string hfFolder, string outFolder, ExportOptions options, Action<string, double>? progress = null)
    {
        if (!Directory.Exists(hfFolder)) throw new DirectoryNotFoundException($"Hugging Face folder '{hfFolder}' does not exist");
        OutputPaths.RequireApart(("--out", outFolder), ("--hf", hfFolder));
        if (options.ElementType is not (DataType.Float or DataType.Float16)) throw new ArgumentException($"export dtype must be f32 or f16, not {options.ElementType}");
        var configPath = Path.Combine(hfFolder, HfConfig.FileName);
        var config = HfConfig.Load(configPath);
        if (options.Layer is int layer && (layer < 0 || layer > config.NumHiddenLayers))
            throw new ArgumentException($"--layer {layer} does not exist: {configPath} has {config.NumHiddenLayers} layers (hidden states 0..{config.NumHiddenLayers})");
        var maxLength = options.MaxSequenceLength ?? config.MaxPositionEmbeddings;
        if (maxLength < 1 || maxLength > config.MaxPositionEmbeddings)
            throw new ArgumentException($"--max-seq-len {maxLength} is outside 1..{config.MaxPositionEmbeddings} (max_position_embeddings of {configPath})");

        using var checkpoint = SafetensorsCheckpoint.Open(hfFolder);
        var specs = DecoderBuilder.Parameters(config, options.ElementType);
        CheckTensors(checkpoint, specs);

        using var staged = StagedFolder.Create(outFolder, options.Force, specs.Sum(s => s.ElementCount * (options.ElementType == DataType.Float ? 4L : 2L)));
        File.Copy(configPath, staged.PathOf(HfConfig.FileName));
        var copiedTokenizer = TokenizerFiles.Where(f => File.Exists(Path.Combine(hfFolder, f))).ToList();
        foreach (var f in copiedTokenizer) File.Copy(Path.Combine(hfFolder, f), staged.PathOf(f));
        if (copiedTokenizer.Count > 0) TokenizerFolder.Load(staged.Staging);   // refuse a tokenizer that later verbs could not load

        WriteWeights(checkpoint, specs, staged.PathOf(WeightsFile), options.ElementType, options.ChunkElements, progress);
        WriteGraphs(config, staged, options.ElementType, maxLength);

        var files = new[] { HfConfig.FileName, WeightsFile, InferenceGraphFile, ForwardGraphFile }.Concat(copiedTokenizer)
            .Select(f => ArtifactManifest.Describe(staged.Staging, f)).ToList();
        var manifest = new ArtifactManifest
        {
            Family = config.ModelType,
            Config = JsonNode.Parse(File.ReadAllText(configPath))!.AsObject(),
            Dtype = options.ElementType == DataType.Float ? "f32" : "f16",
            Layer = options.Layer,
            MaxSequenceLength = maxLength,
            Source = Path.GetFullPath(hfFolder),
            Files = files,
        };
        manifest.Save(staged.Staging);
        staged.Commit();
        return manifest;
    }

    /// <summary>Every parameter the decoder needs is in the checkpoint with its shape and a floating dtype.</summary>
    public static void CheckTensors(SafetensorsCheckpoint checkpoint, IReadOnlyList<ParameterSpec> specs)
    {
        foreach (var spec in specs) checkpoint.RequireWeight(spec.Name, spec.Shape);
    }

    /// <summary>Changes float32 values in place.</summary>
    public delegate void SpanAction(Span<float> values);

    /// <summary>Writes the tensors of <paramref name="specs"/> from <paramref name="checkpoint"/> (any floating dtype) to one
    /// safetensors file in the run dtype <paramref name="elementType"/> (f32 or f16), <paramref name="chunkElements"/> values
    /// at a time; <paramref name="transform"/>, when given, changes the values (in float32) before they are stored.</summary>
    public static void WriteWeights(SafetensorsCheckpoint checkpoint, IReadOnlyList<ParameterSpec> specs, string path, DataType elementType,
        int chunkElements = 1 << 20, Action<string, double>? progress = null, SpanAction? transform = null)
    {
        var dtype = elementType == DataType.Float ? SafetensorsDType.F32 : SafetensorsDType.F16;
        var tensorSpecs = specs.Select(s => new TensorSpec(s.Name, dtype, s.Shape)).ToList();
        long total = specs.Sum(s => s.ElementCount), done = 0;
        var buffer = new float[chunkElements];
        using var writer = SafetensorsWriter.Create(path, tensorSpecs, new Dictionary<string, string> { ["format"] = "pt" });
        foreach (var spec in specs)
        {
            for (long first = 0; first < spec.ElementCount; first += buffer.Length)
            {
                var chunk = buffer.AsSpan(0, (int)Math.Min(buffer.Length, spec.ElementCount - first));
                checkpoint.ReadSlice(spec.Name, first, chunk);
                transform?.Invoke(chunk);
                writer.AppendValues(chunk);
                done += chunk.Length;
            }
            progress?.Invoke(spec.Name, (double)done / total);
        }
        writer.Commit();
    }

    static void WriteGraphs(DecoderConfig config, StagedFolder staged, DataType elementType, int maxLength)
    {
        using var weights = SafetensorsFile.Open(staged.PathOf(WeightsFile));
        var inference = DecoderBuilder.BuildInference(config, new InferenceGraphOptions { ElementType = elementType, MaxSequenceLength = maxLength },
            spec => ExternalTensor(spec, weights, WeightsFile));
        ModelFile.Save(inference.Model, staged.PathOf(InferenceGraphFile));
        var forward = DecoderBuilder.Build(config, new DecoderGraphOptions
        {
            ElementType = elementType,
            HiddenStates = Enumerable.Range(0, config.NumHiddenLayers + 1).ToArray(),
        });
        ModelFile.Save(forward.Model, staged.PathOf(ForwardGraphFile));
    }

    /// <summary>An initializer whose data is the tensor's bytes inside a safetensors file (ONNX external data);
    /// <paramref name="location"/> is that file's path relative to the model's folder.</summary>
    public static TensorProto ExternalTensor(ParameterSpec spec, SafetensorsFile weights, string location)
    {
        var entry = weights.Entry(spec.Name);
        return ExternalTensor(spec, location, weights.DataStart + entry.DataBegin, entry.ByteLength);
    }

    /// <summary>An initializer whose data is <paramref name="length"/> bytes at <paramref name="offset"/> of the file
    /// <paramref name="location"/> beside the model (ONNX external data).</summary>
    public static TensorProto ExternalTensor(ParameterSpec spec, string location, long offset, long length)
    {
        var tensor = new TensorProto { Name = spec.Name, DataType = (int)spec.ElementType, DataLocation = TensorProto.Types.DataLocation.External };
        tensor.Dims.AddRange(spec.Shape);
        tensor.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = location });
        tensor.ExternalData.Add(new StringStringEntryProto { Key = "offset", Value = offset.ToString() });
        tensor.ExternalData.Add(new StringStringEntryProto { Key = "length", Value = length.ToString() });
        return tensor;
    }
}
