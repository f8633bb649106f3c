using AlignThenUnlearn.Models;
using AlignThenUnlearn.Models.Checkpoints;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Tests.Support;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Tests.Models;

/// <summary>`atu export`: a random bf16 checkpoint becomes an artifact folder whose inference graph (reading its
/// weights from weights.safetensors as ONNX external data) and forward graph agree with the reference decoder;
/// broken checkpoints are refused and leave nothing behind.</summary>
public sealed class ArtifactExportTests : IDisposable
{
    readonly TempFolder _temp = new();
    public void Dispose() => _temp.Dispose();

    static DecoderConfig Config => DecoderBuilderTests.Named("phi3") with { MaxPositionEmbeddings = 32 };

    string Snapshot(string name = "hf", long maxShardBytes = 4L << 30)
    {
        var folder = _temp.File(name);
        RandomCheckpoint.Write(Config, folder, seed: 5, SafetensorsDType.BF16, std: 0.2, maxShardBytes: maxShardBytes);
        return folder;
    }

    /// <summary>Nothing but the named entries remains in the temp folder (no staging folders, no partial output).</summary>
    void AssertOnly(params string[] names) =>
        Assert.Equal(names.Order(), Directory.GetFileSystemEntries(_temp.Path).Select(Path.GetFileName).Order());

    [Fact]
    public void Exported_graphs_reproduce_the_reference_decoder_on_the_converted_weights()
    {
        var hf = Snapshot(maxShardBytes: 4_000);   // several shards with an index
        Assert.True(File.Exists(Path.Combine(hf, SafetensorsCheckpoint.IndexFileName)));
        var manifest = ArtifactExporter.Export(hf, _temp.File("art"), new ExportOptions { Layer = 2 });
        Assert.Equal("phi3", manifest.Family);
        Assert.Equal(2, manifest.Layer);
        Assert.Equal(32, manifest.MaxSequenceLength);

        var model = ArtifactModel.Open(_temp.File("art"));
        // bf16 -> f32 is exact, so the artifact's weights are the snapshot's values.
        using var snapshot = SafetensorsCheckpoint.Open(hf);
        var weights = model.ReadWeights(DecoderBuilder.Parameters(Config));
        foreach (var (name, tensor) in weights) Assert.Equal(snapshot.ReadSingles(name), tensor.Floats);

        long[] ids = [3, 14, 15, 9, 2, 6, 5];
        var (_, expected) = new ReferenceDecoder(Config, weights.ToDictionary(kv => kv.Key, kv => new ParameterArray(kv.Value.Data, kv.Value.Shape))).Forward(ids);
        var forward = model.Forward(GradCheck.Cpu, [ids]);
        using var session = GradCheck.Cpu.Open(model.PathOf(ArtifactExporter.InferenceGraphFile));
        var feeds = new Dictionary<string, HostTensor>
        {
            ["input_ids"] = HostTensor.Of(ids, 1, ids.Length),
            ["attention_mask"] = HostTensor.Of(Enumerable.Repeat(1L, ids.Length).ToArray(), 1, ids.Length),
            ["position_ids"] = HostTensor.Of(Enumerable.Range(0, ids.Length).Select(i => (long)i).ToArray(), 1, ids.Length),
        };
        for (int i = 0; i < Config.NumHiddenLayers; i++)
            foreach (var kv in new[] { "key", "value" })
                feeds[$"past_key_values.{i}.{kv}"] = HostTensor.Of(Array.Empty<float>(), 1, Config.NumKeyValueHeads, 0, Config.HeadDimension);
        var inference = ExecutionDevice.Run(session, feeds, ["logits"]);
        int V = Config.VocabSize;
        for (int s = 0; s < ids.Length; s++)
            for (int j = 0; j < V; j++)
            {
                Assert.True(Math.Abs(expected[s][j] - forward["logits"].Floats[s * V + j]) < 1e-4, $"forward.onnx logits[{s},{j}]");
                Assert.True(Math.Abs(expected[s][j] - inference["logits"].Floats[s * V + j]) < 1e-4, $"model.onnx logits[{s},{j}]");
            }
        model.Manifest.Verify(model.Folder, hashes: true);
    }

