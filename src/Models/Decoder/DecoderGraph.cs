using AlignThenUnlearn.Onnx;
using Onnx;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Models;

/// <summary>One parameter a decoder graph expects as an input, named as Hugging Face checkpoints name it.
/// Shapes follow the checkpoint too: matrices are [out, in]. <paramref name="Projection"/>: the weight of a decoder layer's
/// linear projection (attention q/k/v/o, MLP gate/up/down and their fused forms), what weight-only quantisation acts on.</summary>
public sealed record ParameterSpec(string Name, long[] Shape, DataType ElementType, bool Projection = false)
{
    public long ElementCount => Shape.Aggregate(1L, (p, d) => p * d);
    public override string ToString() => $"{Name} {ElementType}[{string.Join(",", Shape)}]";
}

/// <summary>What the training lowering of a decoder computes and in which element type.</summary>
public sealed record DecoderGraphOptions
{
    /// <summary>Float (default), Double (gradient checks) or Float16. RMSNorm and softmax run in float32 for Float16.</summary>
    public DataType ElementType { get; init; } = DataType.Float;

    /// <summary>Hidden states to output, in Hugging Face <c>output_hidden_states</c> indexing: 0 is the embedding
    /// output, k the output of decoder layer k-1, and the number of layers the output of the final norm.
    /// Layers after the last one needed are not built.</summary>
    public IReadOnlyList<int> HiddenStates { get; init; } = [];

    /// <summary>Whether to output logits (which needs every layer, the final norm and lm_head).</summary>
    public bool Logits { get; init; } = true;

    /// <summary>Take <c>inputs_embeds</c> [batch, seq, hidden] instead of <c>input_ids</c> (as Hugging Face's
    /// models accept): the graph then starts at the first decoder layer.</summary>
    public bool InputsEmbeds { get; init; }

    /// <summary>Low-rank adapters on attention projections (<see cref="LoraOptions"/>): extra graph inputs, listed in
    /// <see cref="DecoderGraph.Adapters"/>; the base weights stay inputs of their own. Training lowering only.</summary>
    public LoraOptions? Lora { get; init; }

    /// <summary>The options that output only hidden_states[<paramref name="index"/>] and build nothing after it.</summary>
    public static DecoderGraphOptions UpToHiddenState(int index, DataType elementType = DataType.Float) =>
        new() { HiddenStates = [index], Logits = false, ElementType = elementType };

    /// <summary>How many decoder layers the graph needs, and whether it needs the final norm.</summary>
    public (int Layers, bool FinalNorm) Extent(DecoderConfig config)
    {
        int n = config.NumHiddenLayers;
        if (Logits || HiddenStates.Contains(n)) return (n, true);
        return (HiddenStates.Max(), false);
    }
}

/// <summary>A built decoder graph: the model, the parameters to bind by name, and its output names.</summary>
public sealed record DecoderGraph(ModelProto Model, IReadOnlyList<ParameterSpec> Parameters, int Layers,
    IReadOnlyDictionary<int, string> HiddenStates, string? Logits)
{
    public const string InputIds = "input_ids";
    public const string InputsEmbeds = "inputs_embeds";
    public const string LogitsName = "logits";
    public static string HiddenStateName(int index) => $"hidden_states.{index}";

    /// <summary>The LoRA adapters the graph takes as inputs besides <see cref="Parameters"/> (none without <see cref="DecoderGraphOptions.Lora"/>).</summary>
    public IReadOnlyList<ParameterSpec> Adapters { get; init; } = [];

    /// <summary>The graph's token input: <see cref="InputIds"/> or <see cref="InputsEmbeds"/>.</summary>
    public string Input => Model.Graph.Input[0].Name;

    /// <summary>Symbolic dimension names of the token input.</summary>
    public static readonly Dim Batch = "batch", Sequence = "seq";
}
