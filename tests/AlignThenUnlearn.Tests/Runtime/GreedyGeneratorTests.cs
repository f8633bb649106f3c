using AlignThenUnlearn.Models;
using AlignThenUnlearn.Models.Checkpoints;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Tests.Support;
using Microsoft.ML.OnnxRuntime;

namespace AlignThenUnlearn.Tests.Runtime;

/// <summary>Greedy decoding over an artifact's model.onnx (KV cache, left padding) against an independent greedy loop
/// over forward.onnx (the training lowering: no cache, no mask, parameters fed as inputs), one prompt at a time.</summary>
public sealed class GreedyGeneratorTests(TinyChatModel tiny) : IClassFixture<TinyChatModel>
{
    static readonly ExecutionDevice Cpu = GradCheck.Cpu;

    /// <summary>Prompts of different lengths (one of a single token), so the batch is left-padded.</summary>
    static readonly int[][] Prompts =
    [
        [1, 270, 17, 42, 260, 9],
        [5],
        [1, 280, 281, 282, 100, 101, 102, 103, 104, 105, 106, 285],
        [44, 45, 46],
    ];

    /// <summary>The reference: each step runs forward.onnx on the whole sequence and appends the argmax of the last
    /// position (first index of the largest logit), until a stop id (left out) or the budget.</summary>
    List<int> ReferenceGreedy(InferenceSession forward, Dictionary<string, HostTensor> weights, int[] prompt, int maxNewTokens, IReadOnlySet<int>? stops = null)
    {
        var sequence = prompt.Select(i => (long)i).ToList();
        var generated = new List<int>();
        int vocab = tiny.Config.VocabSize;
        for (int step = 0; step < maxNewTokens; step++)
        {
            var feeds = new Dictionary<string, HostTensor>(weights) { [DecoderGraph.InputIds] = HostTensor.Of([.. sequence], 1, sequence.Count) };
            var logits = ExecutionDevice.Run(forward, feeds, [DecoderGraph.LogitsName])[DecoderGraph.LogitsName].Floats;
            var last = logits.AsSpan((sequence.Count - 1) * vocab, vocab);
            int best = 0;
            for (int j = 1; j < vocab; j++) if (last[j] > last[best]) best = j;
            if (stops?.Contains(best) == true) break;
            generated.Add(best);
            sequence.Add(best);
        }
        return generated;
    }

    InferenceSession OpenForward() => Cpu.Open(tiny.Model.PathOf(ArtifactExporter.ForwardGraphFile));
    Dictionary<string, HostTensor> ArtifactWeights() => tiny.Model.ReadWeights(DecoderBuilder.Parameters(tiny.Config));

