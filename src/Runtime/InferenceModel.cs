using AlignThenUnlearn.Models;
using AlignThenUnlearn.Models.Checkpoints;
using AlignThenUnlearn.Onnx;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Runtime;

/// <summary>An artifact's <c>model.onnx</c> (inference lowering, KV cache) opened in a session, with the artifact's
/// own weights or with trained weights of the same names.
///
/// Trained weights are swapped in through ONNX external data, the mechanism that already puts the artifact's weights
/// into the graph: the graph is read without its data, every initializer is pointed at the same tensor in the trained
/// safetensors file (name, shape and dtype checked), and the session is created from the rewritten graph with ONNX
/// Runtime's external-data folder set to that file's folder. ONNX Runtime then maps or reads the trained bytes exactly
/// as it does the artifact's, nothing is copied when the dtypes agree, and graph optimisations see the trained values
/// (SessionOptions.AddInitializer would skip constant folding's view of them and is ignored for initializers that the
/// CUDA provider places on the GPU). Trained weights are scored in the precision they were trained in: a file all in f32
/// (what training writes) runs an f32 graph built from the artifact's configuration even when the artifact is f16 (RWKU
/// scores full fine-tuning after <c>model.float()</c>; at RWKU's learning rates an update is about one f16 step, so
/// rounding to f16 first would undo much of it; the <c>cast</c> attack scores that rounding). Any other file whose dtype
/// differs from the artifact's is first converted to the artifact's dtype in a temporary file beside it, deleted on
/// disposal (or by the next run after a kill).</summary>
public sealed class InferenceModel : IDisposable
{
    public InferenceSession Session { get; }
    public DecoderConfig Config { get; }
    /// <summary>Element type of the cache and the logits (the artifact's run dtype).</summary>
    public TensorElementType ElementType { get; }
    /// <summary>Longest sequence (prompt plus new tokens) the rotary tables cover.</summary>
    public int MaxSequenceLength { get; }
    /// <summary>The weights file in use: the artifact's, or the trained one.</summary>
    public string WeightsPath { get; }

    /// <summary>The temporary copy of the trained weights in the run dtype, when they had to be converted; deleted on disposal.</summary>
    public string? ConvertedWeightsPath { get; }
    /// <summary>The graph's input and output names.</summary>
    public DecoderIoNames Io { get; }
    /// <summary>Whether the graph takes <see cref="DecoderIoNames.PositionIds"/>.</summary>
    public bool TakesPositionIds { get; }

    InferenceModel(InferenceSession session, DecoderConfig config, TensorElementType elementType, int maxSequenceLength, string weightsPath, string? convertedWeightsPath,
        DecoderIoNames? io = null, bool takesPositionIds = true) =>
        (Session, Config, ElementType, MaxSequenceLength, WeightsPath, ConvertedWeightsPath, Io, TakesPositionIds) =
            (session, config, elementType, maxSequenceLength, weightsPath, convertedWeightsPath, io ?? DecoderIoNames.Lowering, takesPositionIds);

    /// <summary>Opens the decoder of a shipped folder as it is (its graph, names and weights; <see cref="ShippedModel"/>).</summary>
    public static InferenceModel Open(ShippedModel shipped, ExecutionDevice device) =>
        new(device.Open(shipped.Decoder.ModelPath), shipped.Config, shipped.ElementType, shipped.Decoder.ContextLength, shipped.Decoder.ModelPath, null,
            shipped.Decoder.Io, shipped.TakesPositionIds);

