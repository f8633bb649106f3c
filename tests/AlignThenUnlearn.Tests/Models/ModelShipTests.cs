using AlignThenUnlearn.Cli;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Models.Checkpoints;
using AlignThenUnlearn.Models.Quantization;
using AlignThenUnlearn.Onnx;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Tests.Support;
using Xunit.Abstractions;
using GenAi = Microsoft.ML.OnnxRuntimeGenAI;

namespace AlignThenUnlearn.Tests.Models;

/// <summary>`atu ship`: the shipped ONNX model runs in ONNX Runtime GenAI and decodes greedily as the project's inference
/// graph does on the trained weights; shipped safetensors hold the trained weights bit for bit under their original
/// names; invalid weights and existing folders are refused, leaving nothing behind.</summary>
[Collection(ConsoleCollection.Name)]
public sealed class ModelShipTests(ITestOutputHelper output) : IDisposable
{
    readonly TempFolder _temp = new();
    public void Dispose() => _temp.Dispose();

    const int MaxLength = 64;

    /// <summary>An f32 artifact folder of random weights for a repository configuration (context <see cref="MaxLength"/>).</summary>
    (string Folder, DecoderConfig Config) Artifact(string configFile, string? torchDtype = null, string name = "art", string? tokenizerFolder = null)
    {
        var config = HfConfig.Load(RepositoryFiles.Path("models", configFile));
        if (torchDtype is not null) config = config with { TorchDtype = torchDtype };
        var hf = _temp.File($"{name}-snapshot");
        RandomCheckpoint.Write(config, hf, seed: 11, SafetensorsDType.BF16, std: 0.2);
        if (tokenizerFolder is not null)
            foreach (var file in Directory.GetFiles(tokenizerFolder)) File.Copy(file, Path.Combine(hf, Path.GetFileName(file)));
        ArtifactExporter.Export(hf, _temp.File(name), new ExportOptions { MaxSequenceLength = MaxLength });
        Directory.Delete(hf, recursive: true);
        return (_temp.File(name), config);
    }

    /// <summary>"Trained" weights: the artifact's weights plus uniform noise of ±0.1, stored as <paramref name="dtype"/>
    /// (optionally with extra tensors and a changed tensor), written as a single file or shards.</summary>
    string Trained(string artifact, SafetensorsDType dtype, string name = "trained.safetensors", long? maxShardBytes = null,
        IEnumerable<TensorSource>? extra = null, Func<string, bool>? keep = null)
    {
        using var source = SafetensorsFile.Open(Path.Combine(artifact, ArtifactExporter.WeightsFile));
        var sources = source.Entries.Where(e => keep?.Invoke(e.Name) ?? true).Select(e => TensorSource.FromGenerator(e.Name, dtype, e.Shape, (first, values) =>
        {
            source.ReadSlice(e.Name, first, values);
            var seed = SyntheticTensors.SeedOf(99, e.Name);
            for (int i = 0; i < values.Length; i++) values[i] += SyntheticTensors.Value(seed, first + i, 0.1f);
        })).Concat(extra ?? []).ToList();
        var path = _temp.File(name);
        if (maxShardBytes is long shard) SafetensorsWriter.WriteSharded(path, sources, shard);
        else SafetensorsWriter.Write(path, sources);
        return path;
    }

    /// <summary>Nothing but the named entries remains in the temp folder (no output, no staging folders).</summary>
    void AssertOnly(params string[] names) =>
        Assert.Equal(names.Order(), Directory.GetFileSystemEntries(_temp.Path).Select(Path.GetFileName).Order());

    static Dictionary<string, float[]> ReadAll(string weights, IEnumerable<ParameterSpec> specs)
    {
        using var checkpoint = SafetensorsCheckpoint.Open(weights);
        return specs.ToDictionary(s => s.Name, s => checkpoint.ReadSingles(s.Name));
    }

    // ---- ONNX: GenAI against the project's inference graph ----

    static readonly int[][] Prompts = [[1, 17, 300, 42], [1, 5], [1, 250, 251, 252, 253, 254, 100, 3, 77]];
    const int NewTokens = 12;

