using AlignThenUnlearn.Models;
using AlignThenUnlearn.Models.Checkpoints;
using AlignThenUnlearn.Onnx;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Tests.Models;
using AlignThenUnlearn.Tests.Support;
using AlignThenUnlearn.Unlearning;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Tests.Unlearning;

/// <summary>LoRA as an option of the training lowering: the merge (computed on the host) against the adapted graph's logits,
/// gradients by central differences, training that moves adapters only, a small adapter file; and layer subsets.</summary>
public sealed class LoraTests : IDisposable
{
    readonly TempFolder _temp = new();
    public void Dispose() => _temp.Dispose();

    static readonly long[] Tokens = [3, 7, 1, 9, 4, 12, 0, 5];

    /// <summary>Base parameters and adapters with B random too (PEFT starts B at zero, which would make any merge look right).</summary>
    static (ParameterStore Store, DecoderGraph Graph) Adapted(DecoderConfig config, LoraOptions lora, bool randomB = true)
    {
        var graph = DecoderBuilder.Build(config, new DecoderGraphOptions { Lora = lora });
        var store = CausalLmTrainer.RandomParameters(GradCheck.Cpu, config, seed: 4, std: 0.2);
        LoraAdapters.AddTo(store, graph.Adapters, seed: 1);
        if (randomB)
            foreach (var (name, values) in RandomInit.Create(graph.Adapters.Where(a => a.Name.EndsWith(".lora_B.weight")), seed: 2, std: 0.3))
                store.Set(name, (float[])values.Data);
        return (store, graph);
    }

    static float[] Logits(DecoderGraph graph, IReadOnlyDictionary<string, float[]> weights, IReadOnlyDictionary<string, long[]> shapes)
    {
        var feeds = weights.ToDictionary(kv => kv.Key, kv => HostTensor.Of(kv.Value, shapes[kv.Key]));
        feeds[DecoderGraph.InputIds] = HostTensor.Of(Tokens, 1, Tokens.Length);
        return GradCheck.Cpu.Run(graph.Model, feeds, [graph.Logits!])[graph.Logits!].Floats;
    }

    [Theory]
    [InlineData(ModelFamily.Llama)]
    [InlineData(ModelFamily.Phi3)]
    public void Merged_weights_give_the_logits_of_base_plus_adapters(ModelFamily family)
    {
        var config = DecoderBuilderTests.SmallConfig(family);
        var lora = new LoraOptions();
        var (store, graph) = Adapted(config, lora);
        using var _ = store;
        Assert.Equal(config.NumHiddenLayers * 2 * 2, graph.Adapters.Count);   // A and B on q_proj and v_proj of every layer
        var adapted = Logits(graph, store.Names.ToDictionary(n => n, store.Read), store.Names.ToDictionary(n => n, n => store[n].Shape));

        var merged = _temp.File("merged.safetensors");
        LoraAdapters.SaveMerged(store, config, graph.Adapters, lora, merged);
        using var checkpoint = SafetensorsCheckpoint.Open(merged);
        var plain = DecoderBuilder.Build(config);
        Assert.Equal(plain.Parameters.Select(p => p.Name).Order(), checkpoint.Names.Order());   // base weights only, adapters left out
        var mergedLogits = Logits(plain, checkpoint.Names.ToDictionary(n => n, checkpoint.ReadSingles), plain.Parameters.ToDictionary(p => p.Name, p => p.Shape));
        var baseLogits = Logits(plain, plain.Parameters.ToDictionary(p => p.Name, p => store.Read(p.Name)), plain.Parameters.ToDictionary(p => p.Name, p => p.Shape));

        for (int i = 0; i < adapted.Length; i++) Assert.Equal(adapted[i], mergedLogits[i], 1e-5);
        Assert.True(adapted.Zip(baseLogits).Max(p => Math.Abs(p.First - p.Second)) > 1e-3, "the adapters must change the logits, or the comparison proves nothing");
        // Only the adapted weights changed: on Phi-3 the q and v row blocks of qkv_proj, never the k block.
        if (family == ModelFamily.Phi3)
        {
            var qkv = "model.layers.0.self_attn.qkv_proj.weight";
            var (q, kv, hidden) = (16, 8, 16);   // 4 heads x 4, 2 KV heads x 4
            var before = store.Read(qkv);
            var after = checkpoint.ReadSingles(qkv);
            bool Changed(int firstRow, int rows) => Enumerable.Range(firstRow * hidden, rows * hidden).Any(i => before[i] != after[i]);
            Assert.True(Changed(0, q) && Changed(q + kv, kv), "the q and v blocks change");
            Assert.False(Changed(q, kv), "the k block stays");
        }
    }

