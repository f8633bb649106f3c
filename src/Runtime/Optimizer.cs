using AlignThenUnlearn.Models;
using AlignThenUnlearn.Models.Checkpoints;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using O = AlignThenUnlearn.Runtime.OptimizerGraphs;

namespace AlignThenUnlearn.Runtime;

/// <summary>Runs the optimizer graph (<see cref="OptimizerGraphs"/>) for the store's trainable parameters where
/// they live. Every parameter and state tensor has a spare buffer of its shape: a step reads the current
/// buffers, writes the spares, and then swaps them, so no value is read while it is written.</summary>
public sealed class Optimizer : IDisposable
{
    readonly ExecutionDevice _device;
    readonly ParameterStore _store;
    readonly InferenceSession _session;
    readonly Dictionary<string, DeviceTensor> _spareParameters = [];
    /// <summary>State input name (e.g. <c>w.exp_avg</c>) to its current buffer and the one the next step writes.</summary>
    readonly Dictionary<string, (DeviceTensor Current, DeviceTensor Next)> _state = [];

    public OptimizerSettings Settings { get; private set; }
    /// <summary>The parameters it updates: the store's trainable ones when it was created.</summary>
    public IReadOnlyList<string> Parameters { get; }
    /// <summary>Updates applied so far (AdamW's bias correction uses the next one's number).</summary>
    public long StepsTaken { get; private set; }

    /// <param name="parameters">The parameters it updates; default: the store's trainable ones now.</param>
    public Optimizer(ParameterStore store, OptimizerSettings settings, IEnumerable<string>? parameters = null)
    {
        (_device, _store, Settings) = (store.Device, store, settings);
        Parameters = parameters?.ToList() ?? store.Trainable;
        foreach (var p in Parameters) _ = store[p];   // names a parameter the store lacks
        if (Parameters.Count == 0) throw new ArgumentException("the parameter store has no trainable parameters to optimize");
        var specs = Parameters.Select(n => new OptimizerParameter(n, store[n].Shape)).ToList();
        var model = settings switch
        {
            AdamWSettings => O.AdamW(specs),
            SgdSettings sgd => O.Sgd(specs, sgd.Momentum != 0),
            _ => throw new NotSupportedException($"optimizer {settings.Kind}"),
        };
        try
        {
            foreach (var p in Parameters)
            {
                _spareParameters[p] = store.AllocateLike(p);
                foreach (var s in settings.StateOf(p))
                {
                    _state[s] = (store.AllocateLike(p), store.AllocateLike(p));
                }
            }
            Reset();
            _session = _device.Open(model);
        }
        catch { DisposeBuffers(); throw; }
    }

    /// <summary>Starts afresh: state tensors zero (as torch creates moments and momentum buffers) and no steps taken, so
    /// the next AdamW step has bias correction 1 again. Align-then-Unlearn's reference restarts the head's Adam this way
    /// at every realignment stage.</summary>
    public void Reset()
    {
        foreach (var (current, _) in _state.Values) _device.Fill<float>(current, values => values.Clear());
        StepsTaken = 0;
    }

    /// <summary>Starts afresh with <paramref name="settings"/> (as a new optimizer of the same parameters would) when they
    /// run the same graph as the current ones (the same kind; for SGD, momentum on or off alike), keeping the session and
    /// buffers: opening a session costs more than many small steps. False, and nothing changed, when they do not.</summary>
    public bool TryRestart(OptimizerSettings settings)
    {
        if (settings.GetType() != Settings.GetType() || settings.StateOf("p").Count != Settings.StateOf("p").Count) return false;
        Settings = settings;
        Reset();
        return true;
    }

    /// <summary>The current state tensors, named as the graph names them (<c>w.exp_avg</c>, ...).</summary>
    public IReadOnlyList<(string Name, DeviceTensor Tensor)> State => _state.Select(kv => (kv.Key, kv.Value.Current)).ToList();

