using AlignThenUnlearn.Models;
using AlignThenUnlearn.Onnx;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Tests.Support;
using Microsoft.ML.OnnxRuntime;
using Onnx;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Tests.Models;

/// <summary>The inference lowering (fused opset-23 operators, KV cache) against the plain C# reference decoder, and
/// incremental and left-padded batched decoding against full passes.</summary>
public class InferenceDecoderTests
{
    static readonly long[] Sequence = [5, 17, 2, 5, 28, 0, 11, 3, 9];

    static (DecoderGraph Graph, Dictionary<string, ParameterArray> Weights) Build(DecoderConfig config, bool hiddenStates = false)
    {
        var weights = RandomInit.Create(DecoderBuilder.Parameters(config), seed: 3, std: 0.2, normStd: 0.3);
        var all = hiddenStates ? Enumerable.Range(0, config.NumHiddenLayers + 1).ToArray() : [];
        var graph = DecoderBuilder.BuildInference(config, new InferenceGraphOptions { MaxSequenceLength = 64, HiddenStates = all },
            spec => Tensors.FromFloat(spec.Name, (float[])weights[spec.Name].Data, spec.Shape));
        return (graph, weights);
    }

    /// <summary>Runs one step: ids [batch, seq] with the given mask [batch, total] and positions, past from the previous step.</summary>
    static (float[] Logits, Dictionary<string, HostTensor> Outputs) Step(InferenceSession session, DecoderConfig config, long[][] ids, long[][] mask, long[][] positions, Dictionary<string, HostTensor>? past)
    {
        int batch = ids.Length, seq = ids[0].Length, total = mask[0].Length, pastLength = total - seq;
        var feeds = new Dictionary<string, HostTensor>
        {
            [DecoderGraph.InputIds] = HostTensor.Of(ids.SelectMany(r => r).ToArray(), batch, seq),
            [InferenceLowering.AttentionMask] = HostTensor.Of(mask.SelectMany(r => r).ToArray(), batch, total),
            [InferenceLowering.PositionIds] = HostTensor.Of(positions.SelectMany(r => r).ToArray(), batch, seq),
        };
        for (int i = 0; i < config.NumHiddenLayers; i++)
        {
            var empty = HostTensor.Of(Array.Empty<float>(), batch, config.NumKeyValueHeads, 0, config.HeadDimension);
            feeds[InferenceLowering.PastKey(i)] = past?[InferenceLowering.PresentKey(i)] ?? empty;
            feeds[InferenceLowering.PastValue(i)] = past?[InferenceLowering.PresentValue(i)] ?? empty;
        }
        var outputs = ExecutionDevice.Run(session, feeds);
        Assert.Equal([batch, config.NumKeyValueHeads, total, config.HeadDimension], outputs[InferenceLowering.PresentKey(0)].Shape);
        Assert.Equal(pastLength + seq, outputs[InferenceLowering.PresentValue(0)].Shape[2]);
        return (outputs[DecoderGraph.LogitsName].Floats, outputs);
    }

    static long[] Range(long from, int count) => Enumerable.Range(0, count).Select(i => from + i).ToArray();
    static long[] Ones(int count) => Enumerable.Repeat(1L, count).ToArray();

