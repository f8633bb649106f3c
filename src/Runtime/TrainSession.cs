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
    /// <summary>Each concurrent piece's gradients, and the sessions that add them up (by number of pieces).</summary>
    readonly List<Dictionary<string, DeviceTensor>> _pieceGrads = [];
    readonly Dictionary<int, InferenceSession> _pieceSums = [];

    public const string AccumulatedSuffix = ".accumulated";

    /// <summary>Parameter name to its gradient on the device, valid after <see cref="Run"/>.</summary>
    public IReadOnlyDictionary<string, DeviceTensor> Gradients => _grads;
    public string Loss { get; }

    /// <summary>How many pieces <see cref="RunAtOnce"/> splits a batch into (1: the session runs batches whole or one piece after another).</summary>
    public int ConcurrentPieces { get; }

    /// <param name="concurrentPieces">Pieces of a batch that <see cref="RunAtOnce"/> runs at once, each with gradient buffers of its own.</param>
    public TrainSession(ExecutionDevice device, GradientGraph graph, ParameterStore store, string loss, IEnumerable<string>? metrics = null, bool allowAccumulation = false,
        int concurrentPieces = 1)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(concurrentPieces, 1);
        // ONNX Runtime's Dropout kernel advances one generator per node at every run: runs at once would take its masks in
        // whichever order the threads reach it.
        if (concurrentPieces > 1 && graph.Model.Graph.Node.Any(n => n.OpType == "Dropout"))
            throw new ArgumentException($"the training graph has Dropout nodes, whose random masks would depend on the order in which {concurrentPieces} pieces run at once; run its batches whole or one piece after another");
        (_device, _store, Loss, ConcurrentPieces) = (device, store, loss, concurrentPieces);
        _hostOutputs = [loss, .. metrics ?? []];
        _firstInputs = graph.Model.Graph.Input.Select(i => i.Name).ToArray();
        _defaulted = graph.Model.Graph.Initializer.Select(t => t.Name).ToHashSet();
        _model = graph.Model;
        foreach (var p in graph.Gradients.Keys)
        {
            _grads[p] = store.AllocateLike(p);
            if (allowAccumulation) _spare[p] = store.AllocateLike(p);
        }
        for (int k = 0; k < (concurrentPieces > 1 ? concurrentPieces : 0); k++)
            _pieceGrads.Add(graph.Gradients.Keys.ToDictionary(p => p, store.AllocateLike));
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
        var result = accumulate ? RunGraph(_accumulating!, _accumulatingInputs, batch, _spare, accumulate, onDevice) : RunGraph(_first, _firstInputs, batch, _grads, accumulate, onDevice);
        if (accumulate) foreach (var p in _grads.Keys.ToList()) (_grads[p], _spare[p]) = (_spare[p], _grads[p]);
        return result;
    }

    /// <summary>One run of <paramref name="session"/> that writes its gradients to <paramref name="gradients"/>.</summary>
    Result RunGraph(InferenceSession session, string[] inputNames, IReadOnlyDictionary<string, HostTensor> batch, Dictionary<string, DeviceTensor> gradients,
        bool accumulate, IReadOnlyDictionary<string, DeviceTensor>? onDevice)
    {
        using var binding = session.CreateIoBinding();
        var inputs = new List<OrtValue>();
        try
        {
            foreach (var name in inputNames)
            {
                if (_store.Contains(name)) binding.BindInput(name, _store[name].Value);
                else if (onDevice is not null && onDevice.TryGetValue(name, out var tensor)) binding.BindInput(name, tensor.Value);
                else if (batch.TryGetValue(name, out var value)) { var v = HostValues.ToOrtValue(value); inputs.Add(v); binding.BindInput(name, v); }
                else if (accumulate && name.EndsWith(AccumulatedSuffix)) binding.BindInput(name, _grads[GradientOwner(name)].Value);
                else if (_defaulted.Contains(name)) continue;
                else throw new ArgumentException($"the training graph needs input '{name}', which is neither a parameter nor in the batch");
            }
            foreach (var (p, tensor) in gradients)
                binding.BindOutput(global::AlignThenUnlearn.Autodiff.Gradients.GradientName(p), tensor.Value);
            foreach (var o in _hostOutputs) binding.BindOutputToDevice(o, ExecutionDevice.HostOutputs);
            using var run = new RunOptions();
            session.RunWithBinding(run, binding);
            binding.SynchronizeBoundOutputs();

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
        int rows = Rows(batch);
        var pieces = rowsPerPiece == 0 ? [Enumerable.Range(0, rows).ToArray()] : MicroBatching.PieceRows(rows, rowsPerPiece, pairedHalves);
        var totals = pieces.Count > 1 ? MicroBatching.Totals(_model, batch) : [];
        var results = new List<Result>(pieces.Count);
        for (int k = 0; k < pieces.Count; k++)
        {
            var piece = pieces.Count == 1 ? batch : Piece(batch, pieces[k], totals);
            var device = onDevice?.Invoke(pieces[k]);
            try { results.Add(Run(piece, accumulate || k > 0, device?.Tensors)); }
            finally { device?.Owner.Dispose(); }
        }
        return Sum(results);
    }

    /// <summary>Runs <paramref name="batch"/> as <see cref="ConcurrentPieces"/> pieces of near-equal rows (examples, with
    /// <paramref name="pairedHalves"/>) at once, each on a thread of its own (with one intra-op thread, one core each) and
    /// into gradient buffers of its own, then adds the pieces' gradients in piece order on the device
    /// (<see cref="TrainGraphs.PieceSum"/>). Each piece divides by the whole batch's counts (<see cref="MicroBatching"/>),
    /// so the result is the batch's gradient, loss and metrics, the same bits as the same pieces run one after the other
    /// by <see cref="Run(IReadOnlyDictionary{string, HostTensor}, int, bool, bool, Func{int[], ValueTuple{IReadOnlyDictionary{string, DeviceTensor}, IDisposable}}?)"/>,
    /// whatever the order in which the threads finish.</summary>
    public Result RunAtOnce(IReadOnlyDictionary<string, HostTensor> batch, bool pairedHalves)
    {
        if (ConcurrentPieces == 1) throw new InvalidOperationException("this train session was created for one piece at a time (concurrentPieces 1)");
        int rows = Rows(batch), examples = pairedHalves ? rows / 2 : rows;
        var pieces = MicroBatching.PieceRows(rows, (examples + ConcurrentPieces - 1) / ConcurrentPieces, pairedHalves);
        if (pieces.Count == 1) return Run(batch);
        var totals = MicroBatching.Totals(_model, batch);
        var results = new Result[pieces.Count];
        try
        {
            Parallel.For(0, pieces.Count, new ParallelOptions { MaxDegreeOfParallelism = pieces.Count }, k =>
                results[k] = RunGraph(_first, _firstInputs, Piece(batch, pieces[k], totals), _pieceGrads[k], accumulate: false, onDevice: null));
        }
        catch (AggregateException e) { System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(e.InnerExceptions[0]); }

        var sum = PieceSum(pieces.Count);
        using (var binding = sum.CreateIoBinding())
        {
            foreach (var (p, tensor) in _grads)
            {
                var gradName = global::AlignThenUnlearn.Autodiff.Gradients.GradientName(p);
                for (int k = 0; k < pieces.Count; k++) binding.BindInput(TrainGraphs.PieceInput(gradName, k), _pieceGrads[k][p].Value);
                binding.BindOutput(gradName, tensor.Value);
            }
            using var run = new RunOptions();
            sum.RunWithBinding(run, binding);
            binding.SynchronizeBoundOutputs();
        }
        return Sum(results);
    }

    /// <summary>The batch's rows <paramref name="rows"/>, dividing by the whole batch's counts (<paramref name="totals"/>).</summary>
    Dictionary<string, HostTensor> Piece(IReadOnlyDictionary<string, HostTensor> batch, int[] rows, Dictionary<string, HostTensor> totals)
    {
        var piece = MicroBatching.Piece(_model, batch, rows);
        foreach (var (name, total) in totals) piece[name] = total;
        return piece;
    }

    /// <summary>The pieces' losses and metrics added in piece order: the whole batch's.</summary>
    static Result Sum(IReadOnlyList<Result> pieces)
    {
        double loss = 0;
        var metrics = new Dictionary<string, double[]>();
        foreach (var result in pieces)
        {
            loss += result.Loss;
            foreach (var (name, values) in result.Metrics)
            {
                var sum = metrics.TryGetValue(name, out var s) ? s : metrics[name] = new double[values.Length];
                for (int i = 0; i < values.Length; i++) sum[i] += values[i];
            }
        }
        return new Result(loss, metrics);
    }

    InferenceSession PieceSum(int pieces)
    {
        if (!_pieceSums.TryGetValue(pieces, out var session))
            _pieceSums[pieces] = session = _device.Open(TrainGraphs.PieceSum(
                _grads.ToDictionary(kv => global::AlignThenUnlearn.Autodiff.Gradients.GradientName(kv.Key), kv => kv.Value.Shape), pieces));
        return session;
    }

    /// <summary>The number of rows the batch's batched inputs agree on.</summary>
    int Rows(IReadOnlyDictionary<string, HostTensor> batch)
    {
        var batched = MicroBatching.BatchedInputs(_model);
        var rowCounts = batched.Where(batch.ContainsKey).Select(n => batch[n].Shape[0]).Distinct().ToList();
        if (rowCounts.Count != 1) throw new ArgumentException($"the batch's tensors {string.Join(", ", batched.Where(batch.ContainsKey))} do not agree on one number of rows");
        return (int)rowCounts[0];
    }

    static string GradientOwner(string accumulatedInput) =>
        accumulatedInput[..^(AccumulatedSuffix.Length + ".grad".Length)];

    public void Dispose()
    {
        _first.Dispose();
        _accumulating?.Dispose();
        foreach (var session in _pieceSums.Values) session.Dispose();
        foreach (var t in _grads.Values.Concat(_spare.Values).Concat(_pieceGrads.SelectMany(g => g.Values))) t.Dispose();
    }
}
