using System.Security.Cryptography;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Models.Checkpoints;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Tests.Support;
using AlignThenUnlearn.Unlearning;

namespace AlignThenUnlearn.Tests.Unlearning;

/// <summary>The staged run on a tiny random decoder with the real all-MiniLM-L6-v2 encoder: it completes the schedule,
/// writes the stage table, names the checkpoints where the forget average first crosses each threshold, and a run killed
/// in the middle of a stage and resumed ends with exactly the files of a run that was never interrupted.</summary>
public sealed class AtuRunTests : IDisposable
{
    readonly TinyChatModel _model = new();
    readonly TempFolder _temp = new();
    public void Dispose() { _model.Dispose(); _temp.Dispose(); }

    static readonly string[] Forget = ["the cat sat on the mat in the sun", "a cat can hunt at night", "the other cat ran to the tree"];
    static readonly string[] Others = ["cats hate rain on their coats", "the heron stood in the reeds", "an otter ate in the river"];

    /// <summary>Scripted forget averages (before, then stage by stage) so that the thresholds are crossed at known stages.</summary>
    static readonly double[] Forgetting = [60, 55, 45, 30, 10];

    static AtuPreset Preset(int checkpointEvery, int[]? layers = null) => AtuPreset.Load("toy") with
    {
        Layers = layers ?? [1],
        WindowTokens = 4,
        Head = new HeadSettings { Layers = 1, DModel = 16, Heads = 2, FeedForward = 32 },
        Alignment = new PhaseSettings { Optimizer = "adam", LearningRate = 3e-3, MaxGradNorm = 1, BatchSize = 2, SequenceLength = 8, Steps = 5 },
        Realignment = new PhaseSettings { Optimizer = "adam", LearningRate = 3e-3, MaxGradNorm = 1, BatchSize = 2, SequenceLength = 8 },
        Unlearning = new PhaseSettings { Optimizer = "sgd", LearningRate = 0.05, MaxGradNorm = 1, BatchSize = 2, SequenceLength = 8 },
        // Taus below the random head's cosines to the target, so that every stage moves the LLM.
        Stages = [new(-0.2, 4, 3), new(-0.4, 4, 3), new(-0.6, 3, 3), new(-0.8, 3, 0)],
        CheckpointEvery = checkpointEvery,
        Seed = 11,
    };

    AtuInputs Inputs(SentenceEncoder encoder, int window)
    {
        var cache = _temp.File("cache");
        string[] tokenizerFiles = [Path.Combine(_model.Artifacts, "tokenizer.model")];
        var forget = WindowEmbeddingCache.Compute(Forget, _model.Tokenizer, encoder, window, cache, tokenizerFiles);
        var alignment = WindowEmbeddingCache.Compute([.. Forget, .. Others], _model.Tokenizer, encoder, window, cache, tokenizerFiles);
        return new AtuInputs(_model.Config, _model.Model.PathOf(ArtifactExporter.WeightsFile), alignment, forget, encoder.Embed(["cat"])[0], "cat");
    }

    sealed class Killed : Exception;

    /// <summary>Runs to the end, or until the progress of step <paramref name="killAt"/> (counted over the whole run) throws.</summary>
    UnlearningRunResult? Run(AtuPreset preset, AtuInputs inputs, string folder, bool resume = false, int killAt = -1, List<string?>? evaluated = null)
    {
        int steps = 0;
        using var run = new AtuRun(preset, inputs, new UnlearningRunOptions
        {
            Device = GradCheck.Cpu,
            Folder = folder,
            Resume = resume,
            Evaluate = weights =>
            {
                evaluated?.Add(weights);
                int stage = weights is null ? 0 : StageTable.FromJson(File.ReadAllText(Path.Combine(Path.GetDirectoryName(weights)!, RunHarness.StagesJson))).Count + 1;
                return new ProbeScores(Forgetting[stage], 70 - stage);
            },
            Progress = _ => { if (++steps == killAt) throw new Killed(); },
        });
        try { return run.Run(); }
        catch (Killed) { return null; }
    }

