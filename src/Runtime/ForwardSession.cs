using Microsoft.ML.OnnxRuntime;
using Onnx;

namespace AlignThenUnlearn.Runtime;

/// <summary>Runs a forward-only graph whose parameters are inputs (a training lowering without gradients) on a store's
/// parameters, bound where they live, and a host batch; the requested outputs come back to the host.</summary>
public sealed class ForwardSession : IDisposable
{
    readonly ParameterStore _store;
    readonly InferenceSession _session;
    readonly string[] _inputs;
    readonly HashSet<string> _defaulted;   // inputs with an initializer (MicroBatching's totals): left unbound, they keep its value

    public ForwardSession(ParameterStore store, ModelProto model)
    {
        _store = store;
        _inputs = model.Graph.Input.Select(i => i.Name).ToArray();
        _defaulted = model.Graph.Initializer.Select(t => t.Name).ToHashSet();
        _session = store.Device.Open(model);
    }

    public Dictionary<string, HostTensor> Run(IReadOnlyDictionary<string, HostTensor> batch, IReadOnlyList<string> outputs)
    {
        using var binding = _session.CreateIoBinding();
        var values = new List<OrtValue>();
        try
        {
            foreach (var name in _inputs)
            {
                if (_store.Contains(name)) binding.BindInput(name, _store[name].Value);
                else if (batch.TryGetValue(name, out var tensor)) { values.Add(HostValues.ToOrtValue(tensor)); binding.BindInput(name, values[^1]); }
                else if (!_defaulted.Contains(name)) throw new ArgumentException($"the graph needs input '{name}', which is neither a parameter in the store nor in the batch");
            }
            foreach (var o in outputs) binding.BindOutputToDevice(o, ExecutionDevice.HostOutputs);
            using var run = new RunOptions();
            _session.RunWithBinding(run, binding);
            binding.SynchronizeBoundOutputs();
            using var results = binding.GetOutputValues();
            var names = binding.GetOutputNames();
            return names.Zip(results).ToDictionary(p => p.First, p => HostValues.ToHostTensor(p.Second));
        }
        finally { foreach (var v in values) v.Dispose(); }
    }

    public void Dispose() => _session.Dispose();
}
