using AlignThenUnlearn.Models;
using AlignThenUnlearn.Models.Checkpoints;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace AlignThenUnlearn.Runtime;

/// <summary>Named parameters as device tensors (float32), split into trainable and frozen sets. Graphs
/// take parameters as inputs, so one store feeds every session; an optimizer step swaps in the buffer
/// it wrote (ping-pong) with <see cref="Swap"/>.</summary>
public sealed class ParameterStore(ExecutionDevice device) : IDisposable
{
    readonly Dictionary<string, DeviceTensor> _values = [];
    readonly List<string> _order = [];
    readonly HashSet<string> _trainable = [];

    public ExecutionDevice Device { get; } = device;
    public IReadOnlyList<string> Names => _order;
    public IReadOnlyList<string> Trainable => _order.Where(_trainable.Contains).ToList();
    public bool Contains(string name) => _values.ContainsKey(name);
    public bool IsTrainable(string name) => _trainable.Contains(name);

    public DeviceTensor this[string name] =>
        _values.TryGetValue(name, out var t) ? t : throw new KeyNotFoundException($"parameter '{name}' is not in the store");

    public void Add(string name, ReadOnlySpan<float> data, long[] shape, bool trainable)
    {
        if (_values.ContainsKey(name)) throw new ArgumentException($"parameter '{name}' is already in the store");
        _values[name] = Device.Upload(data, shape);
        _order.Add(name);
        if (trainable) _trainable.Add(name);
    }

    /// <summary>Adds the parameters of <paramref name="specs"/> from a safetensors checkpoint (a file, a sharded
    /// index or a Hugging Face folder), converted to float32. Every tensor is checked (present, same shape,
    /// floating-point) before any is read, so a wrong checkpoint adds nothing; tensors the specs do not name
    /// are ignored (a truncated graph needs only some of a checkpoint).</summary>
    public void Load(string checkpointPath, IEnumerable<ParameterSpec> specs, Func<string, bool> trainable)
    {
        var list = specs.ToList();
        foreach (var spec in list)
        {
            if (_values.ContainsKey(spec.Name)) throw new ArgumentException($"parameter '{spec.Name}' is already in the store");
            if (spec.ElementType != global::Onnx.TensorProto.Types.DataType.Float)
                throw new ArgumentException($"parameter '{spec.Name}' is {spec.ElementType}; the store holds float32 parameters");
        }
        using var checkpoint = SafetensorsCheckpoint.Open(checkpointPath);
        foreach (var spec in list) checkpoint.RequireWeight(spec.Name, spec.Shape);
        foreach (var spec in list)
        {
            var tensor = Device.Allocate(TensorElementType.Float, spec.Shape);
            try { DeviceTensorFiles.Read(Device, checkpoint, spec.Name, tensor); }
            catch { tensor.Dispose(); throw; }
            _values[spec.Name] = tensor;
            _order.Add(spec.Name);
            if (trainable(spec.Name)) _trainable.Add(spec.Name);
        }
    }

    /// <summary>Overwrites every parameter in the store from a safetensors checkpoint, after checking all of them.</summary>
    public void Overwrite(string checkpointPath)
    {
        using var checkpoint = SafetensorsCheckpoint.Open(checkpointPath);
        foreach (var name in _order) checkpoint.RequireWeight(name, this[name].Shape);
        foreach (var name in _order) DeviceTensorFiles.Read(Device, checkpoint, name, this[name]);
    }

    /// <summary>Writes every parameter (float32, store order) to a safetensors file; the file appears only when complete.</summary>
    public void Save(string path, IReadOnlyDictionary<string, string>? metadata = null) =>
        DeviceTensorFiles.Write(Device, path, _order.Select(n => (n, _values[n])).ToList(), metadata);

    public void SetTrainable(IEnumerable<string> names)
    {
        _trainable.Clear();
        foreach (var n in names) _trainable.Add(_values.ContainsKey(n) ? n : throw new KeyNotFoundException($"parameter '{n}' is not in the store"));
    }

    /// <summary>Overwrites a parameter's values (same shape) from the host.</summary>
    public void Set(string name, ReadOnlySpan<float> data) => Device.CopyInto(this[name], data);

    public float[] Read(string name) => Device.Download<float>(this[name]);

    /// <summary>Makes <paramref name="next"/> the parameter's buffer and returns the previous one for reuse.</summary>
    public DeviceTensor Swap(string name, DeviceTensor next)
    {
        var previous = this[name];
        if (!previous.Shape.SequenceEqual(next.Shape)) throw new ArgumentException($"parameter '{name}': swapping in shape [{string.Join(",", next.Shape)}] for [{string.Join(",", previous.Shape)}]");
        _values[name] = next;
        return previous;
    }

    public DeviceTensor AllocateLike(string name) => Device.Allocate(TensorElementType.Float, this[name].Shape);

    public void Dispose()
    {
        foreach (var t in _values.Values) t.Dispose();
        _values.Clear();
    }
}
