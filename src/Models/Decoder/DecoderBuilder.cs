using AlignThenUnlearn.Onnx;
using Onnx;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Models;

/// <summary>The Llama-family decoder (DESIGN.md section 4), defined once and emitted through a
/// <see cref="DecoderLowering"/>: <see cref="TrainingLowering"/> (primitive ops the autodiff differentiates,
/// parameters as graph inputs) or <see cref="InferenceLowering"/> (fused opset-23 operators, KV cache, weights as
/// initializers). Parameters are named as in Hugging Face checkpoints, weights [out, in] with y = x @ W^T. One
/// method per module, as in Hugging Face's modeling_llama.py; a family is a small set of differences: qwen2 adds
/// q/k/v biases (<see cref="DecoderConfig.AttentionBias"/>) and phi3 fuses projections (<see cref="Phi3DecoderBuilder"/>).</summary>
public class DecoderBuilder
{
    protected DecoderConfig Config { get; }
    protected DecoderLowering Lowering { get; }
    protected GraphBuilder B => Lowering.B;
    readonly List<ParameterSpec> _parameters = [];

    protected DecoderBuilder(DecoderConfig config, DecoderLowering lowering)
    {
        Validate(config, lowering.ElementType);
        Config = config;
        Lowering = lowering;
        lowering.Attach(new GraphBuilder($"{config.ModelType}_decoder", lowering.OpsetVersion), config);
    }

    static DecoderBuilder For(DecoderConfig config, DecoderLowering lowering) =>
        config.Family == ModelFamily.Phi3 ? new Phi3DecoderBuilder(config, lowering) : new DecoderBuilder(config, lowering);

    /// <summary>The training lowering.</summary>
    public static DecoderGraph Build(DecoderConfig config, DecoderGraphOptions? options = null) =>
        For(config, new TrainingLowering(options ?? new DecoderGraphOptions())).Model();

    /// <summary>The inference lowering with a KV cache; <paramref name="weights"/> supplies each parameter's initializer.</summary>
    public static DecoderGraph BuildInference(DecoderConfig config, InferenceGraphOptions options, Func<ParameterSpec, TensorProto> weights) =>
        For(config, new InferenceLowering(options, weights)).Model();

    /// <summary>The parameters a full decoder (every layer, lm_head unless tied) of this configuration has.</summary>
    public static IReadOnlyList<ParameterSpec> Parameters(DecoderConfig config, DataType elementType = DataType.Float) =>
        Build(config, new DecoderGraphOptions { ElementType = elementType }).Parameters;

    int Hidden => Config.HiddenSize;
    protected int QueriesSize => Config.NumAttentionHeads * Config.HeadDimension;
    protected int KeyValueSize => Config.NumKeyValueHeads * Config.HeadDimension;

    // ---- model ----

    DecoderGraph Model()
    {
        var (layers, finalNorm, logits) = Lowering.Extent(Config);
        var h = Lowering.Begin(EmbedTokens);
        Lowering.HiddenState(0, h);
        for (int i = 0; i < layers; i++)
        {
            h = DecoderLayer(h, i);
            if (i + 1 < Config.NumHiddenLayers) Lowering.HiddenState(i + 1, h);
        }
        if (finalNorm)
        {
            h = RmsNorm(h, "model.norm.weight");
            Lowering.HiddenState(Config.NumHiddenLayers, h);
            if (logits) Lowering.Logits(LmHead(Lowering.LogitPositions(h)));
        }
        return Lowering.Finish([.. _parameters], layers);
    }

    string EmbedTokens(string inputIds) => B.Gather(Parameter("model.embed_tokens.weight", Config.VocabSize, Hidden), inputIds);

