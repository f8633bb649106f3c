using System.Runtime.InteropServices;
using AlignThenUnlearn.Models;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace AlignThenUnlearn.Runtime;

/// <summary>How <see cref="GreedyGenerator"/> computes each new token.</summary>
public enum DecodingMode
{
    /// <summary>One pass over the prompts, then one token per step; the keys and values of earlier tokens come from
    /// the cache (<c>present.*</c> of one step is <c>past_key_values.*</c> of the next).</summary>
    KvCache,
    /// <summary>Every step recomputes the whole sequence with an empty cache: the reference the cache must
    /// reproduce, and the baseline of the generation benchmark.</summary>
    Recompute,
}

/// <summary>Temperature and nucleus (top-p) sampling instead of the argmax, as Hugging Face's <c>generate(do_sample=True)</c>
/// applies them: logits divided by <paramref name="Temperature"/>, then only the most probable tokens whose probabilities
/// first reach <paramref name="TopP"/> together are kept (at least one), renormalised, and one is drawn. Each prompt row
/// draws from its own SplitMix64 stream seeded by (<paramref name="Seed"/>, its index in the call), so results do not
/// depend on batching. Temperature 0 is the argmax: greedy decoding exactly.</summary>
public sealed record Sampling(double Temperature, double TopP, long Seed)
{
    /// <summary>The token drawn from <paramref name="logits"/> with <paramref name="random"/>.</summary>
    public int Choose(float[] logits, SplitMix64 random)
    {
        if (Temperature == 0) return GreedyGenerator.ArgMax(logits);
        var order = Enumerable.Range(0, logits.Length).OrderByDescending(j => logits[j]).ThenBy(j => j).ToArray();
        double top = logits[order[0]] / Temperature;
        var weights = order.Select(j => Math.Exp(logits[j] / Temperature - top)).ToArray();
        double total = weights.Sum(), kept = 0;
        int count = 0;
        while (count < weights.Length && (count == 0 || kept / total < TopP)) kept += weights[count++];
        double draw = random.NextDouble() * kept;
        for (int i = 0; i < count; i++)
        {
            draw -= weights[i];
            if (draw < 0) return order[i];
        }
        return order[count - 1];
    }
}

/// <summary>A prompt's greedy continuation: the new token ids (the stop token left out) and whether a stop token
/// ended it (otherwise the token budget did).</summary>
public sealed record Continuation(int[] Tokens, bool Stopped);

/// <summary>Batched greedy decoding over an artifact's <c>model.onnx</c>. Prompts of different lengths are padded on
/// the left (attention mask 0 on pads, position ids counting each row's real tokens), so every row's last prompt token
/// sits in the last column and each step appends one column. Greedy decoding of a row does not depend on the other
/// rows, so a batch returns what each prompt would alone.
///
/// The cache never visits managed memory: the <c>present.*</c> outputs are bound to the device's memory with IO binding
/// and passed back as the next step's <c>past_key_values.*</c>; only the last position's logits are computed and come to
/// the host (for the argmax or the sampler: a graph that takes <see cref="InferenceLowering.LogitsFrom"/> is fed -1, so
/// a prompt's pass keeps [batch, 1, vocab] rather than [batch, prompt, vocab]; an older graph without that input returns
/// every position and the last is read), and the step's small inputs (new ids, mask, positions) go the other way.
/// <see cref="ScoreTokens"/>, which reads every position, gets them all.</summary>
public sealed class GreedyGenerator : IDisposable
{
    /// <summary>Bound on one pass's logits tensor ([batch, tokens, vocab]): larger batches are split into groups run
    /// one after the other, which changes nothing in the results.</summary>
    public long MaxLogitsBytes { get; init; } = 512L << 20;

    /// <summary>Passes that generate compute and return only the last position's logits where the graph allows
    /// (<see cref="InferenceLowering.LogitsFrom"/>); false: every position's, as graphs without that input do (for comparisons).</summary>
    public bool LastLogitsOnly { get; init; } = true;

    readonly InferenceModel _model;
    readonly ExecutionDevice _device;
    readonly bool _ownsModel;
    readonly RunOptions _runOptions = new();
    readonly string[] _pastNames, _presentNames;
    readonly bool _keepsLastLogits;

    public DecoderConfig Config => _model.Config;