    /// <summary>The project's own generator (GreedyGenerator: batched, KV cache) over the artifact with the given weights;
    /// sequences as GenAI reports them: prompt, continuation, and the end token when one stopped the row.</summary>
    static List<List<int>> GreedyProject(string artifact, string? weights, DecoderConfig config)
    {
        using var generator = GreedyGenerator.Open(ArtifactModel.Open(artifact), GradCheck.Cpu, weights);
        var continuations = generator.Generate(Prompts, NewTokens, config.EosTokenIds);
        return Prompts.Select((p, i) => p.Concat(continuations[i].Tokens).Concat(continuations[i].Stopped ? [config.EosTokenIds.Single()] : []).ToList()).ToList();
    }

    static List<List<int>> GreedyGenAi(string folder)
    {
        using var model = new GenAi.Model(folder);
        var sequences = new List<List<int>>();
        foreach (var prompt in Prompts)
        {
            using var parameters = new GenAi.GeneratorParams(model);
            parameters.SetSearchOption("max_length", prompt.Length + NewTokens);
            using var generator = new GenAi.Generator(model, parameters);
            generator.AppendTokens(prompt);
            while (!generator.IsDone()) generator.GenerateNextToken();
            sequences.Add(generator.GetSequence(0).ToArray().ToList());
        }
        return sequences;
    }

    [Theory]
    [InlineData("tiny-llama-gqa.json")]
    [InlineData("tiny-phi3.json")]
    [InlineData("tiny-qwen2.json")]
    public void Genai_decodes_the_shipped_onnx_model_as_the_projects_greedy_loop_does_on_the_trained_weights(string configFile)
    {
        var (artifact, config) = Artifact(configFile);
        var trained = Trained(artifact, SafetensorsDType.F32);
        var result = ModelShipper.Ship(artifact, trained, _temp.File("shipped"), new ShipOptions { Format = ShipFormat.Onnx });
        Assert.Equal(SafetensorsDType.F32, result.OnnxDtype);
        Assert.Null(result.SafetensorsDtype);
        Assert.Contains(result.Warnings, w => w.Contains("tokenizer.json"));   // random weights come without a tokenizer

        var expected = GreedyProject(artifact, trained, config);
        var actual = GreedyGenAi(_temp.File("shipped"));
        for (int p = 0; p < Prompts.Length; p++)
            Assert.True(expected[p].SequenceEqual(actual[p]), $"prompt {p}: project [{string.Join(",", expected[p])}], GenAI [{string.Join(",", actual[p])}]");
        // The comparison can tell the weights apart: the artifact's untrained weights decode differently.
        var untrained = GreedyProject(artifact, null, config);
        Assert.Contains(Enumerable.Range(0, Prompts.Length), p => !untrained[p].SequenceEqual(expected[p]));
    }

