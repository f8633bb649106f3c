using System.Text.Json.Nodes;
using AlignThenUnlearn.Models.Checkpoints;
using AlignThenUnlearn.Onnx;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Models;

/// <summary>Which deployable forms `atu ship` writes.</summary>
public enum ShipFormat { Onnx, Safetensors, Both }

/// <summary>What `atu ship` writes.</summary>
public sealed record ShipOptions
{
    public ShipFormat Format { get; init; } = ShipFormat.Both;
    /// <summary>Shipped dtype of the weights. Null: ONNX in the artifact's run dtype; safetensors in the configuration's
    /// <c>torch_dtype</c> (else the dtype the trained weights are stored in). BF16 is for safetensors only.</summary>
    public SafetensorsDType? Dtype { get; init; }
    public bool Force { get; init; }
    /// <summary>Facts for the model card (base model, target, method, hyperparameters, results).</summary>
    public ModelCardFacts Card { get; init; } = new();
    /// <summary>Largest safetensors shard in bytes (Hugging Face's <c>save_pretrained</c> default, 5 GB).</summary>
    public long MaxShardBytes { get; init; } = 5_000_000_000;
    /// <summary>Elements converted per chunk: bounds memory whatever the model's size.</summary>
    public int ChunkElements { get; init; } = 1 << 20;
    /// <summary>Null: the ONNX model's linear layers are float. Else the decoder layers' projections ship as 4-bit
    /// MatMulNBits with blocks of this many values (ONNX Runtime GenAI's int4 builder uses 32), quantised by round to
    /// nearest (<see cref="Quantization.MatMulNBitsWeights"/>); embeddings, norms and lm_head stay in the ONNX dtype.</summary>
    public int? Int4BlockSize { get; init; }
    /// <summary>Int4: symmetric blocks (zero point 8) instead of asymmetric ones (min/max with a zero point per block).</summary>
    public bool Int4Symmetric { get; init; }
    /// <summary>Run on the finished staging folder before it is moved into place (`atu ship`: ONNX Runtime loads the
    /// model once); when it throws, nothing is shipped and the staging folder is removed.</summary>
    public Action<string>? LoadCheck { get; init; }
}

/// <summary>What was shipped: the dtypes per format (null: format not written), every file, the tensors of the
/// trained weights that are no parameter of the decoder and were left out, and what a deployment team should know
/// (e.g. a tokenizer GenAI cannot read as the project does).</summary>
public sealed record ShipResult(string Folder, SafetensorsDType? OnnxDtype, SafetensorsDType? SafetensorsDtype,
    IReadOnlyList<ShippedFile> Files, IReadOnlyList<string> IgnoredTensors, IReadOnlyList<string> Warnings);

/// <summary>Turns an artifact folder and trained weights (a safetensors file, folder or index with Hugging Face tensor
/// names) into a folder deployment teams load without this project:
/// <list type="bullet">
/// <item>ONNX: <c>model.onnx</c> (the inference lowering with KV cache) whose initializers are ONNX external data in
/// <c>model.onnx.data</c> (the tensors' bytes back to back, each at a 4096-byte page boundary, as ONNX Runtime's own
/// external-data writer aligns large tensors),
/// and <c>genai_config.json</c> for ONNX Runtime GenAI;</item>
/// <item>safetensors: Hugging Face's layout (<c>model.safetensors</c>, or <c>model-0000i-of-0000n.safetensors</c> shards
/// with <c>model.safetensors.index.json</c>), original tensor names, <c>torch_dtype</c> in config.json set to the shipped dtype;</item>
/// <item>always: <c>config.json</c>, <c>generation_config.json</c>, the artifact's tokenizer files, the model card
/// <c>README.md</c> and <c>shipped.json</c> (<see cref="ShippedManifest"/>: every file's SHA-256).</item>
/// </list>
/// Every weight is checked before and while it is written (present, right shape, finite, representable in the shipped
/// dtype); the folder appears complete or not at all, and replaces an existing one only when forced. Weights are
/// streamed in chunks, so memory stays far below the model's size.</summary>
public static class ModelShipper
{
    public const string OnnxModelFile = "model.onnx", OnnxDataFile = "model.onnx.data";
    const int DataAlignment = 4096;

