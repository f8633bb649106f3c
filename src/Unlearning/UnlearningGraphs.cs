using AlignThenUnlearn.Autodiff;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Onnx;
using AlignThenUnlearn.Runtime;
using Onnx;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Unlearning;

/// <summary>The joint graphs of Align-then-Unlearn (DESIGN.md section 1). Both run the LLM's training lowering up to
/// hidden_states[layer] (later layers are never built) and the head after it:
/// <list type="bullet">
/// <item><b>alignment</b>: loss = -mean over positions with a full window of cos(head(h), window_embedding); gradients for
/// the head only (the LLM is an input like any frozen value and gets no backward nodes);</item>
/// <item><b>unlearning</b>: loss = mean over the positions of <see cref="TokenMask"/> of relu(cos(head(h), target) - tau),
/// tau a graph input; gradients for the LLM's embeddings and layers below <c>layer</c>; the head is frozen and runs
/// without dropout.</item>
/// </list>
/// In both, the head's cross-attention reads only the keys of <see cref="TokenMask"/>: the batcher sets it to the real
/// tokens (padding masked, sequences "chunks") or to every position (the authors' unmasked run, sequences "first").</summary>
public static class UnlearningGraphs
{
    public const string WindowEmbeddings = "window_embeddings", WindowFull = "window_full", TokenMask = "token_mask",
        TargetEmbedding = "target_embedding", Tau = "tau", Loss = "loss", MeanCosine = "mean_cosine";

    /// <summary>A head and the hidden-state index it reads (Hugging Face's <c>hidden_states[layer]</c>).</summary>
    public sealed record HeadAt(int Layer, IPredictionHead Head);

    public sealed record Graph(GradientGraph Training, IReadOnlyList<ParameterSpec> LlmParameters, IReadOnlyList<ParameterSpec> HeadParameters);

    public static Graph Alignment(DecoderConfig config, int layer, IPredictionHead head, int encoderDim) =>
        Alignment(config, [new HeadAt(layer, head)], encoderDim);

    /// <summary>Several heads (one per layer) share the windows; their losses are summed and <see cref="MeanCosine"/> is
    /// the mean over heads.</summary>
    /// <param name="fromHiddenStates">The graph takes each head's hidden states as an input named
    /// <see cref="DecoderGraph.HiddenStateName"/>(layer) [batch, seq, hidden] instead of computing them: during alignment
    /// the LLM is frozen, so they are computed once per phase (<see cref="HiddenStateCache"/>) and the graph has no LLM.</param>
    public static Graph Alignment(DecoderConfig config, IReadOnlyList<HeadAt> heads, int encoderDim, bool fromHiddenStates = false)
    {
        var (model, b, hidden, decoder) = fromHiddenStates ? HiddenStateInputs(config, heads) : Llm(config, heads);
        var reference = b.Input(WindowEmbeddings, DataType.Float, DecoderGraph.Batch, DecoderGraph.Sequence, encoderDim);
        var full = b.Input(WindowFull, DataType.Float, DecoderGraph.Batch, DecoderGraph.Sequence);
        var mask = b.Input(TokenMask, DataType.Float, DecoderGraph.Batch, DecoderGraph.Sequence);
        var cosines = heads.Select((h, i) => Losses.WeightedMean(b, Losses.CosineSimilarity(b, h.Head.Emit(b, hidden[i], training: true, mask), reference), full,
            MicroBatching.TotalInput(b, BatchCount.Positions, WindowFull))).ToArray();
        Output(b, MeanOf(b, cosines), MeanCosine);
        var loss = Output(b, b.Neg(b.Sum(cosines)), Loss);
        return new Graph(Gradients.Build(model, loss, heads.SelectMany(h => h.Head.Parameters).Select(p => p.Name)), decoder.Parameters,
            heads.SelectMany(h => h.Head.Parameters).ToList());
    }

    /// <summary><paramref name="trainable"/> defaults to the embeddings and every layer the graph builds.</summary>
    public static Graph Unlearning(DecoderConfig config, int layer, IPredictionHead head, int encoderDim, IEnumerable<string>? trainable = null) =>
        Unlearning(config, [new HeadAt(layer, head)], encoderDim, trainable);