    public GreedyGenerator(InferenceModel model, ExecutionDevice device, bool ownsModel = false)
    {
        (_model, _device, _ownsModel) = (model, device, ownsModel);
        int layers = model.Config.NumHiddenLayers;
        var io = model.Io;
        _pastNames = [.. io.PastNames(layers)];
        _presentNames = [.. io.PresentNames(layers)];
        _keepsLastLogits = model.Session.InputMetadata.ContainsKey(InferenceLowering.LogitsFrom);
    }

    /// <summary>Opens the inference graph of an artifact folder (<c>model.onnx</c>, with trained weights of the same names
    /// when given) or of a shipped folder (as shipped).</summary>
    public static GreedyGenerator Open(IModelFolder model, ExecutionDevice device, string? weightsPath = null, Action<string>? notice = null) =>
        new(model.OpenInference(device, weightsPath, notice), device, ownsModel: true);

    /// <summary>Greedy continuations of <paramref name="prompts"/> (token ids, BOS included where the tokenizer adds one),
    /// at most <paramref name="maxNewTokens"/> tokens each; a row ends at its first token in <paramref name="stopIds"/>,
    /// which is left out. <paramref name="onToken"/> sees each kept token as it is chosen (row, token);
    /// <paramref name="sampling"/> draws tokens instead of taking the argmax (null: greedy).</summary>
    public IReadOnlyList<Continuation> Generate(IReadOnlyList<IReadOnlyList<int>> prompts, int maxNewTokens, IReadOnlyCollection<int> stopIds,
        DecodingMode mode = DecodingMode.KvCache, Action<int, int>? onToken = null, Sampling? sampling = null)
    {
        if (sampling is not null && (sampling.Temperature < 0 || !double.IsFinite(sampling.Temperature) || sampling.TopP is <= 0 or > 1))
            throw new ArgumentException($"sampling needs a temperature >= 0 and top-p in (0, 1], not {sampling.Temperature} and {sampling.TopP}");
        ArgumentOutOfRangeException.ThrowIfNegative(maxNewTokens);
        Check(prompts, maxNewTokens);
        var stops = stopIds.ToHashSet();
        var results = new List<Continuation>(prompts.Count);
        foreach (var (first, count) in Groups(prompts, mode == DecodingMode.KvCache ? 0 : maxNewTokens))
        {
            var group = new LeftPaddedBatch(prompts.Skip(first).Take(count).ToList(), sampling, first);
            var rowCallback = onToken is null ? null : new Action<int, int>((row, token) => onToken(first + row, token));
            try
            {
                results.AddRange(maxNewTokens == 0 ? group.Continuations()
                    : mode == DecodingMode.KvCache ? WithCache(group, maxNewTokens, stops, rowCallback) : Recomputing(group, maxNewTokens, stops, rowCallback));
            }
            catch (NonFiniteLogitsException e) { throw e.Shifted(first); }
        }
        return results;
    }

    /// <summary>The next-token logits after each prompt (its last position), at <paramref name="candidateIds"/> in that
    /// order, or the whole vocabulary when null.</summary>
    public IReadOnlyList<float[]> NextTokenLogits(IReadOnlyList<IReadOnlyList<int>> prompts, IReadOnlyList<int>? candidateIds = null)
    {
        Check(prompts, 0);
        int vocab = Config.VocabSize;
        if (candidateIds?.FirstOrDefault(id => id < 0 || id >= vocab, -1) is int bad and >= 0)
            throw new ArgumentException($"candidate token id {bad} is outside the vocabulary (0..{vocab - 1})");
        var results = new List<float[]>(prompts.Count);
        foreach (var (first, count) in Groups(prompts, 0))
        {
            var group = new LeftPaddedBatch(prompts.Skip(first).Take(count).ToList());
            using var step = Run(group.Width, group.Ids, group.Mask, group.Positions, past: null, keepCache: false);
            for (int row = 0; row < group.Size; row++)
            {
                var logits = step.LastLogits(row);
                if (!System.Numerics.Tensors.TensorPrimitives.IsFiniteAll<float>(logits)) throw new NonFiniteLogitsException(first + row, 0);
                results.Add(candidateIds is null ? logits : [.. candidateIds.Select(id => logits[id])]);
            }
        }
        return results;
    }