    string LmHead(string h) =>
        Linear(h, Config.TieWordEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight", Config.VocabSize, Hidden, projection: false);

    // ---- decoder layer ----

    string DecoderLayer(string x, int layer)
    {
        var prefix = $"model.layers.{layer}";
        var attention = Attention(RmsNorm(x, $"{prefix}.input_layernorm.weight"), $"{prefix}.self_attn", layer);
        x = B.Add(x, attention);
        var mlp = Mlp(RmsNorm(x, $"{prefix}.post_attention_layernorm.weight"), $"{prefix}.mlp");
        return B.Add(x, mlp);
    }

    string Attention(string x, string prefix, int layer)
    {
        var (q, k, v) = QkvProj(x, prefix, layer);
        var context = Lowering.SelfAttention(q, k, v, layer);                               // [batch, seq, heads * head_dim]
        return Linear(context, $"{prefix}.o_proj.weight", Hidden, QueriesSize);
    }

    /// <summary>q, k, v as [batch, seq, heads * head_dim]: separate projections, with biases where the family has them.</summary>
    protected virtual (string Q, string K, string V) QkvProj(string x, string prefix, int layer)
    {
        string Proj(string proj, long outFeatures) => Adapted(x,
            Linear(x, $"{prefix}.{proj}.weight", outFeatures, Hidden, Config.AttentionBias ? $"{prefix}.{proj}.bias" : null), prefix, proj, layer, outFeatures);
        return (Proj("q_proj", QueriesSize), Proj("k_proj", KeyValueSize), Proj("v_proj", KeyValueSize));
    }

    /// <summary>A projection's output with what the lowering adds to it (LoRA adapters in training).</summary>
    protected string Adapted(string x, string y, string prefix, string projection, int layer, long outFeatures) =>
        Lowering.Adapt(x, y, $"{prefix}.{projection}", layer, outFeatures, Hidden);

    string Mlp(string x, string prefix)
    {
        var (gate, up) = GateUpProj(x, prefix);
        return Linear(B.Mul(Silu(gate), up), $"{prefix}.down_proj.weight", Hidden, Config.IntermediateSize);
    }

    protected virtual (string Gate, string Up) GateUpProj(string x, string prefix) =>
        (Linear(x, $"{prefix}.gate_proj.weight", Config.IntermediateSize, Hidden),
         Linear(x, $"{prefix}.up_proj.weight", Config.IntermediateSize, Hidden));

    // ---- building blocks ----

    /// <summary>y = x @ W^T (+ b) with W [out, in] as stored in the checkpoint; <paramref name="projection"/>: W is a
    /// decoder layer's projection (lm_head is not).</summary>
    protected string Linear(string x, string weight, long outFeatures, long inFeatures, string? bias = null, bool projection = true)
    {
        var y = Lowering.Linear(x, Declare(weight, [outFeatures, inFeatures], projection));
        return bias is null ? y : B.Add(y, Parameter(bias, outFeatures));
    }

    string RmsNorm(string x, string weight) => Lowering.RmsNorm(x, Parameter(weight, Hidden));

    string Silu(string x) => B.Mul(x, B.Sigmoid(x));

    /// <summary>Declares a parameter once (tied embeddings reuse it) and returns its name.</summary>
    protected string Parameter(string name, params long[] shape) => Declare(name, shape, projection: false).Name;

    ParameterSpec Declare(string name, long[] shape, bool projection)
    {
        if (_parameters.Find(p => p.Name == name) is { } known)
            return known.Shape.SequenceEqual(shape) ? known
                : throw new InvalidOperationException($"parameter '{name}' is used with shapes [{string.Join(",", known.Shape)}] and [{string.Join(",", shape)}]");
        var spec = new ParameterSpec(name, shape, Lowering.ElementType, projection);
        Lowering.DeclareParameter(spec);
        _parameters.Add(spec);
        return spec;
    }

    static void Validate(DecoderConfig c, DataType type)
    {
        void Require(bool ok, string what) { if (!ok) throw new ArgumentException($"{c.ModelType} decoder: {what}"); }
        Require(type is DataType.Float or DataType.Double or DataType.Float16, $"element type {type} is not supported (float, double or float16)");
        Require(c.NumHiddenLayers > 0 && c.HiddenSize > 0 && c.IntermediateSize > 0 && c.VocabSize > 0, "sizes must be positive");
        Require(c.HeadDim is not null || c.HiddenSize % c.NumAttentionHeads == 0, $"hidden size {c.HiddenSize} is not a multiple of {c.NumAttentionHeads} heads");
        Require(c.HeadDimension % 2 == 0, $"head dimension {c.HeadDimension} must be even for rotary embeddings");
        Require(c.NumKeyValueHeads > 0 && c.NumAttentionHeads % c.NumKeyValueHeads == 0,
            $"{c.NumAttentionHeads} attention heads cannot be grouped over {c.NumKeyValueHeads} key/value heads");
        Require(!(c.Family == ModelFamily.Phi3 && c.AttentionBias), "phi3's fused qkv_proj has no bias");
    }
}

/// <summary>Phi-3 is Mistral with fused projections (as Hugging Face's modular_phi3.py states it): qkv_proj holds
/// the rows of q for all heads, then k, then v; gate_up_proj holds gate, then up.</summary>
public sealed class Phi3DecoderBuilder : DecoderBuilder
{
    internal Phi3DecoderBuilder(DecoderConfig config, DecoderLowering lowering) : base(config, lowering) { }

    /// <summary>Adapters act on the q, k and v row blocks of qkv_proj as they would on separate projections.</summary>
    protected override (string Q, string K, string V) QkvProj(string x, string prefix, int layer)
    {
        var qkv = Linear(x, $"{prefix}.qkv_proj.weight", QueriesSize + 2 * KeyValueSize, Config.HiddenSize);
        var parts = B.Node("Split", [qkv, B.Ints(QueriesSize, KeyValueSize, KeyValueSize)], 3, [Attr.Int("axis", -1)]);
        return (Adapted(x, parts[0], prefix, "q_proj", layer, QueriesSize), Adapted(x, parts[1], prefix, "k_proj", layer, KeyValueSize),
                Adapted(x, parts[2], prefix, "v_proj", layer, KeyValueSize));
    }

    protected override (string Gate, string Up) GateUpProj(string x, string prefix)
    {
        var gateUp = Linear(x, $"{prefix}.gate_up_proj.weight", 2L * Config.IntermediateSize, Config.HiddenSize);
        var parts = B.Node("Split", [gateUp, B.Ints(Config.IntermediateSize, Config.IntermediateSize)], 2, [Attr.Int("axis", -1)]);
        return (parts[0], parts[1]);
    }
}
