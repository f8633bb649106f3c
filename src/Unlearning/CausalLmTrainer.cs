using AlignThenUnlearn.Autodiff;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Onnx;
using AlignThenUnlearn.Runtime;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Unlearning;

/// <summary>The joint graph of causal-LM training: the decoder's training lowering with logits, the masked next-token
/// cross-entropy (<see cref="TokenLosses.NextTokenCrossEntropy"/>) on inputs <c>input_ids</c> and <c>loss_mask</c>
/// (as <see cref="TokenBatcher"/> makes them), and the gradients of the trainable parameters.</summary>
public sealed record CausalLmGraph(DecoderGraph Decoder, GradientGraph Training, string Loss)
{
    public const string LossName = "loss";

    public static CausalLmGraph Build(DecoderConfig config, IEnumerable<string> trainable)
    {
        var graph = TokenLossGraph.Build(config, x => TokenLosses.NextTokenCrossEntropy(x.Builder, x.Logits, x.InputIds, x.LossMask), trainable);
        return new CausalLmGraph(graph.Decoder, graph.Training, graph.Loss);
    }
}

/// <summary>Trains a Llama-family decoder with next-token cross-entropy (pre-training the toy world's model, token-level
/// baselines): <see cref="CausalLmGraph"/> run by a <see cref="Trainer"/>, with each batch checked against the model
/// (sequence length, token ids) before it runs.</summary>
public sealed class CausalLmTrainer : IDisposable
{
    public DecoderConfig Config { get; }
    /// <summary>The longest sequence a batch may hold.</summary>
    public int MaxLength { get; }
    public Trainer Trainer { get; }

    /// <param name="maxLength">Defaults to the configuration's max_position_embeddings.</param>
    public CausalLmTrainer(ParameterStore store, DecoderConfig config, OptimizerSettings optimizer, TrainerOptions options, int? maxLength = null)
    {
        (Config, MaxLength) = (config, maxLength ?? config.MaxPositionEmbeddings);
        if (MaxLength < 2) throw new ArgumentOutOfRangeException(nameof(maxLength), MaxLength, "sequences need at least two tokens to predict one");
        var graph = CausalLmGraph.Build(config, store.Trainable);
        Trainer = new Trainer(store, graph.Training, graph.Loss, optimizer, options, validateBatch: CheckBatch);
    }

    /// <summary>Runs <see cref="Trainer.Run"/>: see there for when the callbacks are called.</summary>
    public void Train(IBatchSource data, Action<TrainingProgress>? progress = null, Action<string>? checkpointWritten = null) =>
        Trainer.Run(data, progress, checkpointWritten);

    /// <summary>A store with seeded random parameters of <paramref name="config"/> (<see cref="RandomInit"/>), all trainable.</summary>
    public static ParameterStore RandomParameters(ExecutionDevice device, DecoderConfig config, int seed = 0, double std = 0.02)
    {
        var store = new ParameterStore(device);
        foreach (var (name, value) in RandomInit.Create(config, DataType.Float, seed, std))
            store.Add(name, (float[])value.Data, value.Shape, trainable: true);
        return store;
    }

    void CheckBatch(IReadOnlyDictionary<string, HostTensor> batch)
    {
        if (!batch.TryGetValue(TokenBatcher.InputIds, out var ids) || ids.Data is not long[] tokens || ids.Shape.Length != 2)
            throw new ArgumentException($"the batch needs '{TokenBatcher.InputIds}' as int64 [batch, seq]");
        if (ids.Shape[1] > MaxLength)
            throw new ArgumentException($"the batch holds sequences of {ids.Shape[1]} tokens, more than the maximum length {MaxLength} of this trainer");
        if (!batch.TryGetValue(TokenBatcher.LossMask, out var mask) || !mask.Shape.SequenceEqual(ids.Shape))
            throw new ArgumentException($"the batch needs '{TokenBatcher.LossMask}' of the shape of '{TokenBatcher.InputIds}' [{string.Join(", ", ids.Shape)}]");
        int bad = Array.FindIndex(tokens, t => t < 0 || t >= Config.VocabSize);
        if (bad >= 0) throw new ArgumentException($"token id {tokens[bad]} (sequence {bad / ids.Shape[1]}, position {bad % ids.Shape[1]}) is outside the vocabulary 0..{Config.VocabSize - 1}");
    }

    public void Dispose() => Trainer.Dispose();
}