    /// <summary>Every token's log-probability given the tokens before it (from the second token on), with mu and sigma
    /// of the distribution it was drawn from (<see cref="TokenLogProbs"/>): one pass over each group of sequences, the
    /// statistics taken from the logits of every position.</summary>
    public IReadOnlyList<TokenLogProbs> ScoreTokens(IReadOnlyList<IReadOnlyList<int>> sequences)
    {
        Check(sequences, 0);
        var results = new List<TokenLogProbs>(sequences.Count);
        foreach (var (first, count) in Groups(sequences, 0))
        {
            var group = new LeftPaddedBatch(sequences.Skip(first).Take(count).ToList());
            using var step = Run(group.Width, group.Ids, group.Mask, group.Positions, past: null, keepCache: false, everyPosition: true);
            for (int row = 0; row < group.Size; row++)
            {
                var ids = sequences[first + row];
                int n = ids.Count, pad = group.Width - n;
                double[] logProbs = new double[n - 1], mu = new double[n - 1], sigma = new double[n - 1];
                for (int i = 0; i + 1 < n; i++)
                    (logProbs[i], mu[i], sigma[i]) = TokenLogProbs.Statistics(step.Logits(row, pad + i), ids[i + 1]);
                results.Add(new TokenLogProbs([.. ids], logProbs, mu, sigma));
            }
        }
        return results;
    }

    IReadOnlyList<Continuation> WithCache(LeftPaddedBatch batch, int maxNewTokens, HashSet<int> stops, Action<int, int>? onToken)
    {
        var step = Run(batch.Width, batch.Ids, batch.Mask, batch.Positions, past: null, keepCache: true);
        try
        {
            while (true)
            {
                bool more = batch.Advance(step, stops, maxNewTokens, onToken);
                if (!more) return batch.Continuations();
                var (ids, mask, positions) = batch.NextStepInputs();
                var next = Run(1, ids, mask, positions, past: step, keepCache: true);
                step.Dispose();
                step = next;
            }
        }
        finally { step.Dispose(); }
    }

    IReadOnlyList<Continuation> Recomputing(LeftPaddedBatch batch, int maxNewTokens, HashSet<int> stops, Action<int, int>? onToken)
    {
        while (true)
        {
            var (ids, mask, positions, width) = batch.WholeSequenceInputs();
            bool more;
            using (var step = Run(width, ids, mask, positions, past: null, keepCache: false))
                more = batch.Advance(step, stops, maxNewTokens, onToken);
            if (!more) return batch.Continuations();
        }
    }

    void Check(IReadOnlyList<IReadOnlyList<int>> prompts, int maxNewTokens)
    {
        if (prompts.Count == 0) return;
        for (int i = 0; i < prompts.Count; i++)
        {
            if (prompts[i].Count == 0) throw new ArgumentException($"prompt {i} has no tokens");
            foreach (var id in prompts[i])
                if (id < 0 || id >= Config.VocabSize) throw new ArgumentException($"prompt {i}: token id {id} is outside the vocabulary (0..{Config.VocabSize - 1})");
        }
        int longest = prompts.Max(p => p.Count);
        if (longest + maxNewTokens > _model.MaxSequenceLength)
            throw new ArgumentException($"a prompt of {longest} tokens plus {maxNewTokens} new tokens exceeds the model's maximum sequence length {_model.MaxSequenceLength} (export with a larger --max-seq-len)");
    }

    /// <summary>Consecutive groups of prompts whose largest pass (the prompts plus <paramref name="extraTokens"/>
    /// columns) keeps the logits under <see cref="MaxLogitsBytes"/>; at least one prompt per group.</summary>
    IEnumerable<(int First, int Count)> Groups(IReadOnlyList<IReadOnlyList<int>> prompts, int extraTokens)
    {
        long rowBytes(int width) => (long)(width + extraTokens) * Config.VocabSize * ElementBytes;
        int first = 0;
        while (first < prompts.Count)
        {
            int count = 1, width = prompts[first].Count;
            while (first + count < prompts.Count)
            {
                int wider = Math.Max(width, prompts[first + count].Count);
                if ((count + 1) * rowBytes(wider) > MaxLogitsBytes) break;
                (width, count) = (wider, count + 1);
            }
            yield return (first, count);
            first += count;
        }
    }

    int ElementBytes => _model.ElementType == TensorElementType.Float16 ? 2 : 4;

