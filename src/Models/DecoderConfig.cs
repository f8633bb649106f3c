namespace AlignThenUnlearn.Models;

/// <summary>The Llama-family families this project builds. Each is a small set of differences over
/// one shared decoder (DESIGN.md section 4).</summary>
public enum ModelFamily { Llama, Mistral, Qwen2, Phi3 }

/// <summary>Everything the decoder builder needs to know about a checkpoint, in Hugging Face's terms
/// (field names follow <c>config.json</c>).</summary>
public sealed record DecoderConfig
{
    public required ModelFamily Family { get; init; }
    public required int HiddenSize { get; init; }
    public required int NumHiddenLayers { get; init; }
    public required int NumAttentionHeads { get; init; }
    public required int NumKeyValueHeads { get; init; }
    public required int IntermediateSize { get; init; }
    public required int VocabSize { get; init; }
    public double RmsNormEps { get; init; } = 1e-5;
    public double RopeTheta { get; init; } = 10000;
    public int? HeadDim { get; init; }
    public int MaxPositionEmbeddings { get; init; } = 4096;
    public bool TieWordEmbeddings { get; init; }
    /// <summary>qwen2: q/k/v projections carry biases.</summary>
    public bool AttentionBias { get; init; }
    /// <summary>Sliding-window attention span, when the checkpoint uses one (null: full attention).</summary>
    public int? SlidingWindow { get; init; }
    public int? BosTokenId { get; init; }
    public int[] EosTokenIds { get; init; } = [];
    public int? PadTokenId { get; init; }
    /// <summary>The dtype the checkpoint's weights are stored in (<c>torch_dtype</c>, e.g. "bfloat16"), when stated.</summary>
    public string? TorchDtype { get; init; }

    public int HeadDimension => HeadDim ?? HiddenSize / NumAttentionHeads;
    public int GroupSize => NumAttentionHeads / NumKeyValueHeads;

    /// <summary>Hugging Face's <c>model_type</c> string of the family.</summary>
    public string ModelType => Family switch
    {
        ModelFamily.Phi3 => "phi3",
        ModelFamily.Llama => "llama",
        ModelFamily.Mistral => "mistral",
        ModelFamily.Qwen2 => "qwen2",
        _ => throw new ArgumentOutOfRangeException(),
    };
}
