using AlignThenUnlearn.Autodiff;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Onnx;
using Onnx;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Unlearning;

/// <summary>The joint graphs of Align-then-Unlearn (DESIGN.md section 1). Both run the LLM's training lowering up to
/// hidden_states[layer] (later layers are never built) and the head after it:
/// <list type="bullet">
/// <item><b>alignment</b>: loss = -mean over positions with a full window of cos(head(h), window_embedding); gradients for
/// the head only (the LLM is an input like any frozen value and gets no backward nodes);</item>
/// <item><b>unlearning</b>: loss = mean over real tokens of relu(cos(head(h), target) - tau), tau a graph input; gradients for
/// the LLM's embeddings and layers below <c>layer</c>; the head is frozen and runs without dropout.</item>
/// </list></summary>
public static class UnlearningGraphs
{
    public const string WindowEmbeddings = "window_embeddings", WindowFull = "window_full", TokenMask = "token_mask",
        TargetEmbedding = "target_embedding", Tau = "tau", Loss = "loss", MeanCosine = "mean_cosine";

    public sealed record Graph(GradientGraph Training, IReadOnlyList<ParameterSpec> LlmParameters, IReadOnlyList<ParameterSpec> HeadParameters);

    public static Graph Alignment(DecoderConfig config, int layer, IPredictionHead head, int encoderDim)
    {
        var (model, b, hidden, decoder) = Llm(config, layer);
        var prediction = head.Emit(b, hidden, training: true);
        var reference = b.Input(WindowEmbeddings, DataType.Float, DecoderGraph.Batch, DecoderGraph.Sequence, encoderDim);
        var full = b.Input(WindowFull, DataType.Float, DecoderGraph.Batch, DecoderGraph.Sequence);
        var cosine = Losses.CosineSimilarity(b, prediction, reference);
        var meanCosine = Output(b, Losses.WeightedMean(b, cosine, full), MeanCosine);
        var loss = Output(b, b.Neg(meanCosine), Loss);
        return new Graph(Gradients.Build(model, loss, head.Parameters.Select(p => p.Name)), decoder.Parameters, head.Parameters);
    }

    /// <summary><paramref name="trainable"/> defaults to the embeddings and every layer the graph builds.</summary>
    public static Graph Unlearning(DecoderConfig config, int layer, IPredictionHead head, int encoderDim, IEnumerable<string>? trainable = null)
    {
        var (model, b, hidden, decoder) = Llm(config, layer);
        var prediction = head.Emit(b, hidden, training: false);
        var target = b.Input(TargetEmbedding, DataType.Float, encoderDim);
        var tau = b.Input(Tau, DataType.Float);
        var mask = b.Input(TokenMask, DataType.Float, DecoderGraph.Batch, DecoderGraph.Sequence);
        Output(b, Losses.WeightedMean(b, Losses.CosineSimilarity(b, prediction, target), mask), MeanCosine);
        var loss = Output(b, Losses.MarginLoss(b, prediction, target, tau, mask), Loss);
        var wrt = trainable ?? decoder.Parameters.Select(p => p.Name);
        return new Graph(Gradients.Build(model, loss, wrt), decoder.Parameters, head.Parameters);
    }

    static (ModelProto Model, GraphBuilder B, string Hidden, DecoderGraph Decoder) Llm(DecoderConfig config, int layer)
    {
        if (layer < 1 || layer > config.NumHiddenLayers)
            throw new ArgumentException($"layer {layer}: the head reads hidden_states[1..{config.NumHiddenLayers}] of this model");
        var decoder = DecoderBuilder.Build(config, DecoderGraphOptions.UpToHiddenState(layer));
        var model = decoder.Model.Clone();
        var b = new GraphBuilder(model.Graph, Opset.DefaultDomainVersion(model));
        return (model, b, decoder.HiddenStates[layer], decoder);
    }

    static string Output(GraphBuilder b, string value, string name)
    {
        b.Node("Identity", [value], 1, name: name, outputNames: [name]);
        b.Output(name, DataType.Float);
        return name;
    }
}
