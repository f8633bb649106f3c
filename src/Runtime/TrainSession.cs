using AlignThenUnlearn.Autodiff;
using Microsoft.ML.OnnxRuntime;

namespace AlignThenUnlearn.Runtime;

/// <summary>Runs one joint forward+loss+backward graph: binds the store's parameters and a batch,
/// returns the loss and metrics to the host and leaves the gradients on the device. With
/// <c>accumulate</c> true the gradients are added to those of the previous micro-batches (the graph
/// gets an Add per gradient, so no extra pass over memory is needed).</summary>
public sealed class TrainSession : IDisposable
{
    readonly ExecutionDevice _device;
    readonly ParameterStore _store;
    readonly InferenceSession _first;
    readonly InferenceSession? _accumulating;
    readonly Dictionary<string, DeviceTensor> _grads = [];
    readonly Dictionary<string, DeviceTensor> _spare = [];
    readonly string[] _hostOutputs;
    readonly string[] _firstInputs;
    readonly string[] _accumulatingInputs = [];
    readonly HashSet<string> _defaulted;   // inputs with an initializer: left unbound, they keep its value
    readonly global::Onnx.ModelProto _model;

    public const string AccumulatedSuffix = ".accumulated";

    /// <summary>Parameter name to its gradient on the device, valid after <see cref="Run"/>.</summary>
    public IReadOnlyDictionary<string, DeviceTensor> Gradients => _grads;
    public string Loss { get; }

    public TrainSession(ExecutionDevice device, GradientGraph graph, ParameterStore store, string loss, IEnumerable<string>? metrics = null, bool allowAccumulation = false)
    {
        (_device, _store, Loss) = (device, store, loss);
        _hostOutputs = [loss, .. metrics ?? []];
        _firstInputs = graph.Model.Graph.Input.Select(i => i.Name).ToArray();
        _defaulted = graph.Model.Graph.Initializer.Select(t => t.Name).ToHashSet();
        _model = graph.Model;
        foreach (var p in graph.Gradients.Keys)
        {
            _grads[p] = store.AllocateLike(p);
            if (allowAccumulation) _spare[p] = store.AllocateLike(p);
        }
        _first = device.Open(graph.Model);
        if (allowAccumulation)
        {
            var accumulating = TrainGraphs.WithAccumulation(graph);
            _accumulatingInputs = accumulating.Graph.Input.Select(i => i.Name).ToArray();
            _accumulating = device.Open(accumulating);
        }
    }

    public sealed record Result(double Loss, IReadOnlyDictionary<string, double[]> Metrics);

    /// <param name="onDevice">Inputs already in the device's memory (bound as they are, not copied).</param>
    public Result Run(IReadOnlyDictionary<string, HostTensor> batch, bool accumulate = false, IReadOnlyDictionary<string, DeviceTensor>? onDevice = null)
    {
        if (accumulate && _accumulating is null) throw new InvalidOperationException("this train session was created without gradient accumulation");
        var session = accumulate ? _accumulating! : _first;
        using var binding = session.CreateIoBinding();
        var inputs = new List<OrtValue>();
        try
        {
            foreach (var name in accumulate ? _accumulatingInputs : _firstInputs)
            {
                if (_store.Contains(name)) binding.BindInput(name, _store[name].Value);
                else if (onDevice is not null && onDevice.TryGetValue(name, out var tensor)) binding.BindInput(name, tensor.Value);
                else if (batch.TryGetValue(name, out var value)) { var v = HostValues.ToOrtValue(value); inputs.Add(v); binding.BindInput(name, v); }
                else if (accumulate && name.EndsWith(AccumulatedSuffix)) binding.BindInput(name, _grads[GradientOwner(name)].Value);
                else if (_defaulted.Contains(name)) continue;
                else throw new ArgumentException($"the training graph needs input '{name}', which is neither a parameter nor in the batch");
            }
            foreach (var (p, _) in _grads)
                binding.BindOutput(global::AlignThenUnlearn.Autodiff.Gradients.GradientName(p), (accumulate ? _spare[p] : _grads[p]).Value);
            var cpu = new OrtMemoryInfo(OrtMemoryInfo.allocatorCPU, OrtAllocatorType.DeviceAllocator, 0, OrtMemType.Default);
            foreach (var o in _hostOutputs) binding.BindOutputToDevice(o, cpu);
            using var run = new RunOptions();
            session.RunWithBinding(run, binding);
            binding.SynchronizeBoundOutputs();
            if (accumulate) foreach (var p in _grads.Keys.ToList()) (_grads[p], _spare[p]) = (_spare[p], _grads[p]);

            using var values = binding.GetOutputValues();
            var names = binding.GetOutputNames();
            var host = new Dictionary<string, double[]>();
            for (int i = 0; i < names.Length; i++)
                if (_hostOutputs.Contains(names[i])) host[names[i]] = HostValues.ToDoubles(values[i]);
            var loss = host[Loss];
            if (loss.Length != 1) throw new InvalidOperationException($"loss '{Loss}' has {loss.Length} elements, expected a scalar");
            return new Result(loss[0], host.Where(kv => kv.Key != Loss).ToDictionary());
        }
        finally { foreach (var v in inputs) v.Dispose(); }
    }