    public static ShipResult Ship(string artifactsFolder, string weightsPath, string outFolder, ShipOptions options)
    {
        if (!Directory.Exists(artifactsFolder)) throw new DirectoryNotFoundException($"artifact folder '{artifactsFolder}' does not exist (create one with `atu export`)");
        OutputPaths.RequireApart(("--out", outFolder), ("--artifacts", artifactsFolder), ("--weights", weightsPath));
        if (options.Int4BlockSize is int blockSize) Quantization.MatMulNBitsWeights.Check(blockSize);
        var manifest = ArtifactManifest.Load(artifactsFolder);
        manifest.Verify(artifactsFolder);
        var configPath = Path.Combine(artifactsFolder, HfConfig.FileName);
        var config = HfConfig.Load(configPath);
        var generationIds = GenerationIds.Of(config, Path.Combine(artifactsFolder, TokenizerFolder.GenerationConfigFile));

        if (!File.Exists(weightsPath) && !Directory.Exists(weightsPath))
            throw new FileNotFoundException($"trained weights '{weightsPath}' do not exist", weightsPath);
        using var weights = SafetensorsCheckpoint.Open(weightsPath);
        var specs = DecoderBuilder.Parameters(config);
        ArtifactExporter.CheckTensors(weights, specs);
        var known = specs.Select(s => s.Name).ToHashSet(StringComparer.Ordinal);
        var ignored = weights.Names.Where(n => !known.Contains(n)).ToList();

        bool onnx = options.Format is ShipFormat.Onnx or ShipFormat.Both;
        bool safetensors = options.Format is ShipFormat.Safetensors or ShipFormat.Both;
        SafetensorsDType? onnxDtype = onnx ? OnnxDtype(options.Dtype, manifest) : null;
        SafetensorsDType? safetensorsDtype = safetensors ? options.Dtype ?? SourceDtype(config, weights, specs) : null;

        using var staged = StagedFolder.Create(outFolder, options.Force);
        WriteConfig(configPath, staged.PathOf(HfConfig.FileName), safetensorsDtype);
        foreach (var file in ArtifactExporter.TokenizerFiles.Where(f => File.Exists(Path.Combine(artifactsFolder, f))))
            File.Copy(Path.Combine(artifactsFolder, file), staged.PathOf(file));
        if (!File.Exists(staged.PathOf(TokenizerFolder.GenerationConfigFile)))
            WriteGenerationConfig(generationIds, staged.PathOf(TokenizerFolder.GenerationConfigFile));

        if (onnxDtype is SafetensorsDType onnxType)
        {
            var layout = WriteOnnxData(weights, specs, onnxType, staged.PathOf(OnnxDataFile), options);
            var elementType = onnxType == SafetensorsDType.F16 ? DataType.Float16 : DataType.Float;
            var graph = DecoderBuilder.BuildInference(config, new InferenceGraphOptions
                {
                    ElementType = elementType,
                    MaxSequenceLength = manifest.MaxSequenceLength,
                    Int4BlockSize = options.Int4BlockSize,
                },
                spec => ArtifactExporter.ExternalTensor(spec, OnnxDataFile, layout[spec.Name].Offset, layout[spec.Name].Length));
            ModelFile.Save(graph.Model, staged.PathOf(OnnxModelFile));
            File.WriteAllText(staged.PathOf(GenAiConfig.FileName), GenAiConfig.ToJson(config, generationIds, manifest.MaxSequenceLength, OnnxModelFile));
        }
        if (safetensorsDtype is SafetensorsDType shardType)
        {
            var sources = specs.Select(spec => TensorSource.FromGenerator(spec.Name, shardType, spec.Shape,
                (first, values) => ReadChecked(weights, spec.Name, first, values, shardType))).ToList();
            // "format": "pt" is what transformers looks for in a safetensors header before loading it.
            SafetensorsWriter.WriteSharded(staged.Staging, sources, options.MaxShardBytes, new Dictionary<string, string> { ["format"] = "pt" });
        }

        var files = Directory.EnumerateFiles(staged.Staging, "*", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(staged.Staging, f)).Order(StringComparer.Ordinal)
            .Select(f => ArtifactManifest.Describe(staged.Staging, f)).Select(f => new ShippedFile(f.Path, f.Bytes, f.Sha256)).ToList();
        var card = new ModelCard.Contents(options.Card, config, options.Card.BaseModel ?? BaseModelName(configPath),
            onnxDtype is null ? null : OnnxWeightsText(onnxDtype.Value, options), safetensorsDtype?.ToString().ToLowerInvariant(), manifest.MaxSequenceLength, files);
        File.WriteAllText(staged.PathOf(ModelCard.FileName), ModelCard.Render(card));
        ShippedManifest.Of(staged.Staging).Save(staged.Staging);
        options.LoadCheck?.Invoke(staged.Staging);
        staged.Commit();
        return new ShipResult(staged.Target, onnxDtype, safetensorsDtype, files, ignored, onnx ? GenAiTokenizerWarnings(artifactsFolder) : []);
    }