    /// <summary>Several heads: the margin losses are summed and <see cref="MeanCosine"/> is the mean over heads.</summary>
    public static Graph Unlearning(DecoderConfig config, IReadOnlyList<HeadAt> heads, int encoderDim, IEnumerable<string>? trainable = null)
    {
        var (model, b, hidden, decoder) = Llm(config, heads);
        var target = b.Input(TargetEmbedding, DataType.Float, encoderDim);
        var tau = b.Input(Tau, DataType.Float);
        var mask = b.Input(TokenMask, DataType.Float, DecoderGraph.Batch, DecoderGraph.Sequence);
        var predictions = heads.Select((h, i) => h.Head.Emit(b, hidden[i], training: false, mask)).ToArray();
        Output(b, MeanOf(b, predictions.Select(p => Losses.WeightedMean(b, Losses.CosineSimilarity(b, p, target), mask,
            MicroBatching.TotalInput(b, BatchCount.Positions, TokenMask))).ToArray()), MeanCosine);
        var loss = Output(b, b.Sum(predictions.Select(p => Losses.MarginLoss(b, p, target, tau, mask)).ToArray()), Loss);
        var wrt = trainable ?? decoder.Parameters.Select(p => p.Name);
        return new Graph(Gradients.Build(model, loss, wrt), decoder.Parameters, heads.SelectMany(h => h.Head.Parameters).ToList());
    }

    /// <summary>The LLM's training lowering up to the deepest layer a head reads; the hidden state each head reads.</summary>
    static (ModelProto Model, GraphBuilder B, string[] Hidden, DecoderGraph Decoder) Llm(DecoderConfig config, IReadOnlyList<HeadAt> heads)
    {
        CheckLayers(config, heads);
        var decoder = DecoderBuilder.Build(config, new DecoderGraphOptions { HiddenStates = heads.Select(h => h.Layer).ToArray(), Logits = false });
        var model = decoder.Model.Clone();
        model.Graph.Output.Clear();   // the hidden states feed the heads; as outputs ONNX Runtime would copy them out each step
        var b = new GraphBuilder(model.Graph, Opset.DefaultDomainVersion(model));
        return (model, b, heads.Select(h => decoder.HiddenStates[h.Layer]).ToArray(), decoder);
    }

    static void CheckLayers(DecoderConfig config, IReadOnlyList<HeadAt> heads)
    {
        if (heads.Count == 0) throw new ArgumentException("at least one head");
        foreach (var layer in heads.Select(h => h.Layer))
            if (layer < 1 || layer > config.NumHiddenLayers)
                throw new ArgumentException($"layer {layer}: the head reads hidden_states[1..{config.NumHiddenLayers}] of this model");
        if (heads.Select(h => h.Layer).Distinct().Count() != heads.Count) throw new ArgumentException("one head per layer");
    }

    /// <summary>A graph whose inputs are the hidden states the heads read, as the LLM's graph would output them; its
    /// decoder has no parameters.</summary>
    static (ModelProto Model, GraphBuilder B, string[] Hidden, DecoderGraph Decoder) HiddenStateInputs(DecoderConfig config, IReadOnlyList<HeadAt> heads)
    {
        CheckLayers(config, heads);
        var b = new GraphBuilder("head_alignment");
        var hidden = heads.Select(h => b.Input(DecoderGraph.HiddenStateName(h.Layer), DataType.Float, DecoderGraph.Batch, DecoderGraph.Sequence, config.HiddenSize)).ToArray();
        var model = b.ToModel();   // the builder keeps adding to the model's graph
        return (model, b, hidden, new DecoderGraph(model, [], 0, heads.ToDictionary(h => h.Layer, h => DecoderGraph.HiddenStateName(h.Layer)), null));
    }

    static string MeanOf(GraphBuilder b, string[] values) =>
        values.Length == 1 ? values[0] : b.Div(b.Sum(values), b.Scalar(values.Length, DataType.Float));

    static string Output(GraphBuilder b, string value, string name)
    {
        b.Node("Identity", [value], 1, name: name, outputNames: [name]);
        b.Output(name, DataType.Float);
        return name;
    }
}
