using System.Runtime.InteropServices;
using AlignThenUnlearn.Onnx;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Tests.Support;
using Google.Protobuf;
using Onnx;
using DataType = Onnx.TensorProto.Types.DataType;
using DataLocation = Onnx.TensorProto.Types.DataLocation;

namespace AlignThenUnlearn.Tests.Onnx;

/// <summary>ModelFile: save/load round trips, external data (written, read back, run by ONNX Runtime from the
/// file), refusal of external-data references that leave the model's folder or the data file, and corrupt files.</summary>
public class ModelFileTests : IDisposable
{
    readonly TempFolder _folder = new();
    readonly TempFolder _outside = new();

    public void Dispose()
    {
        _folder.Dispose();
        _outside.Dispose();
    }

    static readonly ExecutionDevice Cpu = GradCheck.Cpu;

    static float[] Floats(int count, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
    }

    static byte[] BytesOf(float[] values) => MemoryMarshal.AsBytes(values.AsSpan()).ToArray();

    /// <summary>y = MatMul(Relu(MatMul(x, w1) + bias), w2) with x [batch, 64]: two large weights (8 KiB and 2 KiB),
    /// a small bias and an axes constant, a symbolic input dim and a doc string, so a round trip has something to lose.</summary>
    static (ModelProto Model, float[] W1, float[] W2) TwoLayerModel()
    {
        var w1 = Floats(64 * 32, seed: 1);
        var w2 = Floats(32 * 16, seed: 2);
        var b = new GraphBuilder("two_layer");
        var x = b.Input("x", DataType.Float, "batch", 64);
        var hidden = b.Relu(b.Add(b.MatMul(x, b.Initializer(Tensors.FromFloat("w1", w1, 64, 32))), b.Initializer(Tensors.FromFloat("bias", Floats(32, seed: 3), 32))));
        var y = b.MatMul(hidden, b.Initializer(Tensors.FromFloat("w2", w2, 32, 16)));
        var total = b.ReduceSum(y, [1], keepDims: false);
        b.Output(y, DataType.Float, "batch", 16);
        b.Output(total, DataType.Float, "batch");
        var model = b.ToModel();
        model.DocString = "round-trip fixture";
        return (model, w1, w2);
    }

    static Dictionary<string, HostTensor> Feeds() => new() { ["x"] = HostTensor.Of(Floats(3 * 64, seed: 4), 3, 64) };

    [Fact]
    public void Saved_and_loaded_model_equals_the_original()
    {
        var (model, _, _) = TwoLayerModel();
        var path = _folder.File("model.onnx");
        ModelFile.Save(model, path);
        Assert.Equal(model, ModelFile.Load(path));
        Assert.False(File.Exists(path + ".data"));   // nothing reached the default threshold
    }

    [Fact]
    public void External_data_moves_large_tensors_to_the_sidecar_and_loads_back_identical()
    {
        var (model, w1, w2) = TwoLayerModel();
        var original = model.Clone();
        var path = _folder.File("model.onnx");
        ModelFile.Save(model, path, externalThreshold: 1024);

        Assert.Equal(original, model);   // saving does not change the caller's model
        var modelBytes = File.ReadAllBytes(path);
        Assert.True(modelBytes.Length < BytesOf(w2).Length, $"model file is {modelBytes.Length} bytes, the weights should be elsewhere");
        Assert.Equal(-1, modelBytes.AsSpan().IndexOf(BytesOf(w1).AsSpan(0, 256)));
        Assert.Equal(-1, modelBytes.AsSpan().IndexOf(BytesOf(w2).AsSpan(0, 256)));
        Assert.True(File.Exists(path + ".data"));

        // The references point at the weights' bytes in the sidecar (read here directly, not through ModelFile).
        var references = ModelFile.Load(path, loadExternalData: false);
        var sidecar = File.ReadAllBytes(path + ".data");
        foreach (var (name, values) in new[] { ("w1", w1), ("w2", w2) })
        {
            var tensor = references.Graph.Initializer.Single(t => t.Name == name);
            Assert.Equal(DataLocation.External, tensor.DataLocation);
            var entries = tensor.ExternalData.ToDictionary(e => e.Key, e => e.Value);
            Assert.Equal("model.onnx.data", entries["location"]);
            var offset = int.Parse(entries["offset"]);
            Assert.Equal(0, offset % 64);
            Assert.Equal(BytesOf(values), sidecar.AsSpan(offset, int.Parse(entries["length"])).ToArray());
        }
        Assert.Equal(DataLocation.Default, references.Graph.Initializer.Single(t => t.Name == "bias").DataLocation);

        Assert.Equal(original, ModelFile.Load(path));
    }

    [Fact]
    public void Onnx_runtime_runs_the_saved_external_data_model_like_the_in_memory_one()
    {
        var (model, _, _) = TwoLayerModel();
        var path = _folder.File("model.onnx");
        ModelFile.Save(model, path, externalThreshold: 1024);

        var expected = Cpu.Run(model, Feeds());
        using var session = Cpu.Open(path);
        var actual = ExecutionDevice.Run(session, Feeds());
        Assert.Equal(expected.Keys.Order(), actual.Keys.Order());
        foreach (var (name, tensor) in expected)
        {
            Assert.Equal(tensor.Shape, actual[name].Shape);
            Assert.Equal(tensor.Floats, actual[name].Floats);
        }
    }