    /// <summary>The artifact's graph fed logits_from -1 returns [batch, 1, vocab], bit for bit the last column of the
    /// pass that returns every position (its default); generation through it (the default) chooses the same tokens as
    /// generation that reads the last column of every position's logits (what it did before), with the cache and without.</summary>
    [Fact]
    public void Generation_keeps_only_the_last_positions_logits_and_chooses_the_same_tokens()
    {
        using var session = Cpu.Open(tiny.Model.PathOf(ArtifactExporter.InferenceGraphFile));
        int batch = 2, seq = 5, vocab = tiny.Config.VocabSize;
        var feeds = new Dictionary<string, HostTensor>
        {
            [DecoderGraph.InputIds] = HostTensor.Of([1L, 270, 17, 42, 260, 0, 0, 44, 45, 46], batch, seq),
            [InferenceLowering.AttentionMask] = HostTensor.Of([1L, 1, 1, 1, 1, 0, 0, 1, 1, 1], batch, seq),
            [InferenceLowering.PositionIds] = HostTensor.Of([0L, 1, 2, 3, 4, 0, 0, 0, 1, 2], batch, seq),
        };
        for (int layer = 0; layer < tiny.Config.NumHiddenLayers; layer++)
            foreach (var name in new[] { InferenceLowering.PastKey(layer), InferenceLowering.PastValue(layer) })
                feeds[name] = HostTensor.Of(Array.Empty<float>(), batch, tiny.Config.NumKeyValueHeads, 0, tiny.Config.HeadDimension);
        var every = ExecutionDevice.Run(session, feeds, [DecoderGraph.LogitsName])[DecoderGraph.LogitsName];
        var last = ExecutionDevice.Run(session, new Dictionary<string, HostTensor>(feeds) { [InferenceLowering.LogitsFrom] = HostTensor.Of([-1L], 1) },
            [DecoderGraph.LogitsName])[DecoderGraph.LogitsName];
        Assert.Equal([batch, seq, vocab], every.Shape);
        Assert.Equal([batch, 1, vocab], last.Shape);
        for (int b = 0; b < batch; b++)
            Assert.Equal(every.Floats.AsSpan((b * seq + seq - 1) * vocab, vocab).ToArray(), last.Floats.AsSpan(b * vocab, vocab).ToArray());

        using var generator = GreedyGenerator.Open(tiny.Model, Cpu);
        using var everyPosition = new GreedyGenerator(InferenceModel.Open(tiny.Model, Cpu), Cpu, ownsModel: true) { LastLogitsOnly = false };
        foreach (var mode in new[] { DecodingMode.KvCache, DecodingMode.Recompute })
        {
            var kept = generator.Generate(Prompts, 12, [], mode);
            Assert.Equal(everyPosition.Generate(Prompts, 12, [], mode).Select(c => c.Tokens), kept.Select(c => c.Tokens));
            Assert.All(kept, c => Assert.Equal(12, c.Tokens.Length));
        }
        Assert.Equal(everyPosition.NextTokenLogits(Prompts), generator.NextTokenLogits(Prompts));
    }

    [Fact]
    public void Batched_cached_generation_equals_each_prompt_alone_recomputation_and_the_forward_graph_reference()
    {
        const int newTokens = 12;
        using var generator = GreedyGenerator.Open(tiny.Model, Cpu);
        var batched = generator.Generate(Prompts, newTokens, []);
        var recomputed = generator.Generate(Prompts, newTokens, [], DecodingMode.Recompute);
        // One prompt per pass through the grouping (logits budget of one byte), and each prompt in its own call.
        using var grouped = new GreedyGenerator(InferenceModel.Open(tiny.Model, Cpu), Cpu, ownsModel: true) { MaxLogitsBytes = 1 };
        var oneByOne = grouped.Generate(Prompts, newTokens, []);

        using var forward = OpenForward();
        var weights = ArtifactWeights();
        for (int i = 0; i < Prompts.Length; i++)
        {
            var reference = ReferenceGreedy(forward, weights, Prompts[i], newTokens);
            Assert.Equal(reference, batched[i].Tokens);
            Assert.Equal(reference, recomputed[i].Tokens);
            Assert.Equal(reference, oneByOne[i].Tokens);
            Assert.Equal(reference, generator.Generate([Prompts[i]], newTokens, [])[0].Tokens);
            Assert.All(new[] { batched[i], recomputed[i], oneByOne[i] }, c => Assert.False(c.Stopped));
        }
        // The prompts do not all continue alike (else batching could hide a row mix-up).
        Assert.True(batched.Select(c => string.Join(",", c.Tokens)).Distinct().Count() > 1);
    }