    [Fact]
    public void Onnx_external_data_holds_the_trained_weights_in_the_shipped_dtype()
    {
        var (artifact, config) = Artifact("tiny-llama-gqa.json");
        var trained = Trained(artifact, SafetensorsDType.F32);
        ModelShipper.Ship(artifact, trained, _temp.File("shipped"), new ShipOptions { Format = ShipFormat.Onnx, Dtype = SafetensorsDType.F16 });
        var model = ModelFile.Load(_temp.File("shipped/model.onnx"));
        using var weights = SafetensorsFile.Open(trained);
        foreach (var spec in DecoderBuilder.Parameters(config))
        {
            var initializer = model.Graph.Initializer.Single(t => t.Name == spec.Name);
            Assert.Equal((int)global::Onnx.TensorProto.Types.DataType.Float16, initializer.DataType);
            // System.Half's conversion rounds to nearest even, as the shipper must.
            var expected = weights.ReadSingles(spec.Name).SelectMany(v => BitConverter.GetBytes(BitConverter.HalfToUInt16Bits((Half)v))).ToArray();
            Assert.Equal(expected, initializer.RawData.ToByteArray());
        }
        // GenAI's configuration states what the graph was built with.
        var genai = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(_temp.File("shipped/genai_config.json")))!;
        Assert.Equal("llama", (string)genai["model"]!["type"]!);
        Assert.Equal(MaxLength, (int)genai["model"]!["context_length"]!);
        Assert.Equal(config.HeadDimension, (int)genai["model"]!["decoder"]!["head_size"]!);
        Assert.Equal(config.NumKeyValueHeads, (int)genai["model"]!["decoder"]!["num_key_value_heads"]!);
        Assert.False((bool)genai["search"]!["do_sample"]!);
        // f16 runs on GenAI's CPU provider too.
        Assert.All(GreedyGenAi(_temp.File("shipped")), (s, p) => Assert.Equal(Prompts[p].Length + NewTokens, s.Count));
    }

    [Fact]
    public void Genai_reads_the_shipped_tokenizer_json_and_encodes_as_the_project_does()
    {
        using var tokenizerFiles = TokenizerTests.Llama3Folder();
        // As Llama-3's snapshot states it: GenAI's tokenizer (onnxruntime-extensions) takes the BOS rule from
        // tokenizer.json's post-processor only for a named tokenizer class; without one it applies a fairseq default.
        tokenizerFiles.Write("tokenizer_config.json", """{"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}""");
        var (artifact, _) = Artifact("tiny-llama-gqa.json", tokenizerFolder: tokenizerFiles.Path);
        var result = ModelShipper.Ship(artifact, Trained(artifact, SafetensorsDType.F32), _temp.File("shipped"), new ShipOptions { Format = ShipFormat.Onnx });
        Assert.Empty(result.Warnings);
        Assert.True(File.Exists(_temp.File("shipped/tokenizer.json")));
        var ours = LlmTokenizer.Load(_temp.File("shipped"));
        using var model = new GenAi.Model(_temp.File("shipped"));
        using var tokenizer = new GenAi.Tokenizer(model);
        // GenAI encodes without special tokens unless told (its prompts carry them through chat templates).
        // Hand-derived in TokenizerTests: "Hello" 262, "Ġworld" 264; <|begin_of_text|> 300.
        using (var hello = tokenizer.Encode("Hello world")) Assert.Equal([262, 264], hello[0].ToArray());
        string[] texts = ["Hello world", "é and 日本 😀", "  spaces\n\nlines "];
        foreach (var text in texts)
        {
            using var sequences = tokenizer.Encode(text);
            Assert.Equal(ours.EncodeToIds(text, addSpecialTokens: false), sequences[0].ToArray());
        }
        tokenizer.UpdateOptions(new Dictionary<string, string> { ["add_special_tokens"] = "true" });
        using (var hello = tokenizer.Encode("Hello world")) Assert.Equal([300, 262, 264], hello[0].ToArray());
        foreach (var text in texts)
        {
            using var sequences = tokenizer.Encode(text);
            Assert.Equal(ours.EncodeToIds(text), sequences[0].ToArray());
        }
    }

    // ---- ONNX int4 (MatMulNBits) ----

    /// <summary>The project's own int4 evaluation: the trained weights with every projection quantised to int4 in blocks
    /// of 32 (asymmetric round to nearest, as the shipper packs them) and dequantised back to f32.</summary>
    string Int4Dequantized(string trained, DecoderConfig config, string name = "int4-dequantized.safetensors")
    {
        var path = _temp.File(name);
        using var checkpoint = SafetensorsCheckpoint.Open(trained);
        WeightQuantization.WriteQuantized(checkpoint, DecoderBuilder.Parameters(config), path, global::Onnx.TensorProto.Types.DataType.Float,
            QuantizationScheme.Rtn(4, 32, symmetric: false));
        return path;
    }

    /// <summary>Logits [seq, vocab] of one prompt through a shipped folder's model.onnx (a plain ONNX Runtime session, empty cache).</summary>
    static float[] ShippedLogits(string folder, DecoderConfig config, long[] ids)
    {
        using var session = GradCheck.Cpu.Open(Path.Combine(folder, ModelShipper.OnnxModelFile));
        var feeds = new Dictionary<string, HostTensor>
        {
            [DecoderGraph.InputIds] = HostTensor.Of(ids, 1, ids.Length),
            [InferenceLowering.AttentionMask] = HostTensor.Of(ids.Select(_ => 1L).ToArray(), 1, ids.Length),
            [InferenceLowering.PositionIds] = HostTensor.Of(Enumerable.Range(0, ids.Length).Select(i => (long)i).ToArray(), 1, ids.Length),
        };
        for (int i = 0; i < config.NumHiddenLayers; i++)
        {
            var empty = HostTensor.Of(Array.Empty<float>(), 1, config.NumKeyValueHeads, 0, config.HeadDimension);
            feeds[InferenceLowering.PastKey(i)] = empty;
            feeds[InferenceLowering.PastValue(i)] = empty;
        }
        return ExecutionDevice.Run(session, feeds, [DecoderGraph.LogitsName])[DecoderGraph.LogitsName].Floats;
    }

    static double MaxAbsDifference(float[] a, float[] b) => a.Zip(b, (x, y) => Math.Abs((double)x - y)).Max();

    [Theory]
    [InlineData("tiny-llama-gqa.json", 7)]   // q, k, v, o, gate, up, down
    [InlineData("tiny-phi3.json", 4)]        // qkv, o, gate_up, down
    [InlineData("tiny-qwen2.json", 7)]
    public void Genai_decodes_the_int4_model_as_the_projects_own_int4_evaluation_does(string configFile, int projectionsPerLayer)
    {
        var (artifact, config) = Artifact(configFile);
        var trained = Trained(artifact, SafetensorsDType.F32);
        var shipped = _temp.File("int4");
        // Chunks of 100 values: one row of 64 at a time; scales written in several chunks.
        var result = ModelShipper.Ship(artifact, trained, shipped, new ShipOptions { Format = ShipFormat.Onnx, Int4BlockSize = 32, ChunkElements = 100 });
        Assert.Equal(SafetensorsDType.F32, result.OnnxDtype);

        // Every projection is a com.microsoft MatMulNBits (4 bits, blocks of 32) and ships only packed; embeddings and
        // lm_head stay f32.
        var model = ModelFile.Load(Path.Combine(shipped, ModelShipper.OnnxModelFile), loadExternalData: false);
        var nbits = model.Graph.Node.Where(n => n.OpType == "MatMulNBits").ToList();
        Assert.Equal(projectionsPerLayer * config.NumHiddenLayers, nbits.Count);
        Assert.All(nbits, n =>
        {
            Assert.Equal("com.microsoft", n.Domain);
            Assert.Equal(4, n.Attribute.Single(a => a.Name == "bits").I);
            Assert.Equal(32, n.Attribute.Single(a => a.Name == "block_size").I);
            Assert.Equal(4, n.Input.Count);   // A, B, scales, zero_points
        });
        var projections = DecoderBuilder.Parameters(config).Where(p => p.Projection).Select(p => p.Name).ToHashSet();
        Assert.Equal(nbits.Count, projections.Count);
        Assert.DoesNotContain(model.Graph.Initializer, t => projections.Contains(t.Name));
        Assert.Contains(model.Graph.Initializer, t => t.Name == "model.embed_tokens.weight" && t.DataType == (int)global::Onnx.TensorProto.Types.DataType.Float);
        Assert.Contains("int4 (MatMulNBits, blocks of 32", File.ReadAllText(Path.Combine(shipped, ModelCard.FileName)));

        var expected = GreedyProject(artifact, Int4Dequantized(trained, config), config);
        var actual = GreedyGenAi(shipped);
        for (int p = 0; p < Prompts.Length; p++)
            Assert.True(expected[p].SequenceEqual(actual[p]), $"prompt {p}: project int4 [{string.Join(",", expected[p])}], GenAI [{string.Join(",", actual[p])}]");
    }

    [Fact]
    public void Int4_logits_match_the_dequantised_weights_closely_and_the_f32_model_within_the_measured_bound()
    {
        var (artifact, config) = Artifact("tiny-llama-gqa.json");
        var trained = Trained(artifact, SafetensorsDType.F32);
        var dequantized = Int4Dequantized(trained, config);
        ModelShipper.Ship(artifact, trained, _temp.File("f32"), new ShipOptions { Format = ShipFormat.Onnx });
        // Chunks of 50 values, shorter than a row of 64: the shipper reads a row at a time.
        ModelShipper.Ship(artifact, trained, _temp.File("int4"), new ShipOptions { Format = ShipFormat.Onnx, Int4BlockSize = 32, ChunkElements = 50 });
        ModelShipper.Ship(artifact, dequantized, _temp.File("deq"), new ShipOptions { Format = ShipFormat.Onnx });
        long[] ids = [1, 250, 251, 252, 253, 254, 100, 3, 77, 17, 300, 42];
        var f32 = ShippedLogits(_temp.File("f32"), config, ids);
        var int4 = ShippedLogits(_temp.File("int4"), config, ids);
        var deq = ShippedLogits(_temp.File("deq"), config, ids);
        double kernel = MaxAbsDifference(int4, deq), quantization = MaxAbsDifference(int4, f32);
        double spread = Math.Sqrt(f32.Select(v => (double)v * v).Average());
        output.WriteLine($"max |int4 - dequantised f32| = {kernel:G3}; max |int4 - f32| = {quantization:G3}; rms of the f32 logits {spread:G3}");
        // MatMulNBits (accuracy_level 0) computes with the dequantised weights in f32, as the project's int4 evaluation
        // does (measured: bit-identical on ONNX Runtime 1.31's CPU provider).
        Assert.True(kernel < 1e-4, $"int4 vs dequantised: {kernel}");
        // The quantisation itself moves the logits (these random weights, uniform noise on std 0.2, are far from the
        // bell-shaped weights of a trained model, so 4 bits cost them much): measured max 4.36 against a logits rms of 1.63.
        // README states the figure.
        Assert.True(quantization > 0.1, $"int4 vs f32: {quantization}: the quantisation left the logits as they were");
        Assert.True(quantization < 6, $"int4 vs f32: {quantization} (logits rms {spread}), above the measured bound");
    }

    [Fact]
    public void Int4_f16_model_carries_f16_scales_and_runs_in_genai()
    {
        var (artifact, _) = Artifact("tiny-llama-gqa.json");
        var shipped = _temp.File("int4-f16");
        ModelShipper.Ship(artifact, Trained(artifact, SafetensorsDType.F32), shipped,
            new ShipOptions { Format = ShipFormat.Onnx, Dtype = SafetensorsDType.F16, Int4BlockSize = 32, Int4Symmetric = true });
        var model = ModelFile.Load(Path.Combine(shipped, ModelShipper.OnnxModelFile), loadExternalData: false);
        var scales = model.Graph.Initializer.Where(t => t.Name.EndsWith("_scales", StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(scales);
        Assert.All(scales, t => Assert.Equal((int)global::Onnx.TensorProto.Types.DataType.Float16, t.DataType));
        Assert.All(GreedyGenAi(shipped), (s, p) => Assert.Equal(Prompts[p].Length + NewTokens, s.Count));
    }

    [Fact]
    public void Ship_verb_refuses_quantize_options_it_cannot_honour()
    {
        var (artifact, _) = Artifact("tiny-llama-gqa.json");
        var trained = Trained(artifact, SafetensorsDType.F32);
        var shipped = _temp.File("shipped");
        Assert.Contains("expected int4", Assert.Throws<ArgumentException>(() =>
            ShipCommand.Run(new ShipOptionsCli { Artifacts = artifact, Weights = trained, Out = shipped, Quantize = "int8" })).Message);
        Assert.Contains("add --format onnx", Assert.Throws<ArgumentException>(() =>
            ShipCommand.Run(new ShipOptionsCli { Artifacts = artifact, Weights = trained, Out = shipped, Quantize = "int4", Format = "safetensors" })).Message);
        Assert.Contains("power of two", Assert.Throws<ArgumentException>(() =>
            ShipCommand.Run(new ShipOptionsCli { Artifacts = artifact, Weights = trained, Out = shipped, Quantize = "int4", BlockSize = 24 })).Message);
        Assert.False(Directory.Exists(shipped));
    }

    // ---- safetensors ----

    [Theory]
    [InlineData(SafetensorsDType.BF16, "bfloat16", null, SafetensorsDType.BF16)]   // the configuration's torch_dtype
    [InlineData(SafetensorsDType.F32, "float32", null, SafetensorsDType.F32)]
    [InlineData(SafetensorsDType.F32, "bfloat16", SafetensorsDType.F16, SafetensorsDType.F16)]   // --dtype wins
    [InlineData(SafetensorsDType.F16, "float32", SafetensorsDType.BF16, SafetensorsDType.BF16)]
    public void Shipped_safetensors_read_back_bit_identical_under_every_original_name(SafetensorsDType stored, string torchDtype,
        SafetensorsDType? requested, SafetensorsDType shipped)
    {
        var (artifact, config) = Artifact("tiny-llama-gqa.json", torchDtype);
        var extra = TensorSource.FromArray("embedding_head.weight", [2, 2], new float[] { 1, 2, 3, 4 });
        var trained = Trained(artifact, stored, "trained", maxShardBytes: 100_000, extra: [extra]);
        var result = ModelShipper.Ship(artifact, trained, _temp.File("shipped"),
            new ShipOptions { Format = ShipFormat.Safetensors, Dtype = requested, MaxShardBytes = 150_000 });
        Assert.Equal(shipped, result.SafetensorsDtype);
        Assert.Equal(["embedding_head.weight"], result.IgnoredTensors);

        var shippedFolder = _temp.File("shipped");
        Assert.True(File.Exists(Path.Combine(shippedFolder, SafetensorsCheckpoint.IndexFileName)));
        Assert.True(Directory.GetFiles(shippedFolder, "model-*-of-*.safetensors").Length > 1);
        using var readBack = SafetensorsCheckpoint.Open(shippedFolder);
        using var source = SafetensorsCheckpoint.Open(trained);
        var specs = DecoderBuilder.Parameters(config);
        Assert.Equal(specs.Select(s => s.Name).Order(StringComparer.Ordinal), readBack.Names.Order(StringComparer.Ordinal));
        foreach (var spec in specs)
        {
            var entry = readBack.Entry(spec.Name);
            Assert.Equal(shipped, entry.DType);
            Assert.Equal(spec.Shape, entry.Shape);
            Assert.Equal("pt", readBack.FileOf(spec.Name).Metadata["format"]);
            var actual = new byte[entry.ByteLength];
            readBack.ReadBytes(spec.Name, actual);
            Assert.True(ExpectedBytes(source, spec.Name, stored, shipped).SequenceEqual(actual), $"{spec.Name} differs from the trained weights in {shipped}");
        }
        var shippedConfig = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(shippedFolder, HfConfig.FileName)))!;
        Assert.Equal(shipped switch { SafetensorsDType.BF16 => "bfloat16", SafetensorsDType.F16 => "float16", _ => "float32" }, (string)shippedConfig["torch_dtype"]!);
        Assert.Equal(HfConfig.ToJson(config with { TorchDtype = null }), HfConfig.ToJson(HfConfig.Load(shippedFolder) with { TorchDtype = null }));
        Assert.True(File.Exists(Path.Combine(shippedFolder, "generation_config.json")));
        Assert.False(File.Exists(Path.Combine(shippedFolder, ModelShipper.OnnxModelFile)));
    }

    /// <summary>The trained tensor's bytes in <paramref name="shipped"/>: as stored when the dtype is kept, otherwise
    /// converted here with round-to-nearest-even (System.Half; bf16 by rounding the float32 bits by hand).</summary>
    static byte[] ExpectedBytes(SafetensorsCheckpoint source, string name, SafetensorsDType stored, SafetensorsDType shipped)
    {
        var entry = source.Entry(name);
        if (stored == shipped)
        {
            var raw = new byte[entry.ByteLength];
            source.ReadBytes(name, raw);
            return raw;
        }
        var values = source.ReadSingles(name);
        return shipped switch
        {
            SafetensorsDType.F32 => values.SelectMany(BitConverter.GetBytes).ToArray(),
            SafetensorsDType.F16 => values.SelectMany(v => BitConverter.GetBytes(BitConverter.HalfToUInt16Bits((Half)v))).ToArray(),
            SafetensorsDType.BF16 => values.SelectMany(v =>
            {
                uint bits = BitConverter.SingleToUInt32Bits(v);
                uint lower = bits & 0xFFFF, upper = bits >> 16;
                if (lower > 0x8000 || (lower == 0x8000 && (upper & 1) == 1)) upper++;
                return BitConverter.GetBytes((ushort)upper);
            }).ToArray(),
            _ => throw new ArgumentOutOfRangeException(nameof(shipped)),
        };
    }

    // ---- refusals ----

    public static TheoryData<string> BrokenWeights => ["truncated", "missing tensor", "wrong shape", "missing shard", "NaN in the last tensor", "f16 overflow"];

    [Theory]
    [MemberData(nameof(BrokenWeights))]
    public void Invalid_weights_fail_naming_the_problem_and_leave_no_output(string broken)
    {
        var (artifact, config) = Artifact("tiny-llama-gqa.json");
        var specs = DecoderBuilder.Parameters(config);
        string weights, expectedInMessage;
        var options = new ShipOptions();
        switch (broken)
        {
            case "truncated":
                // As a training run killed while writing would leave it.
                weights = Trained(artifact, SafetensorsDType.F32);
                var bytes = File.ReadAllBytes(weights);
                File.WriteAllBytes(weights, bytes[..(bytes.Length * 2 / 3)]);
                expectedInMessage = "truncated";
                break;
            case "missing tensor":
                weights = Trained(artifact, SafetensorsDType.F32, keep: n => n != "model.layers.1.mlp.down_proj.weight");
                expectedInMessage = "model.layers.1.mlp.down_proj.weight";
                break;
            case "wrong shape":
                var wrong = specs.Single(s => s.Name == "model.layers.0.self_attn.k_proj.weight");
                weights = Trained(artifact, SafetensorsDType.F32, keep: n => n != wrong.Name,
                    extra: [TensorSource.FromValues(wrong.Name, SafetensorsDType.F32, [wrong.Shape[0] + 1, wrong.Shape[1]], new float[(wrong.Shape[0] + 1) * wrong.Shape[1]])]);
                expectedInMessage = wrong.Name;
                break;
            case "missing shard":
                weights = Trained(artifact, SafetensorsDType.F32, "trained", maxShardBytes: 100_000);
                var shard = Directory.GetFiles(weights, "model-*.safetensors").Order().Last();
                File.Delete(shard);
                expectedInMessage = Path.GetFileName(shard);
                break;
            case "NaN in the last tensor":
                // Found only after the other files are written: the staged folder must still vanish.
                var last = specs[^1];
                weights = Trained(artifact, SafetensorsDType.F32, keep: n => n != last.Name,
                    extra: [TensorSource.FromGenerator(last.Name, SafetensorsDType.F32, last.Shape, (first, values) =>
                    {
                        values.Fill(0.5f);
                        if (first + values.Length == last.ElementCount) values[^1] = float.NaN;
                    })]);
                expectedInMessage = last.Name;
                break;
            case "f16 overflow":
                var norm = specs.First(s => s.Name.EndsWith("norm.weight", StringComparison.Ordinal));
                weights = Trained(artifact, SafetensorsDType.F32, keep: n => n != norm.Name,
                    extra: [TensorSource.FromValues(norm.Name, SafetensorsDType.F32, norm.Shape, Enumerable.Repeat(70000f, (int)norm.ElementCount).ToArray())]);
                options = options with { Dtype = SafetensorsDType.F16 };
                expectedInMessage = "F16";
                break;
            default:
                throw new ArgumentException(broken);
        }
        var error = Assert.ThrowsAny<Exception>(() => ModelShipper.Ship(artifact, weights, _temp.File("shipped"), options));
        Assert.Contains(expectedInMessage, error.Message);
        AssertOnly("art", Path.GetFileName(weights));
    }

    [Fact]
    public void Existing_output_is_refused_without_force_and_replaced_with_it()
    {
        var (artifact, _) = Artifact("tiny-llama-gqa.json");
        var trained = Trained(artifact, SafetensorsDType.F32);
        Directory.CreateDirectory(_temp.File("shipped"));
        File.WriteAllText(_temp.File("shipped/keep.txt"), "mine");
        var error = Assert.Throws<IOException>(() => ModelShipper.Ship(artifact, trained, _temp.File("shipped"), new ShipOptions()));
        Assert.Contains("--force", error.Message);
        Assert.Equal("mine", File.ReadAllText(_temp.File("shipped/keep.txt")));
        AssertOnly("art", "trained.safetensors", "shipped");

        ModelShipper.Ship(artifact, trained, _temp.File("shipped"), new ShipOptions { Force = true });
        Assert.False(File.Exists(_temp.File("shipped/keep.txt")));
        Assert.True(File.Exists(_temp.File("shipped/model.onnx")));
        Assert.True(File.Exists(_temp.File("shipped/model.safetensors")));
        AssertOnly("art", "trained.safetensors", "shipped");
    }

    // ---- the verb ----

    [Fact]
    public void Ship_verb_writes_both_formats_and_a_model_card_with_target_hyperparameters_and_results()
    {
        var (artifact, _) = Artifact("tiny-llama-gqa.json");
        var trained = Trained(artifact, SafetensorsDType.F32);
        var card = _temp.File("card.json");
        File.WriteAllText(card, """
            {"base_model": "tiny/llama-gqa", "target": "overridden by --target",
             "hyperparameters": {"learning_rate": 1e-5, "tau": 0.3, "optimizer": "adamw"},
             "results": {"forget": {"fb": 0.125, "qa": 0.25}, "mmlu": 0.5}}
            """);
        var shipped = _temp.File("shipped");
        Assert.Equal(0, ShipCommand.Run(new ShipOptionsCli { Artifacts = artifact, Weights = trained, Out = shipped, Target = "Stephen King", CardJson = card }));
        foreach (var file in new[] { "model.onnx", "model.onnx.data", "genai_config.json", "model.safetensors", "config.json", "generation_config.json" })
            Assert.True(File.Exists(Path.Combine(shipped, file)), file);

        var readme = File.ReadAllText(Path.Combine(shipped, "README.md"));
        Assert.StartsWith("---\nbase_model: \"tiny/llama-gqa\"\n", readme);
        Assert.Contains("| target | Stephen King |", readme);
        Assert.DoesNotContain("overridden", readme);
        Assert.Contains("| method | unknown |", readme);   // neither --card-json nor a run folder says which method (issue 29)
        Assert.Contains("| learning_rate | 1e-5 |", readme);
        Assert.Contains("| optimizer | adamw |", readme);
        Assert.Contains("| forget.fb | 0.125 |", readme);
        Assert.Contains("| forget.qa | 0.25 |", readme);
        Assert.Contains("| mmlu | 0.5 |", readme);
        var onnxHash = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(Path.Combine(shipped, "model.onnx"))));
        Assert.Contains($"| `model.onnx` | {new FileInfo(Path.Combine(shipped, "model.onnx")).Length} | `{onnxHash}` |", readme);

        // Without facts the card says so rather than inventing any.
        Assert.Equal(0, ShipCommand.Run(new ShipOptionsCli { Artifacts = artifact, Weights = trained, Out = _temp.File("bare"), Format = "safetensors" }));
        var bare = File.ReadAllText(_temp.File("bare/README.md"));
        Assert.Contains("No evaluation results were given", bare);
        Assert.Contains("No hyperparameters were given", bare);
        Assert.False(File.Exists(_temp.File("bare/model.onnx")));
    }

    [Fact]
    public void Ship_verb_refuses_bad_options_before_writing_anything()
    {
        var (artifact, _) = Artifact("tiny-llama-gqa.json");
        var trained = Trained(artifact, SafetensorsDType.F32);
        var shipped = _temp.File("shipped");
        Assert.Contains("--format", Assert.Throws<ArgumentException>(() =>
            ShipCommand.Run(new ShipOptionsCli { Artifacts = artifact, Weights = trained, Out = shipped, Format = "gguf" })).Message);
        Assert.Contains("safetensors only", Assert.Throws<ArgumentException>(() =>
            ShipCommand.Run(new ShipOptionsCli { Artifacts = artifact, Weights = trained, Out = shipped, Dtype = "bf16" })).Message);
        Assert.Contains("--dtype", Assert.Throws<ArgumentException>(() =>
            ShipCommand.Run(new ShipOptionsCli { Artifacts = artifact, Weights = trained, Out = shipped, Dtype = "int8" })).Message);
        var card = _temp.File("card.json");
        File.WriteAllText(card, """{"hyperparameter": {"lr": 1}}""");
        Assert.Contains("'hyperparameter'", Assert.Throws<InvalidDataException>(() =>
            ShipCommand.Run(new ShipOptionsCli { Artifacts = artifact, Weights = trained, Out = shipped, CardJson = card })).Message);
        Assert.Contains("nothing.safetensors' do not exist", Assert.Throws<FileNotFoundException>(() =>
            ShipCommand.Run(new ShipOptionsCli { Artifacts = artifact, Weights = _temp.File("nothing.safetensors"), Out = shipped })).Message);
        AssertOnly("art", "trained.safetensors", "card.json");
    }
}
