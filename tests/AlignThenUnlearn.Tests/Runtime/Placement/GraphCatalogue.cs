using AlignThenUnlearn.Models;
using AlignThenUnlearn.Onnx;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Tests.Support;
using AlignThenUnlearn.Unlearning;
using Onnx;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Tests.Runtime.Placement;

/// <summary>What a graph does for the product; training steps are held to the copy budget.</summary>
public enum GraphRole { Inference, Forward, TrainingStep, Optimizer, Encoder }

/// <summary>One graph the product opens in a session, built as the product builds it.</summary>
public sealed record CatalogueGraph(string Name, GraphRole Role, ModelProto Model);

/// <summary>Every graph the product runs, for the tiny configurations in models/ (the same builders the commands use,
/// with zero weights where a graph embeds them): inference f32/f16/int4, the forward graph of an artifact folder, the
/// hidden-state graph of the alignment cache, reference log-probabilities, cross-entropy (full and LoRA), the
/// token-level methods, Align-then-Unlearn's alignment (with the LLM, and from cached hidden states) and unlearning with
/// one and two heads, AdamW and SGD, and the shipped all-MiniLM-L6-v2 encoder.</summary>
public static class GraphCatalogue
{
    public static readonly string[] Configurations = ["tiny-llama-gqa", "tiny-phi3", "tiny-qwen2"];
    /// <summary>The toy preset's head (one layer) on a MiniLM-sized window embedding.</summary>
    const int EncoderDim = 384;

    public static DecoderConfig Config(string name) => HfConfig.Load(RepositoryFiles.Path("models", name + ".json"));

    public static IEnumerable<CatalogueGraph> All(string minilmFolder)
    {
        foreach (var name in Configurations)
            foreach (var graph in OfConfiguration(name, Config(name)))
                yield return graph;
        yield return new CatalogueGraph("minilm encoder", GraphRole.Encoder, ModelFile.Load(Path.Combine(minilmFolder, EncoderFolder.ModelFile)));
    }

    public static IEnumerable<CatalogueGraph> OfConfiguration(string name, DecoderConfig config)
    {
        CatalogueGraph G(string what, GraphRole role, ModelProto model) => new($"{name} {what}", role, model);
        foreach (var (what, type, int4) in new[] { ("f32", DataType.Float, (int?)null), ("f16", DataType.Float16, null), ("int4", DataType.Float, 32) })
            yield return G($"inference {what}", GraphRole.Inference, DecoderBuilder.BuildInference(config,
                new InferenceGraphOptions { ElementType = type, MaxSequenceLength = 64, Int4BlockSize = int4 }, Zeros).Model);
        yield return G("forward", GraphRole.Forward, DecoderBuilder.Build(config, new DecoderGraphOptions
            { HiddenStates = Enumerable.Range(0, config.NumHiddenLayers + 1).ToArray() }).Model);
        yield return G("hidden states", GraphRole.Forward, DecoderBuilder.Build(config, new DecoderGraphOptions
            { HiddenStates = [config.NumHiddenLayers], Logits = false }).Model);
        yield return G("reference log-probs", GraphRole.Forward, ReferenceLogProbabilities.Graph(config));

        var all = DecoderBuilder.Parameters(config).Select(p => p.Name).ToList();
        yield return G("cross-entropy", GraphRole.TrainingStep, CausalLmGraph.Build(config, all).Training.Model);
        var lora = new LoraOptions();
        // RT's loss is cross-entropy on the answers.
        yield return G("cross-entropy LoRA", GraphRole.TrainingStep, ((TokenLossMethod)MethodRegistry.Get(RejectionTuning.Id)).Graph(config,
            lora.Adapters(config).Select(p => p.Name), new DecoderGraphOptions { Lora = lora }).Training.Model);
        // Every token-level method of the registry (GA, GA*, GradDiff, NPO, DPO, RT, SimNPO, ...).
        foreach (var method in MethodRegistry.Trained.OfType<TokenLossMethod>())
            yield return G(method.DisplayName, GraphRole.TrainingStep, method.Graph(config, all).Training.Model);

        int top = config.NumHiddenLayers;
        var one = Heads(config, top);
        var two = Heads(config, top - 1, top);
        yield return G("alignment", GraphRole.TrainingStep, UnlearningGraphs.Alignment(config, one, EncoderDim).Training.Model);
        yield return G("alignment from hidden states", GraphRole.TrainingStep, UnlearningGraphs.Alignment(config, one, EncoderDim, fromHiddenStates: true).Training.Model);
        yield return G("alignment 2 heads from hidden states", GraphRole.TrainingStep, UnlearningGraphs.Alignment(config, two, EncoderDim, fromHiddenStates: true).Training.Model);
        yield return G("unlearning", GraphRole.TrainingStep, UnlearningGraphs.Unlearning(config, one, EncoderDim).Training.Model);
        yield return G("unlearning 2 heads", GraphRole.TrainingStep, UnlearningGraphs.Unlearning(config, two, EncoderDim).Training.Model);

        var specs = DecoderBuilder.Parameters(config).Select(p => new OptimizerParameter(p.Name, p.Shape)).ToList();
        yield return G("AdamW", GraphRole.Optimizer, OptimizerGraphs.AdamW(specs));
        yield return G("SGD momentum", GraphRole.Optimizer, OptimizerGraphs.Sgd(specs, momentum: true));
    }

    /// <summary>The toy preset's heads at the given hidden-state indices, named as <see cref="AtuRun"/> names them.</summary>
    public static IReadOnlyList<UnlearningGraphs.HeadAt> Heads(DecoderConfig config, params int[] layers)
    {
        var head = AtuPreset.Load("toy").Head;
        return layers.Select(layer => new UnlearningGraphs.HeadAt(layer, new EmbeddingHead(
            new EmbeddingHeadConfig(config.HiddenSize, head.DModel, head.Heads, head.FeedForward, head.Layers, EncoderDim, head.Dropout, head.LayerNormEps),
            prefix: layers.Length == 1 ? EmbeddingHead.DefaultPrefix : $"head_l{layer}."))).ToList();
    }

    /// <summary>Zero weights of the spec's shape and type (placement does not depend on the values).</summary>
    static TensorProto Zeros(ParameterSpec spec) =>
        Tensors.Raw(spec.Name, spec.ElementType, new byte[spec.ElementCount * Tensors.ElementSize(spec.ElementType)], spec.Shape);
}