    /// <summary>ONNX Runtime GenAI tokenizes with onnxruntime-extensions, which reads tokenizer.json, and takes the BOS
    /// rule from its post-processor only when tokenizer_config.json names a <c>tokenizer_class</c> (without one it adds
    /// fairseq's &lt;s&gt; and &lt;/s&gt;).</summary>
    static List<string> GenAiTokenizerWarnings(string artifactsFolder)
    {
        if (!File.Exists(Path.Combine(artifactsFolder, TokenizerFolder.TokenizerJsonFile)))
            return [$"the artifact has no {TokenizerFolder.TokenizerJsonFile}: ONNX Runtime GenAI's tokenizer cannot load the shipped folder; give it token ids (Generator.AppendTokens)"];
        var configPath = Path.Combine(artifactsFolder, TokenizerFolder.ConfigFile);
        bool named = File.Exists(configPath) && JsonNode.Parse(File.ReadAllText(configPath)) is JsonObject config
            && config["tokenizer_class"] is JsonValue name && name.TryGetValue<string>(out var text) && text.Length > 0;
        return named ? [] : [$"{TokenizerFolder.ConfigFile} names no tokenizer_class: ONNX Runtime GenAI's tokenizer then adds <s> and </s> when asked for special tokens, not what tokenizer.json's post-processor says"];
    }

    static string OnnxWeightsText(SafetensorsDType dtype, ShipOptions options) =>
        dtype.ToString().ToLowerInvariant() + (options.Int4BlockSize is int blockSize
            ? $", decoder-layer projections int4 (MatMulNBits, blocks of {blockSize}, {(options.Int4Symmetric ? "symmetric" : "asymmetric")} round to nearest)" : "");

    /// <summary>Parses a dtype as the command line spells it: f32, f16 or bf16.</summary>
    public static SafetensorsDType ParseDtype(string text) => text switch
    {
        "f32" => SafetensorsDType.F32,
        "f16" => SafetensorsDType.F16,
        "bf16" => SafetensorsDType.BF16,
        _ => throw new ArgumentException($"--dtype {text}: expected f32, f16 or bf16 (bf16 for --format safetensors only)"),
    };

    static SafetensorsDType OnnxDtype(SafetensorsDType? requested, ArtifactManifest manifest) => requested switch
    {
        SafetensorsDType.F32 or SafetensorsDType.F16 => requested.Value,
        null => manifest.Dtype == "f16" ? SafetensorsDType.F16 : SafetensorsDType.F32,
        _ => throw new ArgumentException($"--dtype {requested.Value.ToString().ToLowerInvariant()} is for --format safetensors only; the ONNX model ships as f32 or f16"),
    };