    [Theory]
    [InlineData(ModelFamily.Phi3)]
    [InlineData(ModelFamily.Qwen2)]
    public void Gradients_of_the_adapters_match_central_differences(ModelFamily family)
    {
        var config = DecoderBuilderTests.SmallConfig(family);
        var lora = new LoraOptions { Rank = 2, Layers = new LayerRange(1, 1) };
        var decoder = DecoderBuilder.Build(config, new DecoderGraphOptions { Lora = lora, ElementType = DataType.Double });
        Assert.Equal(4, decoder.Adapters.Count);   // layer 1 only
        var forward = decoder.Model.Clone();
        var b = new GraphBuilder(forward.Graph);
        var mask = b.Input("mask", DataType.Float, DecoderGraph.Batch, DecoderGraph.Sequence);
        var loss = MethodLosses.Npo(b, decoder.Logits!, DecoderGraph.InputIds, mask, b.Input("reference", DataType.Float, DecoderGraph.Batch));
        b.Output(loss, DataType.Double);

        var values = RandomInit.Create([.. decoder.Parameters.Select(p => p with { ElementType = DataType.Double }),
            .. decoder.Adapters], seed: 3, std: 0.3);
        var inputs = values.ToDictionary(kv => kv.Key, kv => new HostTensor(kv.Value.Data, kv.Value.Shape));
        inputs[DecoderGraph.InputIds] = HostTensor.Of(Tokens, 2, 4);
        inputs["mask"] = HostTensor.Of([1f, 1, 1, 0, 0, 1, 1, 0], 2, 4);
        inputs["reference"] = HostTensor.Of([-6f, -5f], 2);
        GradCheck.Check(forward, loss, inputs, decoder.Adapters.Select(a => a.Name), rtol: 1e-5, atol: 1e-8);
    }

    [Fact]
    public void A_training_step_changes_the_adapters_and_nothing_else()
    {
        var config = DecoderBuilderTests.SmallConfig(ModelFamily.Phi3);
        var lora = new LoraOptions();
        var adapters = lora.Adapters(config);
        var graph = new GradientAscent().Graph(config, adapters.Select(a => a.Name), new DecoderGraphOptions { Lora = lora });
        Assert.Equal(adapters.Select(a => a.Name).Order(), graph.Training.Gradients.Keys.Order());   // no gradient for any base weight
        using var store = CausalLmTrainer.RandomParameters(GradCheck.Cpu, config, seed: 4, std: 0.2);
        LoraAdapters.AddTo(store, graph.Decoder.Adapters);   // PEFT's start: B = 0
        Assert.Equal(adapters.Select(a => a.Name), store.Trainable);
        var before = store.Names.ToDictionary(n => n, store.Read);

        using var trainer = new Trainer(store, graph.Training, graph.Loss, new AdamWSettings(LearningRate: 1e-2, WeightDecay: 0), new TrainerOptions { Steps = 2 });
        trainer.Run(new TokenBatcher([[3, 7, 1, 9, 4], [12, 0, 5, 2]], batchSize: 2, seed: 0, maxLength: 16));

        foreach (var name in store.Names)
        {
            bool changed = !before[name].SequenceEqual(store.Read(name));
            Assert.True(changed == store.IsTrainable(name), $"'{name}' {(changed ? "changed" : "did not change")}");
        }
    }

