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