    /// <summary>The checkpoint's own dtype: <c>torch_dtype</c> when it names one, else the dtype every parameter is
    /// stored in, else f32.</summary>
    static SafetensorsDType SourceDtype(DecoderConfig config, SafetensorsCheckpoint weights, IReadOnlyList<ParameterSpec> specs)
    {
        switch (config.TorchDtype)
        {
            case "float32" or "float": return SafetensorsDType.F32;
            case "float16" or "half": return SafetensorsDType.F16;
            case "bfloat16": return SafetensorsDType.BF16;
        }
        var stored = specs.Select(s => weights.Entry(s.Name).DType).Distinct().ToList();
        return stored.Count == 1 ? stored[0] : SafetensorsDType.F32;
    }

    static string TorchDtypeName(SafetensorsDType dtype) => dtype switch
    {
        SafetensorsDType.F32 => "float32",
        SafetensorsDType.F16 => "float16",
        SafetensorsDType.BF16 => "bfloat16",
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, null),
    };

    /// <summary>The artifact's config.json as it is, with <c>torch_dtype</c> (and transformers 5's <c>dtype</c>, where
    /// present) stating the dtype of the shipped safetensors.</summary>
    static void WriteConfig(string source, string destination, SafetensorsDType? safetensorsDtype)
    {
        if (safetensorsDtype is not SafetensorsDType dtype)
        {
            File.Copy(source, destination);
            return;
        }
        var json = JsonNode.Parse(File.ReadAllText(source))!.AsObject();
        json["torch_dtype"] = TorchDtypeName(dtype);
        if (json.ContainsKey("dtype")) json["dtype"] = TorchDtypeName(dtype);
        File.WriteAllText(destination, json.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }) + "\n");
    }

    /// <summary>What transformers derives from the model configuration when a snapshot has no generation_config.json.</summary>
    static void WriteGenerationConfig(GenerationIds ids, string path)
    {
        var json = new JsonObject { ["_from_model_config"] = true };
        if (ids.Bos is int bos) json["bos_token_id"] = bos;
        if (ids.Eos.Count == 1) json["eos_token_id"] = ids.Eos[0];
        else if (ids.Eos.Count > 1) json["eos_token_id"] = new JsonArray(ids.Eos.Select(id => (JsonNode)id).ToArray());
        if (ids.Pad is int pad) json["pad_token_id"] = pad;
        File.WriteAllText(path, json.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }) + "\n");
    }

    /// <summary>The name the base checkpoint gave itself (<c>_name_or_path</c>), else "unknown": the name of the folder it
    /// was exported from (often "hf" or "snapshot") would read as a model's name.</summary>
    static string BaseModelName(string configPath)
    {
        var json = JsonNode.Parse(File.ReadAllText(configPath)) as JsonObject;
        return json?["_name_or_path"] is JsonValue name && name.TryGetValue<string>(out var text) && text.Length > 0 ? text : ModelCardFacts.Unknown;
    }

    /// <summary>Writes every parameter's bytes in <paramref name="dtype"/> (with int4, each projection's MatMulNBits parts
    /// instead), each tensor starting at a multiple of <see cref="DataAlignment"/>; returns where each tensor lies.</summary>
    static Dictionary<string, (long Offset, long Length)> WriteOnnxData(SafetensorsCheckpoint weights, IReadOnlyList<ParameterSpec> specs,
        SafetensorsDType dtype, string path, ShipOptions options)
    {
        var layout = new Dictionary<string, (long, long)>(StringComparer.Ordinal);
        int chunkElements = options.ChunkElements;
        var values = new float[chunkElements];
        var bytes = new byte[chunkElements * dtype.ByteSize()];
        using var file = AtomicFile.Create(path);
        var stream = file.Stream;
        void Begin(string name, long length)
        {
            stream.Write(new byte[(DataAlignment - stream.Position % DataAlignment) % DataAlignment]);
            layout[name] = (stream.Position, length);
        }
        void WriteFloats(ReadOnlySpan<float> chunk)
        {
            var stored = bytes.AsSpan(0, chunk.Length * dtype.ByteSize());
            ElementConversion.FromSingle(chunk, dtype, stored);
            stream.Write(stored);
        }
        foreach (var spec in specs)
        {
            if (spec.Projection && options.Int4BlockSize is int blockSize)
            {
                WriteInt4(weights, spec, blockSize, options.Int4Symmetric, dtype, values, Begin, stream, WriteFloats);
                continue;
            }
            Begin(spec.Name, spec.ElementCount * dtype.ByteSize());
            for (long first = 0; first < spec.ElementCount; first += chunkElements)
            {
                int n = (int)Math.Min(chunkElements, spec.ElementCount - first);
                ReadChecked(weights, spec.Name, first, values.AsSpan(0, n), dtype);
                WriteFloats(values.AsSpan(0, n));
            }
        }
        file.Commit();
        return layout;
    }

    /// <summary>A projection's packed codes, streamed a chunk of whole rows at a time, then its scales and zero points
    /// (a 64th of the weight's size or less, kept in memory).</summary>
    static void WriteInt4(SafetensorsCheckpoint weights, ParameterSpec spec, int blockSize, bool symmetric, SafetensorsDType dtype, float[] buffer,
        Action<string, long> begin, Stream stream, SpanAction writeFloats)
    {
        var (packed, scales, zeroPoints) = Quantization.MatMulNBitsWeights.Specs(spec, blockSize, DataType.Float);
        int n = (int)spec.Shape[0], k = (int)spec.Shape[1];
        int blocks = (int)packed.Shape[1], blob = (int)packed.Shape[2], zeroBlob = (int)(zeroPoints.ElementCount / n);
        int rowsPerChunk = Math.Max(1, buffer.Length / k);
        var rowValues = rowsPerChunk * k <= buffer.Length ? buffer : new float[k];
        var scaleValues = new float[n * blocks];
        var zeroValues = new byte[zeroPoints.ElementCount];
        var packedBytes = new byte[rowsPerChunk * blocks * blob];
        begin(packed.Name, packed.ElementCount);
        for (int row = 0; row < n; row += rowsPerChunk)
        {
            int rows = Math.Min(rowsPerChunk, n - row);
            var chunk = rowValues.AsSpan(0, rows * k);
            // The dequantised weights are what the model computes with: each must stay finite in the shipped dtype.
            ReadChecked(weights, spec.Name, (long)row * k, chunk, dtype);
            var chunkPacked = packedBytes.AsSpan(0, rows * blocks * blob);
            Quantization.MatMulNBitsWeights.Pack(chunk, k, blockSize, symmetric, chunkPacked,
                scaleValues.AsSpan(row * blocks, rows * blocks), zeroValues.AsSpan(row * zeroBlob, rows * zeroBlob));
            stream.Write(chunkPacked);
        }
        begin(scales.Name, scales.ElementCount * dtype.ByteSize());
        for (int first = 0; first < scaleValues.Length; first += buffer.Length)
            writeFloats(scaleValues.AsSpan(first, Math.Min(buffer.Length, scaleValues.Length - first)));
        begin(zeroPoints.Name, zeroPoints.ElementCount);
        stream.Write(zeroValues);
    }

    delegate void SpanAction(ReadOnlySpan<float> values);

    /// <summary>Reads elements [first, first + values.Length) of a weight as float32 and checks that each is finite and
    /// stays finite in <paramref name="target"/>: a diverged training run must not ship.</summary>
    static void ReadChecked(SafetensorsCheckpoint weights, string name, long first, Span<float> values, SafetensorsDType target)
    {
        weights.ReadSlice(name, first, values);
        // The smallest magnitudes that round to infinity: half-way between the largest finite value and the next power.
        float limit = target switch
        {
            SafetensorsDType.F16 => 65520f,
            SafetensorsDType.BF16 => BitConverter.UInt32BitsToSingle(0x7F7F8000),
            _ => float.PositiveInfinity,
        };
        for (int i = 0; i < values.Length; i++)
        {
            float v = values[i];
            if (!float.IsFinite(v))
                throw new ModelFormatException($"tensor '{name}' in '{weights.FileOf(name).Path}' holds {v} at element {first + i}; trained weights must be finite");
            if (Math.Abs(v) >= limit)
                throw new ModelFormatException($"tensor '{name}' in '{weights.FileOf(name).Path}' holds {v} at element {first + i}, beyond the range of {target}; ship it as f32");
        }
    }
}