    [Fact]
    public void Float16_export_converts_weights_and_records_the_dtype()
    {
        var manifest = ArtifactExporter.Export(Snapshot(), _temp.File("art16"), new ExportOptions { ElementType = DataType.Float16 });
        Assert.Equal("f16", manifest.Dtype);
        using var weights = SafetensorsFile.Open(_temp.File("art16/weights.safetensors"));
        Assert.All(weights.Entries, e => Assert.Equal(SafetensorsDType.F16, e.DType));
    }

    [Fact]
    public void Missing_shard_is_refused_naming_it_and_nothing_is_written()
    {
        var hf = Snapshot(maxShardBytes: 4_000);
        var shard = Directory.GetFiles(hf, "model-*.safetensors").Order().Last();
        File.Delete(shard);
        var e = Assert.ThrowsAny<Exception>(() => ArtifactExporter.Export(hf, _temp.File("art"), new ExportOptions()));
        Assert.Contains(Path.GetFileName(shard), e.Message);
        AssertOnly("hf");
    }

    [Fact]
    public void Truncated_checkpoint_is_refused_and_nothing_is_written()
    {
        var hf = Snapshot();
        var file = Path.Combine(hf, "model.safetensors");
        var bytes = File.ReadAllBytes(file);
        File.WriteAllBytes(file, bytes[..(bytes.Length / 2)]);
        var e = Assert.ThrowsAny<Exception>(() => ArtifactExporter.Export(hf, _temp.File("art"), new ExportOptions()));
        Assert.Contains("model.safetensors", e.Message);
        AssertOnly("hf");
    }

    [Fact]
    public void Corrupted_header_is_refused_and_nothing_is_written()
    {
        var hf = Snapshot();
        var file = Path.Combine(hf, "model.safetensors");
        var bytes = File.ReadAllBytes(file);
        bytes[8] = (byte)'#';   // the header's opening brace: no longer JSON
        File.WriteAllBytes(file, bytes);
        var e = Assert.ThrowsAny<Exception>(() => ArtifactExporter.Export(hf, _temp.File("art"), new ExportOptions()));
        Assert.Contains("model.safetensors", e.Message);
        AssertOnly("hf");
    }

    [Fact]
    public void Mislabelled_tensor_shape_is_refused_naming_the_tensor()
    {
        // A checkpoint of another configuration (wider MLP) under this config.json: shapes disagree.
        var hf = _temp.File("hf");
        RandomCheckpoint.Write(Config with { IntermediateSize = Config.IntermediateSize + 4 }, hf, seed: 1);
        HfConfig.Save(Config, Path.Combine(hf, HfConfig.FileName));
        var e = Assert.Throws<ModelFormatException>(() => ArtifactExporter.Export(hf, _temp.File("art"), new ExportOptions()));
        Assert.Contains("model.layers.0.mlp.gate_up_proj.weight", e.Message);
        AssertOnly("hf");
    }

    [Fact]
    public void Missing_tensor_is_refused_naming_it()
    {
        var hf = _temp.File("hf");
        var config = Config;
        var sources = DecoderBuilder.Parameters(config).Where(p => p.Name != "model.norm.weight")
            .Select(p => SyntheticTensors.Tensor(p.Name, SafetensorsDType.F32, p.Shape, 1, 0.1f)).ToList();
        SafetensorsWriter.WriteSharded(hf, sources, 1L << 30);
        HfConfig.Save(config, Path.Combine(hf, HfConfig.FileName));
        var e = Assert.Throws<ModelFormatException>(() => ArtifactExporter.Export(hf, _temp.File("art"), new ExportOptions()));
        Assert.Contains("model.norm.weight", e.Message);
        AssertOnly("hf");
    }

    [Fact]
    public void Existing_output_is_kept_without_force()
    {
        var hf = Snapshot();
        Directory.CreateDirectory(_temp.File("art"));
        File.WriteAllText(_temp.File("art/keep.txt"), "mine");
        Assert.Throws<IOException>(() => ArtifactExporter.Export(hf, _temp.File("art"), new ExportOptions()));
        Assert.Equal("mine", File.ReadAllText(_temp.File("art/keep.txt")));
        ArtifactExporter.Export(hf, _temp.File("art"), new ExportOptions { Force = true });
        Assert.False(File.Exists(_temp.File("art/keep.txt")));
        AssertOnly("hf", "art");
    }
}
