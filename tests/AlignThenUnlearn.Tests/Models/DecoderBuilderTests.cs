using AlignThenUnlearn.Models;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Tests.Support;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Tests.Models;

/// <summary>The training lowering of the decoder against <see cref="ReferenceDecoder"/> (Hugging Face's equations in
/// plain C#) and the checkpoint naming of its parameters.</summary>
public class DecoderBuilderTests
{
    static readonly long[] Tokens = [5, 17, 2, 5, 28, 0, 11, 3, 3, 20, 9, 1, 26, 4];   // batch 2 x seq 7
    const int Batch = 2, Seq = 7;

    /// <summary>3 layers, 4 query heads over 2 KV heads, head_dim 4.</summary>
    internal static DecoderConfig SmallConfig(ModelFamily family) => new()
    {
        Family = family, HiddenSize = 16, NumHiddenLayers = 3, NumAttentionHeads = 4, NumKeyValueHeads = 2,
        IntermediateSize = 24, VocabSize = 29, RmsNormEps = 1e-6, RopeTheta = 500, AttentionBias = family == ModelFamily.Qwen2,
    };

    public static TheoryData<string, DataType, double> Cases() => new()
    {
        { "phi3", DataType.Float, 1e-4 }, { "llama", DataType.Float, 1e-4 }, { "qwen2", DataType.Float, 1e-4 },
        { "mistral-window", DataType.Float, 1e-4 }, { "llama-tied", DataType.Float, 1e-4 },
        { "phi3", DataType.Double, 1e-10 }, { "qwen2", DataType.Double, 1e-10 }, { "mistral-window", DataType.Double, 1e-10 },
    };

