using AlignThenUnlearn.Onnx;
using Onnx;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Models;

/// <summary>How the decoder's modules become ONNX nodes. The model definition (<see cref="DecoderBuilder"/>) is
/// shared; a lowering decides the graph's inputs and outputs, where parameters come from, and how RMSNorm and
/// the attention core (rotary embedding, masking, softmax, KV cache) are written.</summary>
public abstract class DecoderLowering
{
    protected internal GraphBuilder B { get; private set; } = null!;
    protected DecoderConfig Config { get; private set; } = null!;
    public abstract DataType ElementType { get; }
    public virtual int OpsetVersion => Opset.Default;

    internal void Attach(GraphBuilder builder, DecoderConfig config) => (B, Config) = (builder, config);

    /// <summary>Layers to build, whether the final norm is needed, whether logits are output.</summary>
    public abstract (int Layers, bool FinalNorm, bool Logits) Extent(DecoderConfig config);

    /// <summary>Declares the token inputs and returns the embedded sequence [batch, seq, hidden].</summary>
    public abstract string Begin(Func<string, string> embedTokens);

    public abstract void DeclareParameter(ParameterSpec spec);

    /// <summary>y = x @ W^T for a declared weight W [out, in].</summary>
    public virtual string Linear(string x, ParameterSpec weight) => B.MatMul(x, B.Transpose(weight.Name, 1, 0));
    public abstract string RmsNorm(string x, string weight);

    /// <summary>Rotary embedding, causal attention and head merging: [batch, seq, heads*head_dim] q/k/v in, context out.</summary>
    public abstract string SelfAttention(string q, string k, string v, int layer);

    /// <summary>The output <paramref name="y"/> of projection <paramref name="module"/> (e.g. <c>model.layers.0.self_attn.q_proj</c>)
    /// on input <paramref name="x"/>, with whatever the lowering adds to it (LoRA adapters); unchanged by default.</summary>
    public virtual string Adapt(string x, string y, string module, int layer, long outFeatures, long inFeatures) => y;

    public virtual void HiddenState(int index, string value) { }
    /// <summary>The positions of the final hidden states [batch, seq, hidden] whose logits are computed: all of them by default.</summary>
    public virtual string LogitPositions(string h) => h;
    public abstract void Logits(string value);
    public abstract DecoderGraph Finish(IReadOnlyList<ParameterSpec> parameters, int layers);

    protected int HeadDim => Config.HeadDimension;

    /// <summary>Where precision matters (norm statistics, softmax, rotary angles): float32, or float64 for float64 runs.</summary>
    protected DataType ComputeType => ElementType == DataType.Double ? DataType.Double : DataType.Float;
    protected string ToComputeType(string x) => ElementType == ComputeType ? x : B.Cast(x, ComputeType);
    protected string ToRunType(string x) => ElementType == ComputeType ? x : B.Cast(x, ElementType);

    /// <summary>Records a shape that shape inference cannot derive, so gradient rules and readers see symbolic dims.</summary>
    protected string Declare(string value, DataType type, params Dim[] shape)
    {
        B.Graph.ValueInfo.Add(GraphBuilder.ValueInfo(value, type, shape));
        return value;
    }

    /// <summary>inv_freq = theta^(-2j/d), j = 0 .. d/2-1 (Hugging Face's rotate-half convention).</summary>
    protected double[] InverseFrequencies() =>
        Enumerable.Range(0, HeadDim / 2).Select(j => Math.Pow(Config.RopeTheta, -2.0 * j / HeadDim)).ToArray();
}