    /// <param name="weightsPath">Trained weights: a safetensors file, or a folder or index of shards, holding every
    /// parameter of the model under its Hugging Face name; null: the artifact's own weights.</param>
    /// <param name="notice">Told when the trained weights must be converted to the run dtype first.</param>
    public static InferenceModel Open(ArtifactModel artifact, ExecutionDevice device, string? weightsPath = null, Action<string>? notice = null)
    {
        var runType = artifact.Manifest.Dtype switch
        {
            "f32" => DataType.Float,
            "f16" => DataType.Float16,
            var other => throw new ModelFormatException($"'{artifact.Folder}': manifest dtype '{other}' is neither f32 nor f16"),
        };
        var elementType = (TensorElementType)(int)runType;   // ONNX and ONNX Runtime number element types alike
        var artifactElementType = elementType;
        var graphPath = artifact.PathOf(ArtifactExporter.InferenceGraphFile);
        if (weightsPath is null)
            return new InferenceModel(device.Open(graphPath), artifact.Config, elementType, artifact.Manifest.MaxSequenceLength,
                artifact.PathOf(ArtifactExporter.WeightsFile), null);

        var specs = DecoderBuilder.Parameters(artifact.Config, runType);
        string? temporary = null, converted = null;
        try
        {
            var checkpoint = SafetensorsCheckpoint.Open(weightsPath);
            try
            {
                ArtifactExporter.CheckTensors(checkpoint, specs);
                // ONNX Runtime maps these bytes as they are: their finiteness is checked here, where they enter.
                foreach (var spec in specs) checkpoint.RequireFinite(spec.Name);
                if (runType != DataType.Float && specs.All(s => checkpoint.Entry(s.Name).DType == SafetensorsDType.F32))
                {
                    // f32 trained weights of an f16 artifact: an f32 graph of the same configuration reads them as they are.
                    (runType, elementType) = (DataType.Float, TensorElementType.Float);
                    specs = DecoderBuilder.Parameters(artifact.Config, runType);
                    notice?.Invoke($"scoring '{weightsPath}' in f32, the precision it was trained in (the artifact is {artifact.Manifest.Dtype})");
                }
                var runDType = runType == DataType.Float ? SafetensorsDType.F32 : SafetensorsDType.F16;
                if (specs.Any(s => checkpoint.Entry(s.Name).DType != runDType))
                {
                    notice?.Invoke($"converting '{weightsPath}' to the artifact's {artifact.Manifest.Dtype} in a temporary file beside it");
                    // Not the system's temporary folder (often small, and never cleaned after a kill): a staging entry
                    // beside the trained weights, removed on disposal or, after a kill, by the next run.
                    var (parent, name) = (Path.GetDirectoryName(Path.GetFullPath(weightsPath))!, Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(weightsPath))));
                    StagingArea.RemoveLeftovers(parent, name);
                    StagingArea.RequireFreeSpace(parent, specs.Sum(s => s.ElementCount * runDType.ByteSize()), $"the {artifact.Manifest.Dtype} copy of '{weightsPath}'");
                    temporary = StagingArea.NewPath(parent, name, "converted");
                    Directory.CreateDirectory(temporary);
                    converted = Path.Combine(temporary, ArtifactExporter.WeightsFile);
                    ArtifactExporter.WriteWeights(checkpoint, specs, converted, runType);
                    checkpoint.Dispose();
                    checkpoint = SafetensorsCheckpoint.Open(converted);
                }
                // The artifact's graph, or for f32 weights of an f16 artifact the f32 graph `atu export` would write (its
                // external tensors are pointed at the trained file below, as the artifact's are).
                var model = elementType == artifactElementType ? ModelFile.Load(graphPath, loadExternalData: false)
                    : DecoderBuilder.BuildInference(artifact.Config, new InferenceGraphOptions { ElementType = runType, MaxSequenceLength = artifact.Manifest.MaxSequenceLength },
                        spec => ArtifactExporter.ExternalTensor(spec, ArtifactExporter.WeightsFile, 0, 0)).Model;
                var folder = Path.GetDirectoryName(RealPath(checkpoint.FileOf(specs[0].Name).Path))!;
                var byName = specs.ToDictionary(s => s.Name);
                int replaced = 0;
                for (int i = 0; i < model.Graph.Initializer.Count; i++)
                {
                    var initializer = model.Graph.Initializer[i];
                    if (initializer.DataLocation != global::Onnx.TensorProto.Types.DataLocation.External) continue;
                    if (!byName.TryGetValue(initializer.Name, out var spec))
                        throw new ModelFormatException($"'{graphPath}' reads external tensor '{initializer.Name}', which is no parameter of this configuration");
                    var file = checkpoint.FileOf(spec.Name);
                    var real = RealPath(file.Path);
                    if (Path.GetDirectoryName(real) != folder)
                        throw new ModelFormatException($"the shards of '{weightsPath}' lie in different folders ('{folder}', '{Path.GetDirectoryName(real)}'); ONNX Runtime reads external data from one folder");
                    model.Graph.Initializer[i] = ArtifactExporter.ExternalTensor(spec, file, Path.GetFileName(real));
                    replaced++;
                }
                if (replaced != specs.Count)
                    throw new ModelFormatException($"'{graphPath}' reads {replaced} of the {specs.Count} parameters from external data; re-export the artifact");
                var session = device.OpenWithExternalData(model, folder);
                return new InferenceModel(session, artifact.Config, elementType, artifact.Manifest.MaxSequenceLength, weightsPath, converted);
            }
            finally { checkpoint.Dispose(); }
        }
        catch
        {
            if (temporary is not null) Directory.Delete(temporary, recursive: true);
            throw;
        }
    }

    /// <summary>The file a path finally names, links resolved: ONNX Runtime refuses external data reached through a
    /// link that leads out of its folder (as the files of a Hugging Face cache snapshot do).</summary>
    static string RealPath(string path)
    {
        var full = Path.GetFullPath(path);
        return new FileInfo(full).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? full;
    }

    public void Dispose()
    {
        Session.Dispose();
        if (ConvertedWeightsPath is not null && Path.GetDirectoryName(ConvertedWeightsPath) is { } folder && Directory.Exists(folder))
            Directory.Delete(folder, recursive: true);
    }
}