    [Fact]
    public void The_adapter_file_is_small_and_reads_back()
    {
        var config = DecoderBuilderTests.SmallConfig(ModelFamily.Llama) with { HiddenSize = 64, NumAttentionHeads = 8, NumKeyValueHeads = 8, IntermediateSize = 172, VocabSize = 200 };
        var lora = new LoraOptions();
        var (store, graph) = Adapted(config, lora);
        using var _ = store;
        var adapterPath = _temp.File("adapters.safetensors");
        var fullPath = _temp.File("full.safetensors");
        LoraAdapters.Save(store, graph.Adapters, lora, adapterPath);
        LoraAdapters.SaveMerged(store, config, graph.Adapters, lora, fullPath);
        long adapterElements = graph.Adapters.Sum(a => a.ElementCount), baseElements = graph.Parameters.Sum(p => p.ElementCount);
        // 3 layers x (q and v) x (A [8, 64] + B [64, 8]) = 6144 floats against about 0.43 M for the model.
        Assert.Equal(3 * 2 * 2 * 8 * 64, adapterElements);
        long adapterBytes = new FileInfo(adapterPath).Length, fullBytes = new FileInfo(fullPath).Length;
        Assert.InRange(adapterBytes, 4 * adapterElements, 4 * adapterElements + 4096);   // the floats and a header
        Assert.True(adapterBytes * 20 < fullBytes, $"adapters {adapterBytes} bytes, merged model {fullBytes} bytes");

        using var reread = CausalLmTrainer.RandomParameters(GradCheck.Cpu, config, seed: 4, std: 0.2);
        LoraAdapters.Load(reread, graph.Adapters, adapterPath);
        foreach (var a in graph.Adapters) Assert.Equal(store.Read(a.Name), reread.Read(a.Name));
        using var file = SafetensorsFile.Open(adapterPath);
        Assert.Equal("8", file.Metadata["rank"]);
        Assert.Equal("q_proj,v_proj", file.Metadata["targets"]);
    }

    [Fact]
    public void An_adapter_file_merged_into_a_base_checkpoint_gives_the_merge_of_the_store()
    {
        var config = DecoderBuilderTests.SmallConfig(ModelFamily.Phi3);
        var lora = new LoraOptions { Layers = new LayerRange(1, 2) };
        var basePath = _temp.File("base.safetensors");
        using (var plain = CausalLmTrainer.RandomParameters(GradCheck.Cpu, config, seed: 4, std: 0.2)) plain.Save(basePath);
        var (store, graph) = Adapted(config, lora);   // the same base values (seed 4), adapters on layers 1 and 2
        using var _ = store;
        var adaptersPath = _temp.File("adapters.safetensors");
        LoraAdapters.Save(store, graph.Adapters, lora, adaptersPath);
        LoraAdapters.SaveMerged(store, config, graph.Adapters, lora, _temp.File("expected.safetensors"));

        LoraAdapters.MergeFiles(GradCheck.Cpu, config, basePath, adaptersPath, _temp.File("merged.safetensors"));
        using var expected = SafetensorsCheckpoint.Open(_temp.File("expected.safetensors"));
        using var merged = SafetensorsCheckpoint.Open(_temp.File("merged.safetensors"));
        Assert.Equal(expected.Names.Order(), merged.Names.Order());
        foreach (var name in expected.Names) Assert.Equal(expected.ReadSingles(name), merged.ReadSingles(name));
        using var baseFile = SafetensorsCheckpoint.Open(basePath);
        Assert.NotEqual(baseFile.ReadSingles("model.layers.1.self_attn.qkv_proj.weight"), merged.ReadSingles("model.layers.1.self_attn.qkv_proj.weight"));
        var e = Assert.Throws<ModelFormatException>(() => LoraAdapters.MergeFiles(GradCheck.Cpu, config, basePath, basePath, _temp.File("x.safetensors")));
        Assert.Contains("metadata", e.Message);
    }

    [Fact]
    public void Training_a_layer_subset_changes_only_those_layers()
    {
        var config = DecoderBuilderTests.SmallConfig(ModelFamily.Llama);
        using var store = CausalLmTrainer.RandomParameters(GradCheck.Cpu, config, seed: 4, std: 0.2);
        var layers = LayerRange.Parse("1-1");
        var trainable = layers.Select(store.Names);
        Assert.All(trainable, n => Assert.StartsWith("model.layers.1.", n));
        Assert.Equal(9, trainable.Count);   // two norms, q/k/v/o, gate/up/down
        store.SetTrainable(trainable);
        var before = store.Names.ToDictionary(n => n, store.Read);
        var graph = new GradientAscent().Graph(config, trainable);
        using var trainer = new Trainer(store, graph.Training, graph.Loss, new AdamWSettings(LearningRate: 1e-2, WeightDecay: 0), new TrainerOptions { Steps = 1 });
        trainer.Run(new TokenBatcher([[3, 7, 1, 9, 4], [12, 0, 5, 2]], batchSize: 2, seed: 0, maxLength: 16));
        foreach (var name in store.Names)
            Assert.True(!before[name].SequenceEqual(store.Read(name)) == name.StartsWith("model.layers.1.", StringComparison.Ordinal), name);
        Assert.Throws<ArgumentException>(() => LayerRange.Parse("3-1"));
        Assert.Throws<ArgumentException>(() => new LayerRange(0, 3).Check(config));   // layers 0-2
    }
}