    [Fact]
    public void Each_row_stops_at_its_own_first_stop_token_and_the_others_run_on()
    {
        const int newTokens = 10;
        using var generator = GreedyGenerator.Open(tiny.Model, Cpu);
        var free = generator.Generate(Prompts, newTokens, []);
        // Stop ids taken from the free-running output: the 4th token of row 0 and the 2nd token of row 2.
        var stops = new HashSet<int> { free[0].Tokens[3], free[2].Tokens[1] };
        var expected = free.Select(c =>
        {
            int first = Array.FindIndex(c.Tokens, stops.Contains);
            return first < 0 ? (Tokens: c.Tokens, Stopped: false) : (Tokens: c.Tokens[..first], Stopped: true);
        }).ToList();
        Assert.Contains(expected, e => !e.Stopped);   // some row never meets a stop and must run to the budget
        Assert.Contains(expected, e => e.Stopped);

        foreach (var mode in new[] { DecodingMode.KvCache, DecodingMode.Recompute })
        {
            var stopped = generator.Generate(Prompts, newTokens, stops, mode);
            for (int i = 0; i < Prompts.Length; i++)
            {
                Assert.Equal(expected[i].Tokens, stopped[i].Tokens);
                Assert.Equal(expected[i].Stopped, stopped[i].Stopped);
            }
        }
        using var forward = OpenForward();
        Assert.Equal(ReferenceGreedy(forward, ArtifactWeights(), Prompts[2], newTokens, stops), expected[2].Tokens);
    }

    [Fact]
    public void Streamed_tokens_are_the_returned_ones_in_order()
    {
        using var generator = GreedyGenerator.Open(tiny.Model, Cpu);
        var seen = Prompts.Select(_ => new List<int>()).ToArray();
        var result = generator.Generate(Prompts, 6, [], onToken: (row, token) => seen[row].Add(token));
        for (int i = 0; i < Prompts.Length; i++) Assert.Equal(result[i].Tokens, seen[i]);
    }

    [Fact]
    public void Next_token_logits_of_a_padded_batch_are_each_prompts_last_position()
    {
        using var generator = GreedyGenerator.Open(tiny.Model, Cpu);
        int[] candidates = [7, 0, tiny.Config.VocabSize - 1, 260];
        var batched = generator.NextTokenLogits(Prompts, candidates);
        var whole = generator.NextTokenLogits(Prompts);
        using var forward = OpenForward();
        var weights = ArtifactWeights();
        int vocab = tiny.Config.VocabSize;
        for (int i = 0; i < Prompts.Length; i++)
        {
            var feeds = new Dictionary<string, HostTensor>(weights) { [DecoderGraph.InputIds] = HostTensor.Of(Prompts[i].Select(t => (long)t).ToArray(), 1, Prompts[i].Length) };
            var logits = ExecutionDevice.Run(forward, feeds, [DecoderGraph.LogitsName])[DecoderGraph.LogitsName].Floats;
            var last = logits.AsSpan((Prompts[i].Length - 1) * vocab, vocab).ToArray();
            Assert.Equal(vocab, whole[i].Length);
            for (int j = 0; j < vocab; j++) Assert.True(Math.Abs(last[j] - whole[i][j]) < 1e-4, $"prompt {i} logit {j}: {last[j]} vs {whole[i][j]}");
            Assert.Equal(candidates.Select(c => whole[i][c]), batched[i]);
        }
    }

    [Theory]
    [InlineData(SafetensorsDType.F32)]
    [InlineData(SafetensorsDType.BF16)]   // converted to the artifact's f32 in a temporary file first
    public void Trained_weights_replace_the_artifacts_own(SafetensorsDType dtype)
    {
        var trained = tiny.OtherWeights($"trained-{dtype}", seed: 99, dtype);
        var notices = new List<string>();
        using var own = GreedyGenerator.Open(tiny.Model, Cpu);
        using var generator = GreedyGenerator.Open(tiny.Model, Cpu, trained, notices.Add);
        Assert.Equal(dtype != SafetensorsDType.F32, notices.Count == 1);

        using var forward = OpenForward();
        var weights = tiny.Model.ReadWeights(DecoderBuilder.Parameters(tiny.Config), trained);
        var tokens = generator.Generate(Prompts, 8, []);
        for (int i = 0; i < Prompts.Length; i++) Assert.Equal(ReferenceGreedy(forward, weights, Prompts[i], 8), tokens[i].Tokens);
        // The artifact's own weights give other logits (so the comparison above could fail).
        Assert.NotEqual(own.NextTokenLogits(Prompts)[0], generator.NextTokenLogits(Prompts)[0]);

        // A converted copy exists only while the model is open.
        var model = InferenceModel.Open(tiny.Model, Cpu, trained);
        var converted = model.ConvertedWeightsPath;
        Assert.Equal(dtype != SafetensorsDType.F32, converted is not null);
        if (converted is not null) Assert.True(File.Exists(converted));
        model.Dispose();
        if (converted is not null) Assert.False(File.Exists(converted));
    }