    static void AssertRowClose(double[] expected, ReadOnlySpan<float> actual, double tolerance, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int j = 0; j < expected.Length; j++)
            Assert.True(Math.Abs(expected[j] - actual[j]) <= tolerance, $"{what}[{j}]: reference {expected[j]:G9}, graph {actual[j]:G9}");
    }

    [Theory]
    [InlineData("phi3")]
    [InlineData("llama")]
    [InlineData("qwen2")]
    [InlineData("mistral-window")]
    [InlineData("llama-tied")]
    public void Full_pass_logits_and_hidden_states_match_the_reference_decoder(string name)
    {
        var config = DecoderBuilderTests.Named(name);
        var (graph, weights) = Build(config, hiddenStates: true);
        using var session = GradCheck.Cpu.Open(graph.Model);
        var (logits, outputs) = Step(session, config, [Sequence], [Ones(Sequence.Length)], [Range(0, Sequence.Length)], null);
        var (states, expected) = new ReferenceDecoder(config, weights).Forward(Sequence);
        for (int s = 0; s < Sequence.Length; s++)
            AssertRowClose(expected[s], logits.AsSpan(s * config.VocabSize, config.VocabSize), 1e-4, $"{name} logits at {s}");
        int H = config.HiddenSize;
        for (int k = 0; k <= config.NumHiddenLayers; k++)
            for (int s = 0; s < Sequence.Length; s++)
                AssertRowClose(states[k][s], outputs[DecoderGraph.HiddenStateName(k)].Floats.AsSpan(s * H, H), 1e-4, $"{name} hidden_states[{k}] at {s}");
    }

    [Theory]
    [InlineData("phi3")]
    [InlineData("llama")]
    [InlineData("mistral-window")]
    public void Incremental_decoding_with_the_cache_equals_the_full_pass(string name)
    {
        var config = DecoderBuilderTests.Named(name);
        var (graph, _) = Build(config);
        using var session = GradCheck.Cpu.Open(graph.Model);
        int n = Sequence.Length, V = config.VocabSize, prefix = 4;
        var (full, _) = Step(session, config, [Sequence], [Ones(n)], [Range(0, n)], null);

        var (logits, present) = Step(session, config, [Sequence[..prefix]], [Ones(prefix)], [Range(0, prefix)], null);
        for (int s = 0; s < prefix; s++) AssertRowClose(ToDoubles(full, s * V, V), logits.AsSpan(s * V, V), 1e-5, $"prefix logits at {s}");
        for (int t = prefix; t < n; t++)
        {
            (logits, present) = Step(session, config, [[Sequence[t]]], [Ones(t + 1)], [[t]], present);
            AssertRowClose(ToDoubles(full, t * V, V), logits, 1e-5, $"cached step logits at {t}");
        }
    }

    [Fact]
    public void Left_padded_batch_gives_each_sequence_its_own_logits_prefill_and_decode()
    {
        var config = DecoderBuilderTests.Named("llama");
        var (graph, _) = Build(config);
        using var session = GradCheck.Cpu.Open(graph.Model);
        int V = config.VocabSize;
        long[] shortSeq = [7, 3, 9], longSeq = [5, 17, 2, 5, 28, 1];
        long[] next = [4, 12];
        int width = longSeq.Length, pad = width - shortSeq.Length;

        // Alone: prefill then one cached step each.
        float[] Alone(long[] seq, long token, out float[] prefill)
        {
            var (p, present) = Step(session, config, [seq], [Ones(seq.Length)], [Range(0, seq.Length)], null);
            prefill = p;
            return Step(session, config, [[token]], [Ones(seq.Length + 1)], [[seq.Length]], present).Logits;
        }
        var shortNext = Alone(shortSeq, next[0], out var shortPrefill);
        var longNext = Alone(longSeq, next[1], out var longPrefill);

        // Together: the short one left-padded with token 0, masked out, positions counted over real tokens.
        long[][] ids = [[.. new long[pad], .. shortSeq], longSeq];
        long[][] mask = [[.. new long[pad], .. Ones(shortSeq.Length)], Ones(width)];
        long[][] positions = [[.. new long[pad], .. Range(0, shortSeq.Length)], Range(0, width)];
        var (batchPrefill, present) = Step(session, config, ids, mask, positions, null);
        for (int s = 0; s < shortSeq.Length; s++)
            AssertRowClose(ToDoubles(shortPrefill, s * V, V), batchPrefill.AsSpan(((pad + s)) * V, V), 1e-5, $"padded row prefill at {s}");
        for (int s = 0; s < width; s++)
            AssertRowClose(ToDoubles(longPrefill, s * V, V), batchPrefill.AsSpan((width + s) * V, V), 1e-5, $"full row prefill at {s}");
        Assert.All(batchPrefill, v => Assert.True(float.IsFinite(v)));   // padded query rows stay finite

        var (batchNext, _) = Step(session, config, [[next[0]], [next[1]]], [[.. mask[0], 1], [.. mask[1], 1]], [[shortSeq.Length], [width]], present);
        AssertRowClose(ToDoubles(shortNext, 0, V), batchNext.AsSpan(0, V), 1e-5, "padded row decode");
        AssertRowClose(ToDoubles(longNext, 0, V), batchNext.AsSpan(V, V), 1e-5, "full row decode");
    }

    [Fact]
    public void Graph_has_the_names_onnx_runtime_genai_binds()
    {
        var config = DecoderBuilderTests.Named("phi3");
        var (graph, _) = Build(config);
        var inputs = graph.Model.Graph.Input.Select(i => i.Name).ToList();
        var outputs = graph.Model.Graph.Output.Select(o => o.Name).ToList();
        Assert.Equal(["input_ids", "attention_mask", "position_ids"], inputs.Take(3));
        Assert.Equal("logits", outputs[0]);
        for (int i = 0; i < config.NumHiddenLayers; i++)
        {
            Assert.Contains($"past_key_values.{i}.key", inputs);
            Assert.Contains($"past_key_values.{i}.value", inputs);
            Assert.Contains($"present.{i}.key", outputs);
            Assert.Contains($"present.{i}.value", outputs);
        }
        // Weights are initializers named as in the checkpoint, never graph inputs.
        Assert.Contains(graph.Model.Graph.Initializer, t => t.Name == "model.layers.0.self_attn.qkv_proj.weight");
        Assert.DoesNotContain(inputs, n => n.StartsWith("model."));
        Assert.Contains(graph.Model.Graph.Node, n => n.OpType == "Attention");
        Assert.Contains(graph.Model.Graph.Node, n => n.OpType == "RMSNormalization");
        Assert.Contains(graph.Model.Graph.Node, n => n.OpType == "RotaryEmbedding");
    }

    static double[] ToDoubles(float[] values, int offset, int count) => values.Skip(offset).Take(count).Select(v => (double)v).ToArray();
}