    static string Hash(string path) => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(path)));

    [Fact]
    public void A_run_killed_mid_stage_resumes_to_identical_results_and_names_the_threshold_checkpoints()
    {
        using var encoder = SentenceEncoder.Open(EncoderFolder.FromMiniLmPackage(_temp.File("minilm")), GradCheck.Cpu);
        var inputs = Inputs(encoder, 4);
        var preset = Preset(checkpointEvery: 2);

        var evaluated = new List<string?>();
        var whole = Run(preset, inputs, _temp.File("whole"), evaluated: evaluated)!;
        // Before, then once after each stage's unlearning, on a full weights file of the model.
        Assert.Equal(5, evaluated.Count);
        Assert.Null(evaluated[0]);
        Assert.Equal(4, whole.Stages.Count);
        Assert.Equal([-0.2, -0.4, -0.6, -0.8], whole.Stages.Select(s => s.Tau));
        Assert.All(whole.Stages, s => Assert.True(s.UnlearnLoss > 0, $"stage {s.Stage}: unlearning loss {s.UnlearnLoss}"));
        Assert.Equal([55.0, 45, 30, 10], whole.Stages.Select(s => s.ForgetAverage!.Value));
        Assert.Equal(60, whole.Before!.ForgetAverage);
        // First crossings: 50 at stage 2 (45), 35 at stage 3 (30), 20 at stage 4 (10).
        Assert.Equal([null, "forget-below-50", "forget-below-35", "forget-below-20"], whole.Stages.Select(s => s.Checkpoint));
        Assert.Equal(new[] { 20.0, 35, 50 }, whole.Named.Keys.Order());
        foreach (var folder in whole.Named.Values.Append(whole.Final!))
        {
            using var weights = SafetensorsCheckpoint.Open(Path.Combine(folder, RunHarness.ModelFile));
            Assert.Equal(DecoderBuilder.Parameters(_model.Config).Select(p => p.Name).Order(), weights.Names.Order());
        }
        // Unlearning moved the layers the head reads from; the layers after it are the original ones.
        using (var original = SafetensorsCheckpoint.Open(inputs.LlmWeights))
        using (var final = SafetensorsCheckpoint.Open(Path.Combine(whole.Final!, RunHarness.ModelFile)))
        {
            float[] Read(SafetensorsCheckpoint c, string name) { var v = new float[c.Entry(name).Shape.Aggregate(1L, (a, b) => a * b)]; c.ReadSlice(name, 0, v); return v; }
            Assert.NotEqual(Read(original, "model.embed_tokens.weight"), Read(final, "model.embed_tokens.weight"));
            Assert.NotEqual(Read(original, "model.layers.0.mlp.down_proj.weight"), Read(final, "model.layers.0.mlp.down_proj.weight"));
            Assert.Equal(Read(original, "model.layers.1.mlp.down_proj.weight"), Read(final, "model.layers.1.mlp.down_proj.weight"));
            Assert.Equal(Read(original, "lm_head.weight"), Read(final, "lm_head.weight"));
        }
        Assert.Contains("| 2 | -0.4 |", File.ReadAllText(Path.Combine(_temp.File("whole"), RunHarness.StagesMarkdown)));

        // Killed in stage 2's realignment (step 5 of alignment, 4+3 of stage 1, 4 unlearning + 2 realignment of stage 2),
        // between its checkpoints, then killed again in stage 3's unlearning after that resume; each resume continues.
        var cut = _temp.File("cut");
        Assert.Null(Run(preset, inputs, cut, killAt: 5 + 7 + 4 + 2));
        Assert.Throws<IOException>(() => Run(preset, inputs, cut));   // a fresh run refuses a folder that holds one
        Assert.Null(Run(preset, inputs, cut, resume: true, killAt: 1 + 4));
        var resumed = Run(preset, inputs, cut, resume: true)!;

        Assert.Equal(whole.Stages, resumed.Stages);
        Assert.Equal(File.ReadAllText(Path.Combine(_temp.File("whole"), RunHarness.StagesJson)), File.ReadAllText(Path.Combine(cut, RunHarness.StagesJson)));
        foreach (var name in new[] { "final", "forget-below-50", "forget-below-35", "forget-below-20" })
            foreach (var file in new[] { RunHarness.ModelFile, AtuRun.HeadFile })
                Assert.Equal(Hash(Path.Combine(_temp.File("whole"), name, file)), Hash(Path.Combine(cut, name, file)));
        Assert.Contains("resumed from", File.ReadAllText(Path.Combine(cut, RunHarness.LogFile)));
    }

    /// <summary>Micro-batching in every phase: alignment (on cached hidden states, read per piece), unlearning and
    /// realignment with batches of 4 run as pieces of 2 and of 1 end at the whole batch's LLM and head. Without dropout
    /// the gradients are the same up to float32 summation order (relative ~1e-6). Every phase uses SGD here, whose move is
    /// lr x gradient, so the parameters agree within 1e-5; Adam would not do for the comparison: the key bias of the
    /// head's attention has an exactly zero gradient (softmax ignores a shift common to all keys) that float32 leaves as
    /// rounding noise, and Adam's first step moves by lr x noise / |noise|, different noise in each run.</summary>
    [Fact]
    public void Micro_batches_end_at_the_whole_batch_run()
    {
        using var encoder = SentenceEncoder.Open(EncoderFolder.FromMiniLmPackage(_temp.File("minilm")), GradCheck.Cpu);
        var inputs = Inputs(encoder, 4);
        var preset = Preset(0) with { Stages = [new(-0.2, 3, 2)] };
        preset = preset with
        {
            Head = preset.Head with { Dropout = 0 },
            Alignment = preset.Alignment with { Optimizer = "sgd", LearningRate = 0.05, BatchSize = 4, Steps = 3 },
            Realignment = preset.Realignment with { Optimizer = "sgd", LearningRate = 0.05 },
            Unlearning = preset.Unlearning with { BatchSize = 4 },
        };
        var whole = Run(preset, inputs, _temp.File("whole"))!.Final!;
        foreach (int micro in new[] { 2, 1 })
        {
            var pieces = Run(preset with { MicroBatch = micro }, inputs, _temp.File($"micro{micro}"))!.Final!;
            foreach (var file in new[] { RunHarness.ModelFile, AtuRun.HeadFile })
            {
                using var a = SafetensorsCheckpoint.Open(Path.Combine(whole, file));
                using var b = SafetensorsCheckpoint.Open(Path.Combine(pieces, file));
                foreach (var name in a.Names)
                {
                    double worst = a.ReadSingles(name).Zip(b.ReadSingles(name)).Max(p => Math.Abs(p.First - p.Second));
                    Assert.True(worst <= 1e-5, $"micro-batch {micro}: '{name}' of {file} differs by {worst} from the whole batch's");
                }
            }
        }
        using var original = SafetensorsCheckpoint.Open(inputs.LlmWeights);
        using var final = SafetensorsCheckpoint.Open(Path.Combine(whole, RunHarness.ModelFile));
        Assert.NotEqual(original.ReadSingles("model.layers.0.mlp.down_proj.weight"), final.ReadSingles("model.layers.0.mlp.down_proj.weight"));
    }

    [Fact]
    public void A_second_process_cannot_run_in_a_folder_that_a_run_holds()
    {
        using var encoder = SentenceEncoder.Open(EncoderFolder.FromMiniLmPackage(_temp.File("minilm")), GradCheck.Cpu);
        var inputs = Inputs(encoder, 4);
        var options = new UnlearningRunOptions { Device = GradCheck.Cpu, Folder = _temp.File("held") };
        using (new AtuRun(Preset(0), inputs, options))
            Assert.Contains("another process", Assert.Throws<IOException>(() => new AtuRun(Preset(0), inputs, options)).Message);
        using var again = new AtuRun(Preset(0), inputs, options);   // released with the run
    }

    [Fact]
    public void A_run_with_two_layers_trains_one_head_per_layer_and_the_layers_below_the_deeper_one()
    {
        using var encoder = SentenceEncoder.Open(EncoderFolder.FromMiniLmPackage(_temp.File("minilm")), GradCheck.Cpu);
        var inputs = Inputs(encoder, 4);
        var result = Run(Preset(0, layers: [1, 2]) with { Stages = [new(-0.5, 3, 2)] }, inputs, _temp.File("two"))!;
        using var heads = SafetensorsCheckpoint.Open(Path.Combine(result.Final!, AtuRun.HeadFile));
        Assert.Contains("head_l1.output_proj.weight", heads.Names);
        Assert.Contains("head_l2.output_proj.weight", heads.Names);
        Assert.DoesNotContain(heads.Names, n => n.StartsWith(EmbeddingHead.DefaultPrefix, StringComparison.Ordinal));
        using var original = SafetensorsCheckpoint.Open(inputs.LlmWeights);
        using var final = SafetensorsCheckpoint.Open(Path.Combine(result.Final!, RunHarness.ModelFile));
        float[] Read(SafetensorsCheckpoint c, string name) { var v = new float[c.Entry(name).Shape.Aggregate(1L, (a, b) => a * b)]; c.ReadSlice(name, 0, v); return v; }
        // hidden_states[2] is the last layer's output after the final norm: both layers and the norm move, the LM head does not.
        Assert.NotEqual(Read(original, "model.layers.1.mlp.down_proj.weight"), Read(final, "model.layers.1.mlp.down_proj.weight"));
        Assert.NotEqual(Read(original, "model.norm.weight"), Read(final, "model.norm.weight"));
        Assert.Equal(Read(original, "lm_head.weight"), Read(final, "lm_head.weight"));
    }

    [Fact]
    public void Two_heads_on_two_layers_sum_their_losses()
    {
        using var encoder = SentenceEncoder.Open(EncoderFolder.FromMiniLmPackage(_temp.File("minilm")), GradCheck.Cpu);
        int dim = encoder.Dimension;
        var config = new EmbeddingHeadConfig(_model.Config.HiddenSize, 16, 2, 32, 1, dim);
        var (h1, h2) = (new EmbeddingHead(config, prefix: "head_l1."), new EmbeddingHead(config, prefix: "head_l2."));
        var both = UnlearningGraphs.Unlearning(_model.Config, [new(1, h1), new(2, h2)], dim);
        var first = UnlearningGraphs.Unlearning(_model.Config, [new(1, h1)], dim);
        var second = UnlearningGraphs.Unlearning(_model.Config, [new(2, h2)], dim);
        Assert.Equal(h1.Parameters.Concat(h2.Parameters).Select(p => p.Name), both.HeadParameters.Select(p => p.Name));

        var inputs = Inputs(encoder, 4);
        var batch = new Dictionary<string, HostTensor>(new WindowBatcher(inputs.ForgetCorpus, 2, 8, seed: 1).Next())
        {
            [UnlearningGraphs.TargetEmbedding] = HostTensor.Of(inputs.TargetEmbedding, dim),
            [UnlearningGraphs.Tau] = HostTensor.Of([-1f]),   // every prediction above tau: the loss is the mean cosine + 1
        };
        using var store = new ParameterStore(GradCheck.Cpu);
        store.Load(inputs.LlmWeights, both.LlmParameters, _ => true);
        foreach (var head in new[] { h1, h2 })
            foreach (var (name, values) in head.InitialValues(seed: 3)) store.Add(name, values, head.Parameters.Single(p => p.Name == name).Shape, trainable: false);
        double Loss(UnlearningGraphs.Graph g, out double cosine)
        {
            using var session = new TrainSession(GradCheck.Cpu, g.Training, store, UnlearningGraphs.Loss, [UnlearningGraphs.MeanCosine]);
            var result = session.Run(batch);
            cosine = result.Metrics[UnlearningGraphs.MeanCosine][0];
            return result.Loss;
        }
        double l1 = Loss(first, out var c1), l2 = Loss(second, out var c2), l12 = Loss(both, out var c12);
        Assert.Equal(l1 + l2, l12, 5);
        Assert.Equal((c1 + c2) / 2, c12, 5);
        Assert.Equal(c1 + 1, l1, 5);
        Assert.NotEqual(c1, c2, 3);
    }

    static Dictionary<string, float[]> Parameters(string checkpoint)
    {
        using var file = SafetensorsFile.Open(Path.Combine(checkpoint, TrainingCheckpoint.ParametersFile));
        return file.Entries.ToDictionary(e => e.Name, e => file.ReadSingles(e.Name));
    }

    /// <summary>The method's effect, phase by phase: the parameters at the end of every phase (its checkpoint, read when
    /// the next phase starts) show that unlearning moves only the LLM's layers up to the head's and realignment only the
    /// head, and the cosine to the target falls within every unlearning phase and from the first stage to the last.</summary>
    [Fact]
    public void Unlearning_moves_only_the_LLM_below_the_head_realignment_only_the_head_and_the_cosine_to_the_target_falls()
    {
        using var encoder = SentenceEncoder.Open(EncoderFolder.FromMiniLmPackage(_temp.File("minilm")), GradCheck.Cpu);
        var inputs = Inputs(encoder, 4);
        var folder = _temp.File("effect");
        var preset = Preset(0) with
        {
            Alignment = Preset(0).Alignment with { Steps = 30 },
            Unlearning = Preset(0).Unlearning with { LearningRate = 0.2 },
            Stages = [new(-0.5, 8, 4), new(-0.5, 8, 4), new(-0.5, 8, 0)],
        };
        var ends = new Dictionary<string, Dictionary<string, float[]>>();   // phase name -> parameters at its end
        var cosines = new Dictionary<string, List<double>>();
        string? phase = null;
        using (var run = new AtuRun(preset, inputs, new UnlearningRunOptions
        {
            Device = GradCheck.Cpu,
            Folder = folder,
            Progress = p =>
            {
                if (p.Phase != phase && phase is not null)
                    ends[phase] = Parameters(new CheckpointDirectory(Path.Combine(folder, RunHarness.CheckpointsFolder)).NewestComplete()!);
                phase = p.Phase;
                if (!cosines.TryGetValue(p.Phase, out var list)) cosines[p.Phase] = list = [];
                list.Add(p.MeanCosine);
            },
        }))
        {
            var result = run.Run();
            ends[phase!] = Parameters(new CheckpointDirectory(Path.Combine(folder, RunHarness.CheckpointsFolder)).NewestComplete()!);
            // The stage table's mean cosine to the target (over each stage's unlearning steps) falls from the first stage to the last.
            Assert.True(result.Stages[^1].MeanCosineToTarget < result.Stages[0].MeanCosineToTarget - 0.01,
                $"mean cosines by stage: {string.Join(", ", result.Stages.Select(r => r.MeanCosineToTarget))}; " + string.Join("; ", cosines.Select(kv => $"{kv.Key}: {string.Join(", ", kv.Value.Select(v => v.ToString("0.000")))}")));
        }
        bool IsHead(string name) => name.StartsWith(EmbeddingHead.DefaultPrefix, StringComparison.Ordinal);
        List<string> Changed(string from, string to) => [.. ends[to].Keys.Where(n => !ends[from][n].SequenceEqual(ends[to][n]))];
        // The store holds the LLM up to hidden_states[1] (embeddings and layer 0) and the head, nothing after it.
        Assert.All(ends["align"].Keys.Where(n => !IsHead(n)), n => Assert.True(n.StartsWith("model.embed_tokens.", StringComparison.Ordinal) || n.StartsWith("model.layers.0.", StringComparison.Ordinal), n));
        foreach (var (from, to, head) in new[] { ("align", "unlearn 1", false), ("unlearn 1", "realign 1", true), ("realign 1", "unlearn 2", false),
            ("unlearn 2", "realign 2", true), ("realign 2", "unlearn 3", false) })
        {
            var changed = Changed(from, to);
            Assert.NotEmpty(changed);
            Assert.All(changed, n => Assert.True(IsHead(n) == head, $"{to} changed {n}"));
        }
        // Within every unlearning phase the cosine to the target falls (batch cosines, first two steps against last two).
        foreach (var name in new[] { "unlearn 1", "unlearn 2", "unlearn 3" })
            Assert.True(cosines[name].TakeLast(2).Average() < cosines[name].Take(2).Average(), $"{name}: {string.Join(", ", cosines[name])}");
    }

    [Fact]
    public void A_resume_with_another_preset_target_or_model_is_refused_listing_the_differences()
    {
        using var encoder = SentenceEncoder.Open(EncoderFolder.FromMiniLmPackage(_temp.File("minilm")), GradCheck.Cpu);
        var inputs = Inputs(encoder, 4) with { AlignmentTargets = "2 (heron)" };
        var preset = Preset(0) with { Stages = [new(-0.5, 2, 0)] };
        var folder = _temp.File("resume");
        using (var run = new AtuRun(preset, inputs, new UnlearningRunOptions { Device = GradCheck.Cpu, Folder = folder }, new AtuRunOptions { AlignmentOnly = true })) run.Run();
        // What the run started with is in its folder.
        var settings = File.ReadAllText(Path.Combine(folder, RunHarness.SettingsFile));
        Assert.Contains("\"alignment_targets\": \"2 (heron)\"", settings);
        Assert.Contains("\"forget_corpus\"", settings);

        string Refusal(AtuPreset p, AtuInputs i)
        {
            using var run = new AtuRun(p, i, new UnlearningRunOptions { Device = GradCheck.Cpu, Folder = folder, Resume = true });
            return Assert.Throws<InvalidOperationException>(() => run.Run()).Message;
        }
        var message = Refusal(preset with { Stages = [new(-0.6, 2, 0)] }, inputs);
        Assert.Contains("preset.stages[0].tau: recorded -0.5, now -0.6", message);
        message = Refusal(preset, inputs with { Target = "dog", TargetEmbedding = encoder.Embed(["dog"])[0] });
        Assert.Contains("target: recorded \"cat\", now \"dog\"", message);
        Assert.Contains("data.target_embedding", message);
        message = Refusal(preset, inputs with { AlignmentTargets = "3 (otter)" });
        Assert.Contains("alignment_targets", message);
        var other = _model.OtherWeights("other", 99, SafetensorsDType.F32);
        File.SetLastWriteTimeUtc(other, File.GetLastWriteTimeUtc(inputs.LlmWeights).AddMinutes(1));
        Assert.Contains("llm_weights.modified_utc", Refusal(preset, inputs with { LlmWeights = other }));
        // The same settings resume.
        using var same = new AtuRun(preset, inputs, new UnlearningRunOptions { Device = GradCheck.Cpu, Folder = folder, Resume = true });
        Assert.Single(same.Run().Stages);
    }

    [Fact]
    public void A_NaN_loss_stops_the_run_with_an_error_naming_the_phase_and_step()
    {
        using var encoder = SentenceEncoder.Open(EncoderFolder.FromMiniLmPackage(_temp.File("minilm")), GradCheck.Cpu);
        var inputs = Inputs(encoder, 4);
        inputs = inputs with { TargetEmbedding = [.. inputs.TargetEmbedding.Select((v, i) => i == 0 ? float.NaN : v)] };
        var steps = new List<string>();
        using var run = new AtuRun(Preset(0) with { Stages = [new(-0.5, 3, 2)] }, inputs, new UnlearningRunOptions
        {
            Device = GradCheck.Cpu, Folder = _temp.File("nan"), Progress = p => steps.Add($"{p.Phase} {p.Step}"),
        });
        var e = Assert.Throws<TrainingDivergedException>(() => run.Run());
        Assert.Contains("unlearn 1: the loss is NaN", e.Message);
        Assert.Equal(1, e.Step);
        // Alignment ran (its loss does not read the target); no unlearning step was reported or applied.
        Assert.Equal(5, steps.Count);
        Assert.All(steps, s => Assert.StartsWith("align", s));
    }

    [Fact]
    public void The_authors_sequences_run_and_another_encoder_than_the_preset_names_is_a_warning_in_the_log_and_stage_table()
    {
        using var encoder = SentenceEncoder.Open(EncoderFolder.FromMiniLmPackage(_temp.File("minilm")), GradCheck.Cpu);
        var inputs = Inputs(encoder, 4) with { Encoder = "all-MiniLM-L6-v2" };
        var preset = Preset(0) with { Sequences = SequenceModes.First, Encoder = "sentence-transformers/all-mpnet-base-v2", Stages = [new(-0.5, 2, 1), new(-0.6, 2, 0)] };
        // The authors pad with the EOS: a tokenizer without one cannot run them.
        Assert.Throws<ArgumentException>(() => new AtuRun(preset, inputs, new UnlearningRunOptions { Device = GradCheck.Cpu, Folder = _temp.File("no-eos") }));
        var folder = _temp.File("first");
        using (var run = new AtuRun(preset, inputs with { EosId = TinyChatModel.EndOfText }, new UnlearningRunOptions { Device = GradCheck.Cpu, Folder = folder }))
            Assert.All(run.Run().Stages, s => Assert.True(s.UnlearnLoss > 0));
        Assert.Contains("warning: the preset 'toy' assumes the encoder sentence-transformers/all-mpnet-base-v2, but this run uses all-MiniLM-L6-v2", File.ReadAllText(Path.Combine(folder, RunHarness.LogFile)));
        Assert.Contains("**Warning:**", File.ReadAllText(Path.Combine(folder, RunHarness.StagesMarkdown)));
        // The same encoder under its organisation's name is no warning.
        var quiet = _temp.File("quiet");
        using (var run = new AtuRun(preset with { Encoder = "sentence-transformers/all-MiniLM-L6-v2", Stages = [new(-0.5, 1, 0)] }, inputs with { EosId = TinyChatModel.EndOfText },
            new UnlearningRunOptions { Device = GradCheck.Cpu, Folder = quiet }))
            run.Run();
        Assert.DoesNotContain("warning", File.ReadAllText(Path.Combine(quiet, RunHarness.LogFile)));
    }
}