    [Fact]
    public void Trained_weights_reached_through_a_link_from_another_folder_are_read_from_the_target()
    {
        // A Hugging Face cache snapshot links each file to a blob elsewhere; ONNX Runtime refuses such a link.
        var trained = tiny.OtherWeights("linked-target", seed: 5, SafetensorsDType.F32);
        var link = tiny.File("snapshot/model.safetensors");
        Directory.CreateDirectory(Path.GetDirectoryName(link)!);
        File.CreateSymbolicLink(link, trained);
        using var direct = GreedyGenerator.Open(tiny.Model, Cpu, trained);
        using var linked = GreedyGenerator.Open(tiny.Model, Cpu, link);
        Assert.Equal(direct.NextTokenLogits(Prompts), linked.NextTokenLogits(Prompts));
    }

    [Fact]
    public void Weights_of_another_shape_are_refused_naming_the_tensor()
    {
        var other = tiny.File("wide");
        RandomCheckpoint.Write(tiny.Config with { IntermediateSize = tiny.Config.IntermediateSize + 2 }, other, seed: 1, SafetensorsDType.F32);
        var e = Assert.Throws<ModelFormatException>(() => GreedyGenerator.Open(tiny.Model, Cpu, Path.Combine(other, SafetensorsCheckpoint.SingleFileName)));
        Assert.Contains("mlp.", e.Message);
    }

    [Fact]
    public void Prompts_beyond_the_vocabulary_or_the_maximum_length_are_refused()
    {
        using var generator = GreedyGenerator.Open(tiny.Model, Cpu);
        Assert.Contains("outside the vocabulary", Assert.Throws<ArgumentException>(() => generator.Generate([[1, tiny.Config.VocabSize]], 3, [])).Message);
        var tooLong = Enumerable.Repeat(5, tiny.Model.Manifest.MaxSequenceLength - 2).ToArray();
        Assert.Contains("maximum sequence length", Assert.Throws<ArgumentException>(() => generator.Generate([tooLong], 3, [])).Message);
        Assert.Single(generator.Generate([tooLong], 2, []));
        Assert.Contains("no tokens", Assert.Throws<ArgumentException>(() => generator.Generate([[]], 3, [])).Message);
    }

    [Fact]
    public void Float16_artifact_keeps_a_float16_cache_and_scores_float32_trained_weights_in_float32()
    {
        var art16 = tiny.File("artifacts-f16");
        if (!Directory.Exists(art16)) ArtifactExporter.Export(tiny.HfFolder, art16, new ExportOptions { ElementType = global::Onnx.TensorProto.Types.DataType.Float16 });
        var trained = tiny.OtherWeights("trained-for-f16", seed: 123, SafetensorsDType.F32);
        var notices = new List<string>();
        using var half = GreedyGenerator.Open(ArtifactModel.Open(art16), Cpu);
        using var single = GreedyGenerator.Open(tiny.Model, Cpu);
        using var halfTrained = GreedyGenerator.Open(ArtifactModel.Open(art16), Cpu, trained, notices.Add);
        using var singleTrained = GreedyGenerator.Open(tiny.Model, Cpu, trained);
        // The artifact's own f16 weights run in f16: logits (of magnitude up to ~4 here) agree with f32 to a few thousandths.
        var (a, b) = (half.NextTokenLogits(Prompts), single.NextTokenLogits(Prompts));
        for (int i = 0; i < Prompts.Length; i++)
            for (int j = 0; j < a[i].Length; j++)
                Assert.True(Math.Abs(a[i][j] - b[i][j]) < 0.03, $"prompt {i} logit {j}: f16 {a[i][j]}, f32 {b[i][j]}");
        Assert.Contains(a.Zip(b), p => p.First.Zip(p.Second).Any(q => q.First != q.Second));   // f16 did round
        // f32 trained weights of the f16 artifact run in f32, as RWKU scores after model.float(): the f32 artifact's logits.
        Assert.Contains("in f32", Assert.Single(notices));
        using (var model = InferenceModel.Open(ArtifactModel.Open(art16), Cpu, trained))
        {
            Assert.Equal(Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Float, model.ElementType);
            Assert.Null(model.ConvertedWeightsPath);
        }
        var (c, d) = (halfTrained.NextTokenLogits(Prompts), singleTrained.NextTokenLogits(Prompts));
        for (int i = 0; i < Prompts.Length; i++)
            for (int j = 0; j < c[i].Length; j++)
                Assert.True(Math.Abs(c[i][j] - d[i][j]) < 1e-5, $"prompt {i} logit {j}: f16 artifact with f32 weights {c[i][j]}, f32 {d[i][j]}");
        Assert.All(half.Generate(Prompts, 4, []), t => Assert.Equal(4, t.Tokens.Length));
        Assert.Equal(singleTrained.Generate(Prompts, 4, []).Select(t => t.Tokens), halfTrained.Generate(Prompts, 4, []).Select(t => t.Tokens));
    }