    internal static DecoderConfig Named(string name) => name switch
    {
        "phi3" => SmallConfig(ModelFamily.Phi3),
        "llama" => SmallConfig(ModelFamily.Llama),
        "qwen2" => SmallConfig(ModelFamily.Qwen2),
        "mistral-window" => SmallConfig(ModelFamily.Mistral) with { SlidingWindow = 3 },   // shorter than the sequence
        "llama-tied" => SmallConfig(ModelFamily.Llama) with { TieWordEmbeddings = true },
        _ => throw new ArgumentException(name),
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Hidden_states_and_logits_match_the_reference_decoder(string name, DataType type, double tolerance)
    {
        var config = Named(name);
        var all = Enumerable.Range(0, config.NumHiddenLayers + 1).ToArray();
        var decoder = DecoderBuilder.Build(config, new DecoderGraphOptions { ElementType = type, HiddenStates = all });
        var parameters = RandomInit.Create(decoder.Parameters, seed: 3, std: 0.2, normStd: 0.3);
        var outputs = GradCheck.Cpu.Run(decoder.Model, Feeds(decoder, parameters));

        var reference = new ReferenceDecoder(config, parameters);
        for (int b = 0; b < Batch; b++)
        {
            var (states, logits) = reference.Forward(Tokens[(b * Seq)..((b + 1) * Seq)]);
            foreach (var k in all) AssertClose(states[k], outputs[decoder.HiddenStates[k]], b, tolerance, $"hidden_states[{k}]");
            AssertClose(logits, outputs[decoder.Logits!], b, tolerance, "logits");
        }
    }

    [Fact]
    public void Float16_graph_runs_and_stays_near_the_reference()
    {
        // Float16 keeps 11 significant bits: values of order 1 agree to a few 1e-3 after three layers.
        var config = SmallConfig(ModelFamily.Phi3);
        var decoder = DecoderBuilder.Build(config, new DecoderGraphOptions { ElementType = DataType.Float16, HiddenStates = [3] });
        var parameters = RandomInit.Create(decoder.Parameters, seed: 3, std: 0.2, normStd: 0.3);
        var feeds = parameters.Select(kv => NamedOnnxValue.CreateFromTensor(kv.Key,
                new DenseTensor<Float16>(((Half[])kv.Value.Data).Select(h => new Float16(BitConverter.HalfToUInt16Bits(h))).ToArray(), kv.Value.Shape.Select(d => (int)d).ToArray())))
            .Append(NamedOnnxValue.CreateFromTensor(DecoderGraph.InputIds, new DenseTensor<long>(Tokens, [Batch, Seq]))).ToList();
        using var session = GradCheck.Cpu.Open(decoder.Model);
        using var results = session.Run(feeds);
        var hidden = results.Single(r => r.Name == decoder.HiddenStates[3]).AsTensor<Float16>().ToArray().Select(v => (double)(float)v).ToArray();
        var widened = parameters.ToDictionary(kv => kv.Key, kv => kv.Value with { Data = Array.ConvertAll((Half[])kv.Value.Data, h => (double)h) });
        var reference = new ReferenceDecoder(config, widened);
        for (int b = 0; b < Batch; b++)
            AssertClose(reference.Forward(Tokens[(b * Seq)..((b + 1) * Seq)]).HiddenStates[3], HostTensor.Of(hidden, Batch, Seq, config.HiddenSize), b, 2e-2, "hidden_states[3]");
    }

    [Fact]
    public void Truncated_graph_builds_only_the_layers_before_the_requested_hidden_state()
    {
        var config = SmallConfig(ModelFamily.Llama);
        var decoder = DecoderBuilder.Build(config, DecoderGraphOptions.UpToHiddenState(1));
        Assert.Equal(1, decoder.Layers);
        Assert.Null(decoder.Logits);
        Assert.Equal(["model.embed_tokens.weight", "model.layers.0.input_layernorm.weight", "model.layers.0.self_attn.q_proj.weight",
            "model.layers.0.self_attn.k_proj.weight", "model.layers.0.self_attn.v_proj.weight", "model.layers.0.self_attn.o_proj.weight",
            "model.layers.0.post_attention_layernorm.weight", "model.layers.0.mlp.gate_proj.weight", "model.layers.0.mlp.up_proj.weight",
            "model.layers.0.mlp.down_proj.weight"], decoder.Parameters.Select(p => p.Name));
        Assert.Equal([decoder.Input, .. decoder.Parameters.Select(p => p.Name)], decoder.Model.Graph.Input.Select(i => i.Name));
        Assert.Equal([DecoderGraph.HiddenStateName(1)], decoder.Model.Graph.Output.Select(o => o.Name));

        // hidden_states[1] of the truncated graph is the raw output of layer 0 (the final norm comes only after
        // layer 2); random parameters depend on their names only, so the full model's values bind it.
        var parameters = RandomInit.Create(DecoderBuilder.Parameters(config), seed: 4, std: 0.2);
        var output = GradCheck.Cpu.Run(decoder.Model, Feeds(decoder, parameters))[decoder.HiddenStates[1]];
        var reference = new ReferenceDecoder(config, parameters);
        for (int b = 0; b < Batch; b++)
            AssertClose(reference.Forward(Tokens[(b * Seq)..((b + 1) * Seq)]).HiddenStates[1], output, b, 1e-4, "hidden_states[1]");
    }

    [Fact]
    public void Parameters_are_named_and_shaped_as_in_hugging_face_checkpoints()
    {
        var phi3 = DecoderBuilder.Parameters(SmallConfig(ModelFamily.Phi3) with { NumHiddenLayers = 1 });
        Assert.Equal([("model.embed_tokens.weight", new long[] { 29, 16 }), ("model.layers.0.input_layernorm.weight", [16]),
            ("model.layers.0.self_attn.qkv_proj.weight", [16 + 2 * 8, 16]), ("model.layers.0.self_attn.o_proj.weight", [16, 16]),
            ("model.layers.0.post_attention_layernorm.weight", [16]), ("model.layers.0.mlp.gate_up_proj.weight", [48, 16]),
            ("model.layers.0.mlp.down_proj.weight", [16, 24]), ("model.norm.weight", [16]), ("lm_head.weight", [29, 16])],
            phi3.Select(p => (p.Name, p.Shape)));

        var qwen2 = DecoderBuilder.Parameters(SmallConfig(ModelFamily.Qwen2) with { NumHiddenLayers = 1 }).ToDictionary(p => p.Name, p => p.Shape);
        Assert.Equal([16], qwen2["model.layers.0.self_attn.q_proj.bias"]);
        Assert.Equal([8], qwen2["model.layers.0.self_attn.k_proj.bias"]);
        Assert.Equal([8], qwen2["model.layers.0.self_attn.v_proj.bias"]);
        Assert.False(qwen2.ContainsKey("model.layers.0.self_attn.o_proj.bias"));

        var tied = DecoderBuilder.Parameters(SmallConfig(ModelFamily.Llama) with { TieWordEmbeddings = true });
        Assert.DoesNotContain(tied, p => p.Name == "lm_head.weight");
        Assert.All(DecoderBuilder.Parameters(SmallConfig(ModelFamily.Llama), DataType.Double), p => Assert.Equal(DataType.Double, p.ElementType));
    }

    [Fact]
    public void Inputs_embeds_graph_equals_the_input_ids_graph_fed_the_embedding_rows()
    {
        var config = SmallConfig(ModelFamily.Qwen2);
        var fromIds = DecoderBuilder.Build(config, new DecoderGraphOptions { ElementType = DataType.Double, HiddenStates = [2], Logits = false });
        var fromEmbeds = DecoderBuilder.Build(config, new DecoderGraphOptions { ElementType = DataType.Double, HiddenStates = [2], Logits = false, InputsEmbeds = true });
        Assert.DoesNotContain(fromEmbeds.Parameters, p => p.Name == "model.embed_tokens.weight");
        var parameters = RandomInit.Create(fromIds.Parameters, seed: 9, std: 0.2);
        var table = (double[])parameters["model.embed_tokens.weight"].Data;
        var embeds = Tokens.SelectMany(t => table.AsSpan((int)t * 16, 16).ToArray()).ToArray();
        var feeds = fromEmbeds.Parameters.ToDictionary(p => p.Name, p => new HostTensor(parameters[p.Name].Data, p.Shape));
        feeds[DecoderGraph.InputsEmbeds] = HostTensor.Of(embeds, Batch, Seq, 16);
        var expected = GradCheck.Cpu.Run(fromIds.Model, Feeds(fromIds, parameters))[fromIds.HiddenStates[2]].Doubles;
        var actual = GradCheck.Cpu.Run(fromEmbeds.Model, feeds)[fromEmbeds.HiddenStates[2]].Doubles;
        Assert.Equal(expected, actual);
    }

    [Fact]
    public void Impossible_requests_are_refused_with_the_reason()
    {
        var config = SmallConfig(ModelFamily.Llama);
        Assert.Contains("hidden state 4 does not exist", Assert.Throws<ArgumentException>(() => DecoderBuilder.Build(config, DecoderGraphOptions.UpToHiddenState(4))).Message);
        Assert.Contains("cannot be grouped", Assert.Throws<ArgumentException>(() => DecoderBuilder.Build(config with { NumKeyValueHeads = 3 })).Message);
        Assert.Contains("logits or at least one hidden state", Assert.Throws<ArgumentException>(() => DecoderBuilder.Build(config, new DecoderGraphOptions { Logits = false })).Message);
    }

    [Fact]
    public void Random_parameters_are_deterministic_per_name_with_the_requested_statistics()
    {
        var config = SmallConfig(ModelFamily.Llama) with { HiddenSize = 64, NumAttentionHeads = 4, NumKeyValueHeads = 4, IntermediateSize = 128 };
        var full = RandomInit.Create(config, seed: 1);
        var truncated = RandomInit.Create(DecoderBuilder.Build(config, DecoderGraphOptions.UpToHiddenState(1)).Parameters, seed: 1);
        Assert.Equal((float[])full["model.layers.0.mlp.up_proj.weight"].Data, (float[])truncated["model.layers.0.mlp.up_proj.weight"].Data);
        Assert.NotEqual((float[])full["model.layers.0.mlp.up_proj.weight"].Data, (float[])RandomInit.Create(config, seed: 2)["model.layers.0.mlp.up_proj.weight"].Data);
        Assert.All((float[])full["model.norm.weight"].Data, v => Assert.Equal(1f, v));
        var matrix = (float[])full["model.layers.1.mlp.down_proj.weight"].Data;   // 8192 draws: sample std within 3% of 0.02
        double mean = matrix.Average(v => (double)v), std = Math.Sqrt(matrix.Average(v => (v - mean) * (v - mean)));
        Assert.InRange(mean, -0.001, 0.001);
        Assert.InRange(std, 0.0194, 0.0206);
    }

    static Dictionary<string, HostTensor> Feeds(DecoderGraph decoder, IReadOnlyDictionary<string, ParameterArray> parameters)
    {
        var feeds = decoder.Parameters.ToDictionary(p => p.Name, p => new HostTensor(parameters[p.Name].Data, p.Shape));
        feeds[DecoderGraph.InputIds] = HostTensor.Of(Tokens, Batch, Seq);
        return feeds;
    }

    static void AssertClose(double[][] expected, HostTensor actual, int batchIndex, double tolerance, string what)
    {
        var values = actual.AsDoubles();
        int seq = expected.Length, width = expected[0].Length;
        Assert.Equal(new long[] { Batch, seq, width }, actual.Shape);
        for (int i = 0; i < seq; i++)
            for (int j = 0; j < width; j++)
            {
                double a = values[(batchIndex * seq + i) * width + j], e = expected[i][j];
                Assert.True(Math.Abs(a - e) <= tolerance, $"{what}[{batchIndex},{i},{j}]: graph {a:G9}, reference {e:G9}");
            }
    }
}
