using AlignThenUnlearn.Models;
using AlignThenUnlearn.Runtime;
using Microsoft.ML.OnnxRuntime;

namespace AlignThenUnlearn.Unlearning;

/// <summary>Whether (re)alignment trains the head on cached hidden states, and where they are kept.</summary>
public sealed record HiddenStateCacheSettings
{
    /// <summary>False: every head step runs the LLM up to the head's layer again (the same results, slower).</summary>
    public bool Enabled { get; init; } = true;
    /// <summary>Hidden states up to this many bytes stay in the device's memory; more are memory-mapped from a file.</summary>
    public long MemoryLimitBytes { get; init; } = 2L << 30;
    /// <summary>Where the file goes when they do not fit (null: the run folder).</summary>
    public string? Folder { get; init; }
}

/// <summary>The LLM's hidden states at the heads' layers for every piece of a corpus. During alignment and realignment
/// the LLM is frozen, so they are computed once per phase and each head step reads them instead of running the LLM
/// again (<see cref="UnlearningGraphs.Alignment(DecoderConfig, IReadOnlyList{UnlearningGraphs.HeadAt}, int, bool)"/>
/// with <c>fromHiddenStates</c>).
///
/// A batch pads its pieces to its longest one; the LLM's attention is causal, so a position's hidden state depends only
/// on the tokens up to it and a piece padded to <see cref="WindowBatcher.RowLength"/> holds, at its first positions,
/// exactly the states the piece has in any batch. The pieces are run in the same training lowering the joint graph
/// uses.</summary>
public sealed class HiddenStateCache : IDisposable
{
    readonly Dictionary<int, RowTable> _tables;

    public IReadOnlyCollection<int> Layers => _tables.Keys;
    public long Bytes => _tables.Values.Sum(t => t.Bytes);
    public bool InMemory => _tables.Values.All(t => t.InMemory);

    HiddenStateCache(Dictionary<int, RowTable> tables) => _tables = tables;

    /// <param name="batchSize">Pieces per LLM run.</param>
    public static HiddenStateCache Compute(ExecutionDevice device, ParameterStore store, DecoderConfig config, IReadOnlyList<int> layers,
        WindowBatcher data, HiddenStateCacheSettings settings, string defaultFolder, int batchSize)
    {
        using var llm = new HiddenStateSession(device, config, layers);
        return Compute(llm, store, data, settings, defaultFolder, batchSize);
    }

    /// <summary>The cache, computed with a session the caller keeps across phases (opening one costs more than a phase's
    /// few batches at small sizes).</summary>
    public static HiddenStateCache Compute(HiddenStateSession llm, ParameterStore store, WindowBatcher data, HiddenStateCacheSettings settings,
        string defaultFolder, int batchSize)
    {
        var (device, config, layers, decoder, session) = (llm.Device, llm.Config, llm.Layers, llm.Decoder, llm.Session);
        int length = data.RowLength;
        long limitPerLayer = settings.MemoryLimitBytes / layers.Count;
        var tables = new Dictionary<int, RowTable>();
        try
        {
            foreach (var layer in layers)
                tables[layer] = new RowTable(device, data.Pieces, length, config.HiddenSize, limitPerLayer, settings.Folder ?? defaultFolder);
            var inputs = decoder.Model.Graph.Input.Select(i => i.Name).ToList();
            for (int first = 0; first < data.Pieces; first += batchSize)
            {
                var batch = data.Batch(Enumerable.Range(first, Math.Min(batchSize, data.Pieces - first)).ToList(), length);
                using var binding = session.CreateIoBinding();
                var values = new List<OrtValue>();
                try
                {
                    foreach (var name in inputs)
                    {
                        if (store.Contains(name)) binding.BindInput(name, store[name].Value);
                        else if (batch.TryGetValue(name, out var tensor)) { values.Add(HostValues.ToOrtValue(tensor)); binding.BindInput(name, values[^1]); }
                        else throw new ArgumentException($"the LLM's graph needs input '{name}', which is neither a parameter nor in the batch");
                    }
                    foreach (var layer in layers) binding.BindOutputToDevice(decoder.HiddenStates[layer], ExecutionDevice.HostOutputs);
                    using var run = new RunOptions();
                    session.RunWithBinding(run, binding);
                    binding.SynchronizeBoundOutputs();
                    using var outputs = binding.GetOutputValues();
                    var names = binding.GetOutputNames();
                    foreach (var layer in layers) tables[layer].Append(outputs[Array.IndexOf(names, decoder.HiddenStates[layer])].GetTensorDataAsSpan<float>());
                }
                finally { foreach (var v in values) v.Dispose(); }
            }
            foreach (var table in tables.Values) table.Complete();
            return new HiddenStateCache(tables);
        }
        catch { foreach (var table in tables.Values) table.Dispose(); throw; }
    }

    /// <summary>The hidden states of a batch of pieces (<see cref="WindowBatcher.LastPieces"/>) padded to
    /// <paramref name="positions"/>, by input name of the head-only graph; dispose them after the step.</summary>
    public Batch Read(IReadOnlyList<int> pieces, int positions) =>
        new(_tables.ToDictionary(kv => DecoderGraph.HiddenStateName(kv.Key), kv => kv.Value.Read(pieces, positions)));

    public sealed class Batch(Dictionary<string, DeviceTensor> tensors) : IDisposable
    {
        public IReadOnlyDictionary<string, DeviceTensor> Tensors => tensors;
        public void Dispose() { foreach (var t in tensors.Values) t.Dispose(); }
    }

    public void Dispose() { foreach (var table in _tables.Values) table.Dispose(); }
}

/// <summary>The LLM run up to the heads' layers (the training lowering, hidden states out, no logits) and its session.</summary>
public sealed class HiddenStateSession : IDisposable
{
    public ExecutionDevice Device { get; }
    public DecoderConfig Config { get; }
    public IReadOnlyList<int> Layers { get; }
    internal DecoderGraph Decoder { get; }
    internal InferenceSession Session { get; }

    public HiddenStateSession(ExecutionDevice device, DecoderConfig config, IReadOnlyList<int> layers)
    {
        (Device, Config, Layers) = (device, config, [.. layers]);
        Decoder = DecoderBuilder.Build(config, new DecoderGraphOptions { HiddenStates = layers.ToArray(), Logits = false });
        Session = device.Open(Decoder.Model);
    }

    public void Dispose() => Session.Dispose();
}
