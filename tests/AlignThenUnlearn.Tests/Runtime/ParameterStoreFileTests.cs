using AlignThenUnlearn.Models;
using AlignThenUnlearn.Models.Checkpoints;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Tests.Support;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Tests.Runtime;

/// <summary>Parameters to and from safetensors: exact round trips, conversion from bf16 bytes written by hand, and
/// clear refusals (naming file and tensor) that leave the store as it was.</summary>
public sealed class ParameterStoreFileTests : IDisposable
{
    readonly TempFolder _temp = new();
    public void Dispose() => _temp.Dispose();

    static ParameterSpec Spec(string name, params long[] shape) => new(name, shape, DataType.Float);

    [Fact]
    public void Saved_parameters_load_back_bit_for_bit_and_the_file_appears_alone()
    {
        var device = TestDevice.Current;
        var random = new Random(2);
        float[] w = Enumerable.Range(0, 6).Select(_ => (float)random.NextDouble() - 0.5f).ToArray(), b = [float.Epsilon, -0f, 1e30f];
        using (var store = new ParameterStore(device))
        {
            store.Add("w", w, [2, 3], trainable: true);
            store.Add("b", b, [3], trainable: false);
            store.Save(_temp.File("p.safetensors"));
        }
        Assert.Equal(["p.safetensors"], _temp.FileNames());   // no temporary file left beside it

        using var loaded = new ParameterStore(device);
        loaded.Load(_temp.File("p.safetensors"), [Spec("b", 3), Spec("w", 2, 3)], trainable: n => n == "w");
        Assert.Equal(w, loaded.Read("w"));
        Assert.Equal(b.Select(BitConverter.SingleToInt32Bits), loaded.Read("b").Select(BitConverter.SingleToInt32Bits));
        Assert.Equal(["w"], loaded.Trainable);
    }

    [Fact]
    public void Bf16_tensors_are_converted_to_float32()
    {
        // bf16 is the top half of a float32: 0x3F80 = 1, 0xC000 = -2, 0x3E20 = 0.15625 (little-endian bytes).
        SafetensorsWriter.Write(_temp.File("bf16.safetensors"), [TensorSource.FromBytes("v", SafetensorsDType.BF16, [3], new byte[] { 0x80, 0x3F, 0x00, 0xC0, 0x20, 0x3E })]);
        using var store = new ParameterStore(TestDevice.Current);
        store.Load(_temp.File("bf16.safetensors"), [Spec("v", 3)], trainable: _ => true);
        Assert.Equal([1f, -2f, 0.15625f], store.Read("v"));
    }

    [Fact]
    public void A_missing_tensor_names_file_and_tensor_and_adds_nothing()
    {
        var path = _temp.File("one.safetensors");
        SafetensorsWriter.Write(path, [TensorSource.FromArray("a", [2], new[] { 1f, 2f })]);
        using var store = new ParameterStore(TestDevice.Current);
        var e = Assert.Throws<ModelFormatException>(() => store.Load(path, [Spec("a", 2), Spec("missing", 4)], trainable: _ => true));
        Assert.Contains(path, e.Message);
        Assert.Contains("'missing'", e.Message);
        Assert.Empty(store.Names);
    }

    [Fact]
    public void A_wrong_shape_names_the_tensor_and_both_shapes()
    {
        var path = _temp.File("one.safetensors");
        SafetensorsWriter.Write(path, [TensorSource.FromArray("a", [2, 3], new float[6])]);
        using var store = new ParameterStore(TestDevice.Current);
        var e = Assert.Throws<ModelFormatException>(() => store.Load(path, [Spec("a", 3, 2)], trainable: _ => true));
        Assert.Contains("'a'", e.Message);
        Assert.Contains("[2, 3]", e.Message);
        Assert.Contains("[3, 2]", e.Message);
        Assert.Empty(store.Names);
    }

    [Fact]
    public void Overwrite_replaces_every_value_or_none()
    {
        var device = TestDevice.Current;
        using var store = new ParameterStore(device);
        store.Add("a", [1f, 2f], [2], trainable: true);
        store.Add("b", [3f], [1], trainable: true);
        SafetensorsWriter.Write(_temp.File("partial.safetensors"), [TensorSource.FromArray("a", [2], new[] { 5f, 6f })]);
        Assert.Throws<ModelFormatException>(() => store.Overwrite(_temp.File("partial.safetensors")));
        Assert.Equal([1f, 2f], store.Read("a"));   // checked before anything was read

        SafetensorsWriter.Write(_temp.File("full.safetensors"), [TensorSource.FromArray("b", [1], new[] { 7f }), TensorSource.FromArray("a", [2], new[] { 5f, 6f })]);
        store.Overwrite(_temp.File("full.safetensors"));
        Assert.Equal([5f, 6f], store.Read("a"));
        Assert.Equal([7f], store.Read("b"));
    }
}