    [Fact]
    public void The_f16_cast_attack_undoes_an_update_smaller_than_half_an_f16_step()
    {
        // A model whose weights are f16 values, and an "unlearned" one that moved every weight by a quarter of its f16
        // step (a tiny learning rate's update, as RWKU's full fine-tuning at 6e-8 ... 4e-7 moves a weight by about a step).
        var start = tiny.File("cast-start.safetensors");
        AlignThenUnlearn.Evaluation.Attacks.PrecisionCast.Write(tiny.Config, tiny.Model.PathOf(ArtifactExporter.WeightsFile), AlignThenUnlearn.Evaluation.Attacks.PrecisionCast.F16, start);
        var trained = tiny.File("cast-trained.safetensors");
        using (var checkpoint = SafetensorsCheckpoint.Open(start))
            ArtifactExporter.WriteWeights(checkpoint, DecoderBuilder.Parameters(tiny.Config), trained, global::Onnx.TensorProto.Types.DataType.Float, transform: values =>
            {
                for (int i = 0; i < values.Length; i++)
                    values[i] += 0.25f * ((float)Half.BitIncrement((Half)values[i]) - values[i]);
            });
        var cast = tiny.File("cast-f16.safetensors");
        AlignThenUnlearn.Evaluation.Attacks.PrecisionCast.Write(tiny.Config, trained, AlignThenUnlearn.Evaluation.Attacks.PrecisionCast.F16, cast);
        Assert.Equal(File.ReadAllBytes(start), File.ReadAllBytes(cast));   // every weight back where it started

        using var before = GreedyGenerator.Open(tiny.Model, Cpu, start);
        using var unlearned = GreedyGenerator.Open(tiny.Model, Cpu, trained);
        using var attacked = GreedyGenerator.Open(tiny.Model, Cpu, cast);
        Assert.NotEqual(before.NextTokenLogits(Prompts)[0], unlearned.NextTokenLogits(Prompts)[0]);   // scored in f32, the update counts
        Assert.Equal(before.NextTokenLogits(Prompts), attacked.NextTokenLogits(Prompts));             // cast to f16, it is gone

        // bf16 rounds to nearest, ties to even (7 stored mantissa bits: a step of 2^-7 at 1).
        float[] values = [1 + 1f / 256, 1 + 3f / 256, 1 + 1f / 128 + 1f / 512];
        AlignThenUnlearn.Evaluation.Attacks.PrecisionCast.RoundToBFloat16(values);
        Assert.Equal([1f, 1 + 1f / 64, 1 + 1f / 128], values);
        Assert.Throws<ArgumentException>(() => AlignThenUnlearn.Evaluation.Attacks.PrecisionCast.Label("fp8"));
    }
}