    /// <summary>One update with <paramref name="gradients"/> (parameter name to its gradient on the device) multiplied by
    /// <paramref name="gradScale"/>, clipped, at <paramref name="learningRate"/>. Returns the norm of the scaled gradients
    /// before clipping. When that norm is not finite nothing is swapped in: parameters, state and <see cref="StepsTaken"/>
    /// keep their values, and the caller decides how to stop.</summary>
    public double Step(IReadOnlyDictionary<string, DeviceTensor> gradients, double learningRate, double gradScale = 1)
    {
        using var binding = _session.CreateIoBinding();
        var scalars = new List<OrtValue>();
        try
        {
            void Scalar(string name, double value)
            {
                var v = OrtValue.CreateTensorValueFromMemory(new[] { value }, []);
                scalars.Add(v);
                binding.BindInput(name, v);
            }
            Scalar(O.LearningRate, learningRate);
            Scalar(O.WeightDecay, Settings.WeightDecay);
            Scalar(O.MaxGradNorm, Settings.MaxGradNorm);
            Scalar(O.GradScale, gradScale);
            switch (Settings)
            {
                case AdamWSettings a:
                    Scalar(O.Beta1, a.Beta1); Scalar(O.Beta2, a.Beta2); Scalar(O.Epsilon, a.Epsilon); Scalar(O.Step, StepsTaken + 1);
                    break;
                case SgdSettings { Momentum: not 0 } s:
                    Scalar(O.Momentum, s.Momentum);
                    break;
            }
            foreach (var p in Parameters)
            {
                if (!gradients.TryGetValue(p, out var grad)) throw new ArgumentException($"no gradient for trainable parameter '{p}'");
                binding.BindInput(p, _store[p].Value);
                binding.BindInput(O.Grad(p), grad.Value);
                binding.BindOutput(O.Next(p), _spareParameters[p].Value);
            }
            foreach (var (name, (current, next)) in _state)
            {
                binding.BindInput(name, current.Value);
                binding.BindOutput(O.Next(name), next.Value);
            }
            binding.BindOutputToDevice(O.GradNorm, ExecutionDevice.HostOutputs);
            using var run = new RunOptions();
            _session.RunWithBinding(run, binding);
            binding.SynchronizeBoundOutputs();
            double norm;
            using (var outputs = binding.GetOutputValues())
                norm = HostValues.ToDoubles(outputs[Array.IndexOf(binding.GetOutputNames(), O.GradNorm)])[0];
            if (!double.IsFinite(norm)) return norm;

            foreach (var p in Parameters) _spareParameters[p] = _store.Swap(p, _spareParameters[p]);
            foreach (var name in _state.Keys.ToList()) _state[name] = (_state[name].Next, _state[name].Current);
            StepsTaken++;
            return norm;
        }
        finally { foreach (var v in scalars) v.Dispose(); }
    }

    /// <summary>Writes the state tensors to a safetensors file; its metadata records the optimizer and the steps taken.</summary>
    public void SaveState(string path) =>
        DeviceTensorFiles.Write(_device, path, State, new Dictionary<string, string> { [KindKey] = Settings.Kind, [StepsKey] = StepsTaken.ToString() });

    /// <summary>Restores state tensors and steps taken from <see cref="SaveState"/>'s file, after checking that it holds
    /// this optimizer's kind and every state tensor with its shape.</summary>
    public void LoadState(string path)
    {
        using var checkpoint = SafetensorsCheckpoint.Open(path);
        var metadata = checkpoint.Files[0].Metadata;
        var kind = metadata.GetValueOrDefault(KindKey);
        if (kind != Settings.Kind)
            throw new ModelFormatException($"'{path}' holds the state of optimizer '{kind ?? "(none)"}'; this run uses {Settings.Kind}");
        if (!long.TryParse(metadata.GetValueOrDefault(StepsKey), out var steps) || steps < 0)
            throw new ModelFormatException($"'{path}' does not record the optimizer's steps ('{StepsKey}' metadata)");
        var extra = checkpoint.Names.Where(n => !_state.ContainsKey(n)).ToList();
        if (extra.Count > 0) throw new ModelFormatException($"'{path}' holds optimizer state '{extra[0]}' for a parameter this optimizer does not update");
        foreach (var (name, (current, _)) in _state) checkpoint.RequireWeight(name, current.Shape);
        foreach (var (name, (current, _)) in _state) DeviceTensorFiles.Read(_device, checkpoint, name, current);
        StepsTaken = steps;
    }

    const string KindKey = "optimizer", StepsKey = "steps";

    void DisposeBuffers()
    {
        foreach (var t in _spareParameters.Values) t.Dispose();
        foreach (var (current, next) in _state.Values) { current.Dispose(); next.Dispose(); }
        _spareParameters.Clear();
        _state.Clear();
    }

    public void Dispose()
    {
        _session.Dispose();
        DisposeBuffers();
    }
}