    /// <summary>Runs <paramref name="batch"/> as micro-batches of at most <paramref name="rowsPerPiece"/> rows (0: whole),
    /// their gradients added up on the device (<see cref="MicroBatching"/>: each piece divides by the whole batch's counts,
    /// so the sum is the whole batch's gradient, loss and metrics). With <paramref name="pairedHalves"/> the batch holds
    /// every example's first sequence, then every second one, and a piece takes the same examples from both halves.
    /// The session must allow accumulation when there is more than one piece.</summary>
    /// <param name="onDevice">Inputs already on the device for a piece's rows of the batch (disposed after the piece).</param>
    public Result Run(IReadOnlyDictionary<string, HostTensor> batch, int rowsPerPiece, bool pairedHalves, bool accumulate = false,
        Func<int[], (IReadOnlyDictionary<string, DeviceTensor> Tensors, IDisposable Owner)>? onDevice = null)
    {
        var batched = MicroBatching.BatchedInputs(_model);
        var rowCounts = batched.Where(batch.ContainsKey).Select(n => batch[n].Shape[0]).Distinct().ToList();
        if (rowCounts.Count != 1) throw new ArgumentException($"the batch's tensors {string.Join(", ", batched.Where(batch.ContainsKey))} do not agree on one number of rows");
        int rows = (int)rowCounts[0];
        var pieces = rowsPerPiece == 0 ? [Enumerable.Range(0, rows).ToArray()] : MicroBatching.PieceRows(rows, rowsPerPiece, pairedHalves);
        var totals = pieces.Count > 1 ? MicroBatching.Totals(_model, batch) : [];
        double loss = 0;
        var metrics = new Dictionary<string, double[]>();
        for (int k = 0; k < pieces.Count; k++)
        {
            var piece = pieces.Count == 1 ? batch : MicroBatching.Piece(_model, batch, pieces[k]);
            if (pieces.Count > 1) foreach (var (name, total) in totals) ((Dictionary<string, HostTensor>)piece)[name] = total;
            var device = onDevice?.Invoke(pieces[k]);
            try
            {
                var result = Run(piece, accumulate || k > 0, device?.Tensors);
                loss += result.Loss;
                foreach (var (name, values) in result.Metrics)
                {
                    var sum = metrics.TryGetValue(name, out var s) ? s : metrics[name] = new double[values.Length];
                    for (int i = 0; i < values.Length; i++) sum[i] += values[i];
                }
            }
            finally { device?.Owner.Dispose(); }
        }
        return new Result(loss, metrics);
    }

    static string GradientOwner(string accumulatedInput) =>
        accumulatedInput[..^(AccumulatedSuffix.Length + ".grad".Length)];

    public void Dispose()
    {
        _first.Dispose();
        _accumulating?.Dispose();
        foreach (var t in _grads.Values.Concat(_spare.Values)) t.Dispose();
    }
}
