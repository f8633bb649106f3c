using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Models;

/// <summary>Low-rank adapters (LoRA, as PEFT applies them) on attention projections of the training lowering:
/// <c>y = x W^T + (alpha / rank) * x A^T B^T</c> with A [rank, in] and B [out, rank], dropout 0. RWKU's LoRA runs use rank 8,
/// alpha 16 on q_proj and v_proj. Phi-3's fused qkv_proj gets the adapters of its q and v row blocks, named as if the
/// projections were separate (<c>...self_attn.q_proj.lora_A.weight</c>), so one adapter file reads the same for every family.</summary>
public sealed record LoraOptions
{
    public int Rank { get; init; } = 8;
    public double Alpha { get; init; } = 16;
    /// <summary>Projections that get adapters: any of q_proj, k_proj, v_proj.</summary>
    public IReadOnlyList<string> Targets { get; init; } = ["q_proj", "v_proj"];
    /// <summary>Only these decoder layers get adapters (RWKU's <c>--train_layers</c>); null: every layer the graph builds.</summary>
    public LayerRange? Layers { get; init; }

    public static readonly IReadOnlyList<string> SupportedTargets = ["q_proj", "k_proj", "v_proj"];

    public double Scale => Alpha / Rank;

    public static string AName(string module) => $"{module}.lora_A.weight";
    public static string BName(string module) => $"{module}.lora_B.weight";

    public void Validate()
    {
        if (Rank < 1) throw new ArgumentException($"LoRA rank {Rank}: must be positive");
        if (!(Alpha > 0)) throw new ArgumentException($"LoRA alpha {Alpha}: must be positive");
        foreach (var t in Targets)
            if (!SupportedTargets.Contains(t)) throw new ArgumentException($"LoRA target '{t}': adapters go on {string.Join(", ", SupportedTargets)}");
    }

    /// <summary>Whether the projection <paramref name="projection"/> (e.g. <c>q_proj</c>) of <paramref name="layer"/> gets an adapter.</summary>
    public bool Adapts(int layer, string projection) => Targets.Contains(projection) && (Layers?.Contains(layer) ?? true);

    /// <summary>The adapters a decoder of <paramref name="config"/> gets: per layer and target, A [rank, in] then B [out, rank].</summary>
    public IReadOnlyList<ParameterSpec> Adapters(DecoderConfig config, DataType elementType = DataType.Float)
    {
        var specs = new List<ParameterSpec>();
        for (int layer = 0; layer < config.NumHiddenLayers; layer++)
            foreach (var target in SupportedTargets.Where(t => Adapts(layer, t)))
            {
                var module = $"model.layers.{layer}.self_attn.{target}";
                specs.Add(new ParameterSpec(AName(module), [Rank, config.HiddenSize], elementType));
                specs.Add(new ParameterSpec(BName(module), [OutFeatures(config, target), Rank], elementType));
            }
        return specs;
    }

    static long OutFeatures(DecoderConfig config, string target) =>
        target == "q_proj" ? config.NumAttentionHeads * config.HeadDimension : config.NumKeyValueHeads * config.HeadDimension;

    /// <summary>The checkpoint weight an adapter changes and the first of its rows: the projection's own weight, or the
    /// row block of Phi-3's qkv_proj (q rows, then k, then v).</summary>
    public static (string Weight, long FirstRow) MergeTarget(DecoderConfig config, string module)
    {
        var cut = module.LastIndexOf('.');
        var (prefix, target) = (module[..cut], module[(cut + 1)..]);
        if (config.Family != ModelFamily.Phi3) return ($"{module}.weight", 0);
        long queries = OutFeatures(config, "q_proj"), keyValues = OutFeatures(config, "k_proj");
        return ($"{prefix}.qkv_proj.weight", target switch { "q_proj" => 0, "k_proj" => queries, _ => queries + keyValues });
    }

    /// <summary>W[firstRow .. firstRow + out, :] += scale * B A on a row-major [rows, in] weight.</summary>
    public static void AddDelta(Span<float> weight, long inFeatures, long firstRow, ReadOnlySpan<float> a, ReadOnlySpan<float> b, int rank, double scale)
    {
        long outFeatures = b.Length / rank;
        for (long o = 0; o < outFeatures; o++)
            for (long i = 0; i < inFeatures; i++)
            {
                double sum = 0;
                for (int r = 0; r < rank; r++) sum += (double)b[(int)(o * rank + r)] * a[(int)(r * inFeatures + i)];
                weight[(int)((firstRow + o) * inFeatures + i)] += (float)(scale * sum);
            }
    }
}

/// <summary>Decoder layers <c>First..Last</c>, both included.</summary>
public sealed record LayerRange(int First, int Last)
{
    public bool Contains(int layer) => layer >= First && layer <= Last;

    /// <summary>Parses <c>a-b</c> or a single layer <c>a</c>.</summary>
    public static LayerRange Parse(string text)
    {
        var parts = text.Split('-');
        if (parts.Length is 1 or 2 && parts.All(p => int.TryParse(p, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out _)))
        {
            var range = new LayerRange(int.Parse(parts[0], System.Globalization.CultureInfo.InvariantCulture), int.Parse(parts[^1], System.Globalization.CultureInfo.InvariantCulture));
            if (range.First <= range.Last) return range;
        }
        throw new ArgumentException($"layers '{text}': expected a range such as 4-7 or a single layer such as 5");
    }

    public void Check(DecoderConfig config)
    {
        if (Last >= config.NumHiddenLayers)
            throw new ArgumentException($"layers {First}-{Last}: the model has layers 0-{config.NumHiddenLayers - 1}");
    }

    /// <summary>The parameters of these layers (<c>model.layers.{i}.</c>) among <paramref name="names"/>: full fine-tuning
    /// of a layer subset trains these and nothing else (not the embeddings, final norm or lm_head).</summary>
    public IReadOnlyList<string> Select(IEnumerable<string> names) =>
        [.. names.Where(n => LayerOf(n) is int layer && Contains(layer))];

    /// <summary>The decoder layer a parameter belongs to, or null (embeddings, final norm, lm_head).</summary>
    public static int? LayerOf(string name)
    {
        const string prefix = "model.layers.";
        if (!name.StartsWith(prefix, StringComparison.Ordinal)) return null;
        var end = name.IndexOf('.', prefix.Length);
        return end > prefix.Length && int.TryParse(name.AsSpan(prefix.Length, end - prefix.Length), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var layer) ? layer : null;
    }

    public override string ToString() => $"{First}-{Last}";
}