    // ---- external-data references that must be refused ----

    const int WeightCount = 4;
    static readonly float[] Weight = [0.5f, -1.25f, 2f, 3.75f];

    /// <summary>y = x + weight, with weight [4] stored externally at the given location, offset and length.</summary>
    static ModelProto ExternalReference(string location, long offset = 0, long? length = WeightCount * sizeof(float))
    {
        var b = new GraphBuilder("external_reference");
        var x = b.Input("x", DataType.Float, WeightCount);
        var weight = new TensorProto { Name = "weight", DataType = (int)DataType.Float, DataLocation = DataLocation.External };
        weight.Dims.Add(WeightCount);
        weight.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = location });
        weight.ExternalData.Add(new StringStringEntryProto { Key = "offset", Value = offset.ToString() });
        if (length is { } l) weight.ExternalData.Add(new StringStringEntryProto { Key = "length", Value = l.ToString() });
        b.Graph.Initializer.Add(weight);
        b.Output(b.Add(x, "weight"), DataType.Float, WeightCount);
        return b.ToModel();
    }

    /// <summary>Writes the model with its references exactly as given (not through ModelFile.Save) and returns its path.</summary>
    string WriteModel(ModelProto model)
    {
        var path = _folder.File("model.onnx");
        File.WriteAllBytes(path, model.ToByteArray());
        return path;
    }

    static void WriteWeight(string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, BytesOf(Weight));
    }

    /// <summary>Load, the check on its own and opening the file for ONNX Runtime all refuse, naming the tensor and the location.</summary>
    static void AssertRefused(string path, string location, params string[] alsoMentioned)
    {
        var messages = new List<string>
        {
            Assert.Throws<OnnxFormatException>(() => ModelFile.Load(path)).Message,
            Assert.Throws<OnnxFormatException>(() => ModelFile.Load(path, loadExternalData: false)).Message,
            Assert.Throws<OnnxFormatException>(() => ModelFile.CheckExternalData(ModelProto.Parser.ParseFrom(File.ReadAllBytes(path)), path)).Message,
            Assert.Throws<OnnxFormatException>(() => Cpu.Open(path).Dispose()).Message,
        };
        foreach (var message in messages)
        {
            Assert.Contains("'weight'", message);
            Assert.Contains($"'{location}'", message);
            foreach (var part in alsoMentioned) Assert.Contains(part, message);
        }
    }

    [Fact]
    public void Absolute_location_is_refused_even_when_the_file_exists()
    {
        var target = _outside.File("weight.bin");
        WriteWeight(target);
        AssertRefused(WriteModel(ExternalReference(target)), target, "absolute");
    }

    [Fact]
    public void Location_with_dot_dot_is_refused_even_when_it_resolves_inside()
    {
        WriteWeight(_folder.File("weight.bin"));
        var location = "sub/../weight.bin";
        Directory.CreateDirectory(_folder.File("sub"));
        AssertRefused(WriteModel(ExternalReference(location)), location, "'..'");
        var escaping = $"../{Path.GetFileName(_outside.Path)}/weight.bin";
        WriteWeight(_outside.File("weight.bin"));
        AssertRefused(WriteModel(ExternalReference(escaping)), escaping, "'..'");
    }

    [Fact]
    public void Link_inside_the_folder_to_a_file_outside_is_refused()
    {
        WriteWeight(_outside.File("weight.bin"));
        File.CreateSymbolicLink(_folder.File("weight.bin"), _outside.File("weight.bin"));
        AssertRefused(WriteModel(ExternalReference("weight.bin")), "weight.bin", "link", _outside.Path);
    }

    [Fact]
    public void Location_through_a_linked_subfolder_pointing_outside_is_refused()
    {
        WriteWeight(_outside.File("weight.bin"));
        Directory.CreateSymbolicLink(_folder.File("weights"), _outside.Path);
        AssertRefused(WriteModel(ExternalReference("weights/weight.bin")), "weights/weight.bin", "link", _outside.Path);
    }

    [Fact]
    public void Link_whose_target_passes_through_another_link_leading_outside_is_refused()
    {
        // inside.bin -> <folder>/escape/weight.bin, and escape -> the outside folder: the target text lies
        // inside the folder, but the file does not.
        WriteWeight(_outside.File("weight.bin"));
        Directory.CreateSymbolicLink(_folder.File("escape"), _outside.Path);
        File.CreateSymbolicLink(_folder.File("inside.bin"), _folder.File("escape/weight.bin"));
        AssertRefused(WriteModel(ExternalReference("inside.bin")), "inside.bin", "link");
    }

    [Fact]
    public void Loop_of_links_is_refused()
    {
        File.CreateSymbolicLink(_folder.File("a.bin"), "b.bin");
        File.CreateSymbolicLink(_folder.File("b.bin"), "a.bin");
        AssertRefused(WriteModel(ExternalReference("a.bin")), "a.bin", "levels of links");
    }

    [Fact]
    public void Links_that_stay_inside_the_folder_are_accepted()
    {
        WriteWeight(_folder.File("real/weight.bin"));
        Directory.CreateSymbolicLink(_folder.File("alias"), "real");
        var path = WriteModel(ExternalReference("alias/weight.bin"));
        Assert.Equal(Weight, Tensors.ToFloat(ModelFile.Load(path).Graph.Initializer[0]));
    }

    [Theory]
    [InlineData(0L, 20L)]                       // runs past the end of the 16-byte file
    [InlineData(16L, 16L)]                      // starts at the end
    [InlineData(64L, 16L)]                      // starts beyond the end
    [InlineData(9223372036854775800L, 16L)]     // offset + length overflows a long
    public void Offset_and_length_beyond_the_data_file_are_refused(long offset, long length)
    {
        WriteWeight(_folder.File("weight.bin"));
        AssertRefused(WriteModel(ExternalReference("weight.bin", offset, length)), "weight.bin", "outside");
    }

    [Fact]
    public void Offset_beyond_the_file_without_a_length_is_refused()
    {
        WriteWeight(_folder.File("weight.bin"));
        AssertRefused(WriteModel(ExternalReference("weight.bin", offset: 64, length: null)), "weight.bin", "outside");
    }

    [Theory]
    [InlineData(12L)]   // 3 floats where the shape [4] needs 4
    [InlineData(15L)]   // not even whole floats
    public void Length_that_disagrees_with_shape_and_type_is_refused(long length)
    {
        WriteWeight(_folder.File("weight.bin"));
        AssertRefused(WriteModel(ExternalReference("weight.bin", 0, length)), "weight.bin", $"{length} bytes", "needs 16");
    }

    [Fact]
    public void Missing_data_file_is_refused()
    {
        AssertRefused(WriteModel(ExternalReference("absent.bin")), "absent.bin", "does not exist");
    }

    [Fact]
    public void Location_in_a_real_subfolder_is_accepted_and_runs()
    {
        // The weight sits at offset 64 in a larger file, after 64 bytes of something else.
        var file = _folder.File("weights/part-0.bin");
        Directory.CreateDirectory(_folder.File("weights"));
        File.WriteAllBytes(file, [.. new byte[64], .. BytesOf(Weight), .. new byte[8]]);
        var path = WriteModel(ExternalReference("weights/part-0.bin", offset: 64));

        Assert.Equal(Weight, Tensors.ToFloat(ModelFile.Load(path).Graph.Initializer[0]));
        using var session = Cpu.Open(path);
        float[] x = [1, 2, 3, 4];
        var y = ExecutionDevice.Run(session, new Dictionary<string, HostTensor> { ["x"] = HostTensor.Of(x, WeightCount) });
        Assert.Equal(x.Zip(Weight, (a, w) => a + w).ToArray(), y.Values.Single().Floats);
    }

    // ---- files that are not models ----

    [Fact]
    public void Truncated_model_file_is_a_format_error_naming_the_path()
    {
        var (model, _, _) = TwoLayerModel();
        var valid = _folder.File("valid.onnx");
        ModelFile.Save(model, valid);
        var bytes = File.ReadAllBytes(valid);
        var truncated = _folder.File("truncated.onnx");
        File.WriteAllBytes(truncated, bytes[..(bytes.Length / 2)]);

        Assert.Contains(truncated, Assert.Throws<OnnxFormatException>(() => ModelFile.Load(truncated)).Message);
        Assert.Contains(truncated, Assert.Throws<OnnxFormatException>(() => Cpu.Open(truncated).Dispose()).Message);
    }

    [Theory]
    [InlineData(1, 1000)]
    [InlineData(2, 4096)]
    [InlineData(3, 17)]
    [InlineData(4, 65536)]
    public void Random_bytes_are_a_format_error_naming_the_path(int seed, int size)
    {
        var bytes = new byte[size];
        new Random(seed).NextBytes(bytes);
        var path = _folder.File($"random-{seed}.onnx");
        File.WriteAllBytes(path, bytes);
        Assert.Contains(path, Assert.Throws<OnnxFormatException>(() => ModelFile.Load(path)).Message);
    }

    [Fact]
    public void Empty_file_is_a_format_error_naming_the_path()
    {
        var path = _folder.File("empty.onnx");
        File.WriteAllBytes(path, []);
        Assert.Contains(path, Assert.Throws<OnnxFormatException>(() => ModelFile.Load(path)).Message);
    }

    [Fact]
    public void Missing_model_file_is_file_not_found()
    {
        var path = _folder.File("absent.onnx");
        Assert.Equal(path, Assert.Throws<FileNotFoundException>(() => ModelFile.Load(path)).FileName);
        Assert.Throws<FileNotFoundException>(() => Cpu.Open(path).Dispose());
    }
}