    /// <summary>One pass: <paramref name="ids"/> [batch, <paramref name="columns"/>] after the cache of
    /// <paramref name="past"/> (empty when null), with the mask over past and new columns; the logits of the last column,
    /// or of every column with <paramref name="everyPosition"/>.</summary>
    StepOutputs Run(int columns, long[] ids, long[] mask, long[] positions, StepOutputs? past, bool keepCache, bool everyPosition = false)
    {
        int batch = ids.Length / columns;
        var config = Config;
        var inputs = new List<OrtValue>();
        OrtValue Host(long[] data, long width)
        {
            var value = OrtValue.CreateTensorValueFromMemory(data, [batch, width]);
            inputs.Add(value);
            return value;
        }
        try
        {
            using var binding = _model.Session.CreateIoBinding();
            var io = _model.Io;
            binding.BindInput(io.InputIds, Host(ids, columns));
            binding.BindInput(io.AttentionMask, Host(mask, mask.Length / batch));
            if (_model.TakesPositionIds) binding.BindInput(io.PositionIds, Host(positions, columns));
            bool lastOnly = !everyPosition && _keepsLastLogits && LastLogitsOnly;
            if (lastOnly)
            {
                var from = OrtValue.CreateTensorValueFromMemory(new long[] { -1 }, [1]);
                inputs.Add(from);
                binding.BindInput(InferenceLowering.LogitsFrom, from);
            }
            if (past is null)
            {
                var empty = OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, _model.ElementType, [batch, config.NumKeyValueHeads, 0, config.HeadDimension]);
                inputs.Add(empty);
                foreach (var name in _pastNames) binding.BindInput(name, empty);
            }
            else
                for (int i = 0; i < _pastNames.Length; i++) binding.BindInput(_pastNames[i], past.Value(_presentNames[i]));
            // Logits come to the host for the argmax; the cache stays where the device computes.
            binding.BindOutputToDevice(io.Logits, OrtMemoryInfo.DefaultInstance);
            if (keepCache)
                foreach (var name in _presentNames) binding.BindOutputToDevice(name, _device.MemoryInfo);
            _model.Session.RunWithBinding(_runOptions, binding);
            binding.SynchronizeBoundOutputs();
            return new StepOutputs(binding.GetOutputNames(), binding.GetOutputValues(), batch, lastOnly ? 1 : columns, config.VocabSize, _model.ElementType, io.Logits);
        }
        finally
        {
            foreach (var value in inputs) value.Dispose();
        }
    }

    public void Dispose()
    {
        _runOptions.Dispose();
        if (_ownsModel) _model.Dispose();
    }

    /// <summary>A pass's outputs: the logits in host memory ([batch, <paramref name="columns"/>, vocab]: the pass's last
    /// columns) and, when kept, the cache on the device.</summary>
    sealed class StepOutputs(string[] names, IDisposableReadOnlyCollection<OrtValue> values, int batch, int columns, int vocab, TensorElementType type, string logitsName) : IDisposable
    {
        public int Batch => batch;

        public OrtValue Value(string name)
        {
            int index = Array.IndexOf(names, name);
            return index >= 0 ? values[index] : throw new InvalidOperationException($"the pass did not keep output '{name}'");
        }

        /// <summary>The logits of the last column of <paramref name="row"/>, widened to float.</summary>
        public float[] LastLogits(int row) => Logits(row, columns - 1);

        /// <summary>The logits of one column of <paramref name="row"/>, widened to float.</summary>
        public float[] Logits(int row, int column)
        {
            long offset = ((long)row * columns + column) * vocab;
            var raw = Value(logitsName).GetTensorMutableRawData();
            if (type == TensorElementType.Float)
                return MemoryMarshal.Cast<byte, float>(raw).Slice(checked((int)offset), vocab).ToArray();
            var half = MemoryMarshal.Cast<byte, Half>(raw).Slice(checked((int)offset), vocab);
            var result = new float[vocab];
            for (int j = 0; j < vocab; j++) result[j] = (float)half[j];
            return result;
        }

        public void Dispose() => values.Dispose();
    }

    /// <summary>The rows of one batch: prompts left-padded to the longest, the tokens chosen so far and which rows
    /// have stopped.</summary>
    sealed class LeftPaddedBatch
    {
        readonly IReadOnlyList<IReadOnlyList<int>> _prompts;
        readonly List<int>[] _generated;
        readonly bool[] _stopped, _done;
        /// <summary>The token each row was last fed (a stopped row keeps being fed its stop token; its outputs are unused).</summary>
        readonly long[] _last;
        /// <summary>The attention mask of everything fed so far, [batch, columns] flattened.</summary>
        long[] _mask;
        readonly Sampling? _sampling;
        readonly SplitMix64[] _random;

        public int Size => _prompts.Count;
        public int Width { get; }
        public long[] Ids { get; }
        public long[] Mask { get; }
        public long[] Positions { get; }

        /// <param name="firstRow">The index of the batch's first prompt in the whole call: it seeds the rows' sampling streams.</param>
        public LeftPaddedBatch(IReadOnlyList<IReadOnlyList<int>> prompts, Sampling? sampling = null, int firstRow = 0)
        {
            _prompts = prompts;
            _sampling = sampling;
            _random = [.. prompts.Select((_, b) => new SplitMix64(SplitMix64.Mix((ulong)(sampling?.Seed ?? 0)) ^ SplitMix64.Mix((ulong)(firstRow + b) + 1)))];
            Width = prompts.Max(p => p.Count);
            Ids = new long[Size * Width];
            Mask = new long[Size * Width];
            Positions = new long[Size * Width];
            for (int b = 0; b < Size; b++)
            {
                int pad = Width - prompts[b].Count;
                for (int i = 0; i < prompts[b].Count; i++)
                {
                    Ids[b * Width + pad + i] = prompts[b][i];
                    Mask[b * Width + pad + i] = 1;
                    Positions[b * Width + pad + i] = i;
                }
            }
            _mask = Mask;
            _generated = [.. prompts.Select(_ => new List<int>())];
            _stopped = new bool[Size];
            _done = new bool[Size];
            _last = new long[Size];
        }

        /// <summary>Takes each running row's argmax token from the pass; false when every row is done.</summary>
        public bool Advance(StepOutputs step, HashSet<int> stops, int maxNewTokens, Action<int, int>? onToken)
        {
            for (int b = 0; b < Size; b++)
            {
                if (_done[b]) continue;
                var logits = step.LastLogits(b);
                if (!System.Numerics.Tensors.TensorPrimitives.IsFiniteAll<float>(logits)) throw new NonFiniteLogitsException(b, _generated[b].Count);
                int token = _sampling is null ? ArgMax(logits) : _sampling.Choose(logits, _random[b]);
                _last[b] = token;
                if (stops.Contains(token)) { _stopped[b] = _done[b] = true; continue; }
                _generated[b].Add(token);
                onToken?.Invoke(b, token);
                if (_generated[b].Count == maxNewTokens) _done[b] = true;
            }
            return _done.Contains(false);
        }

        /// <summary>One new column: each row's last token, at the position after its real tokens so far.</summary>
        public (long[] Ids, long[] Mask, long[] Positions) NextStepInputs()
        {
            int total = _mask.Length / Size + 1;
            var mask = new long[Size * total];
            var positions = new long[Size];
            for (int b = 0; b < Size; b++)
            {
                Array.Copy(_mask, b * (total - 1), mask, b * total, total - 1);
                mask[b * total + total - 1] = 1;
                positions[b] = _prompts[b].Count + FedCount(b) - 1;
            }
            _mask = mask;
            return ([.. _last], mask, positions);
        }

        /// <summary>The whole sequence so far (prompts, then every token fed), for a pass without a cache.</summary>
        public (long[] Ids, long[] Mask, long[] Positions, int Width) WholeSequenceInputs()
        {
            int steps = _generated.Select((g, b) => FedCount(b)).Max();
            int width = Width + steps;
            var ids = new long[Size * width];
            var mask = new long[Size * width];
            var positions = new long[Size * width];
            for (int b = 0; b < Size; b++)
            {
                int pad = Width - _prompts[b].Count;
                Array.Copy(Ids, b * Width, ids, b * width, Width);
                Array.Copy(Mask, b * Width, mask, b * width, Width);
                Array.Copy(Positions, b * Width, positions, b * width, Width);
                for (int t = 0; t < steps; t++)
                {
                    // A stopped row repeats its stop token; what it computes is not used.
                    ids[b * width + Width + t] = t < _generated[b].Count ? _generated[b][t] : _last[b];
                    mask[b * width + Width + t] = 1;
                    positions[b * width + Width + t] = _prompts[b].Count + t;
                }
            }
            return (ids, mask, positions, width);
        }

        /// <summary>Tokens fed to row <paramref name="b"/> after its prompt: the kept ones and, once stopped, the stop token.</summary>
        int FedCount(int b) => _generated[b].Count + (_stopped[b] ? 1 : 0);

        public IReadOnlyList<Continuation> Continuations() => [.. _generated.Select((g, b) => new Continuation([.. g], _stopped[b]))];

    }

    /// <summary>The first index of the largest logit (torch.argmax picks the first of equal maxima).</summary>
    internal static int ArgMax(float[] logits)
    {
        int best = 0;
        for (int j = 1; j < logits.Length; j++)
            if (logits[j] > logits[best]) best = j;
        return best;
    }
}
