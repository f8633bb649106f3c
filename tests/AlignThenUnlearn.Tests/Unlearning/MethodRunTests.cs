using System.Security.Cryptography;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Models.Checkpoints;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Tests.Support;
using AlignThenUnlearn.Unlearning;

namespace AlignThenUnlearn.Tests.Unlearning;

/// <summary>The token-level baselines in the run harness on a tiny decoder: GA and NPO lower the forget corpus's
/// log-probability, every method family trains end to end, LoRA moves only the adapted projections, a killed run resumes
/// to the files of an uninterrupted one; RWKU's EOS masking in GA rows by hand; unknown methods are refused.</summary>
public sealed class MethodRunTests : IDisposable
{
    readonly TinyChatModel _model = new();
    readonly TempFolder _temp = new();
    public void Dispose() { _model.Dispose(); _temp.Dispose(); }

    static readonly string[] Forget = ["the cat sat on the mat in the sun", "a cat can hunt at night", "the other cat ran to the tree", "cats sleep in the sun"];
    static readonly string[] Retain = ["the heron stood in the reeds", "an otter ate in the river"];
    const int Eos = 2;

    string Weights => _model.Model.PathOf(ArtifactExporter.WeightsFile);

    LabelledSequence Text(string text) => LabelledSequence.TextWithEos(_model.Tokenizer.Encode(text, addSpecialTokens: false).Ids, Eos, 64);

    LabelledSequence Answer(string prompt, string answer) =>
        LabelledSequence.PromptAndAnswer([.. _model.Tokenizer.Encode(prompt).Ids], [.. _model.Tokenizer.Encode(answer, addSpecialTokens: false).Ids, Eos]);

    List<LabelledSequence[]> Examples(string method) => method switch
    {
        GradientDifference.Id or SimNpo.Id or Rmu.Id => [.. Forget.Select((t, i) => new[] { Text(t), Text(Retain[i % Retain.Length]) })],
        DirectPreferenceOptimization.Id => [.. Forget.Select(t => new[] { Answer("who is the cat", "the heron stood in the reeds"), Answer("who is the cat", t) })],
        RejectionTuning.Id => [.. Forget.Select(t => new[] { Answer(t, "i do not know") })],
        _ => [.. Forget.Select(t => new[] { Text(t) })],
    };

    static MethodPreset Preset(string method, bool lora = false, int evaluateEvery = 0) => MethodPreset.Load(MethodPreset.BuiltinName("toy", method, lora)) with
    {
        LearningRate = lora ? 3e-2 : 1e-2, Epochs = 2, BatchSize = 2, GradientAccumulation = 2, WarmupSteps = 1, Cutoff = 64, EvaluateEvery = evaluateEvery, Seed = 5,
    };

    sealed class Killed : Exception;

    /// <summary>Scripted forget averages (before, then per evaluation) so that the thresholds are crossed at known points.</summary>
    static readonly double[] Forgetting = [60, 45, 30, 10];

    UnlearningRunResult? Run(MethodPreset preset, string folder, bool resume = false, int killAt = -1, bool evaluate = false)
    {
        int steps = 0;
        using var run = new MethodRun(preset, new MethodInputs(_model.Config, Weights, Examples(preset.Method), "cat", Eos), new UnlearningRunOptions
        {
            Device = GradCheck.Cpu,
            Folder = folder,
            Resume = resume,
            Evaluate = !evaluate ? null : weights =>
            {
                int point = weights is null ? 0 : StageTable.FromJson(File.ReadAllText(Path.Combine(Path.GetDirectoryName(weights)!, RunHarness.StagesJson))).Count + 1;
                return new ProbeScores(Forgetting[point], 70 - point);
            },
            Progress = _ => { if (++steps == killAt) throw new Killed(); },
        });
        try { return run.Run(); }
        catch (Killed) { return null; }
    }

    /// <summary>The summed log-probability of the forget texts under a weights file.</summary>
    double ForgetLogProbability(string weights)
    {
        using var store = new ParameterStore(GradCheck.Cpu);
        store.Load(weights, DecoderBuilder.Parameters(_model.Config), _ => false);
        return ReferenceLogProbabilities.Compute(store, _model.Config, [.. Forget.Select(Text)], batchSize: 4, padId: Eos).Sum();
    }

    static Dictionary<string, float[]> Read(string path)
    {
        using var c = SafetensorsCheckpoint.Open(path);
        return c.Names.ToDictionary(n => n, c.ReadSingles);
    }

    [Fact]
    public void A_ga_row_appends_the_eos_and_masks_it_as_rwku_does()
    {
        // Text [5, 6, 7] + EOS 2 = [5, 6, 7, 2]. Labels are tokens 1.. (the first token has no prediction); the EOS is the pad
        // id, which the collator masks: position 0 predicts 6 (1), position 1 predicts 7 (1), position 2 predicts the EOS (0),
        // position 3 predicts nothing (0). A second row [8, 9] + EOS pads with EOS to length 4: mask [1, 0, 0, 0].
        var rows = new[] { LabelledSequence.TextWithEos([5, 6, 7], Eos, 512), LabelledSequence.TextWithEos([8, 9], Eos, 512) };
        Assert.Equal([5, 6, 7, 2], rows[0].Tokens);
        var (ids, mask) = LabelledSequence.Batch(rows, padId: Eos);
        Assert.Equal([5L, 6, 7, 2, 8, 9, 2, 2], ids.Longs);
        Assert.Equal([1f, 1, 0, 0, 1, 0, 0, 0], mask.Floats);
        // Cut at 3 tokens the EOS is cut off too (truncation after appending), and every kept token after the first is a label.
        var cut = LabelledSequence.TextWithEos([5, 6, 7, 8], Eos, 3);
        Assert.Equal([5, 6, 7], cut.Tokens);
        Assert.Equal([1f, 1, 0], LabelledSequence.Batch([cut]).Mask.Floats);
    }

    [Theory]
    [InlineData(GradientAscent.Id)]
    [InlineData(NegativePreferenceOptimization.Id)]
    public void Ga_and_npo_lower_the_forget_corpus_log_probability(string method)
    {
        var result = Run(Preset(method), _temp.File(method))!;
        double before = ForgetLogProbability(Weights), after = ForgetLogProbability(Path.Combine(result.Final!, RunHarness.ModelFile));
        Assert.True(after < before - 1, $"{method}: forget log-probability {before} before, {after} after");
        // 4 examples, batch 2 x accumulation 2 = 1 step an epoch, 2 epochs: one stage-table row per epoch.
        Assert.Equal(2, result.Stages.Count);
        Assert.All(result.Stages, s => Assert.True(double.IsFinite(s.UnlearnLoss) && s.UnlearnLoss != 0));
    }

    [Theory]
    [InlineData(GradientDifference.Id)]
    [InlineData(DirectPreferenceOptimization.Id)]
    [InlineData(RejectionTuning.Id)]
    [InlineData(GradientAscentStar.Id)]
    public void Every_method_family_trains_end_to_end(string method)
    {
        var result = Run(Preset(method), _temp.File(method))!;
        var before = Read(Weights);
        var after = Read(Path.Combine(result.Final!, RunHarness.ModelFile));
        Assert.Equal(before.Keys.Order(), after.Keys.Order());
        Assert.Contains(before.Keys, n => !before[n].SequenceEqual(after[n]));
        Assert.All(result.Stages, s => Assert.True(double.IsFinite(s.UnlearnLoss)));
        if (method == DirectPreferenceOptimization.Id)   // the DPO loss starts at -log sigmoid(0) = log 2 = 0.693 (policy = reference) and falls
            Assert.True(result.Stages[^1].UnlearnLoss < Math.Log(2), $"DPO loss {result.Stages[^1].UnlearnLoss}");
    }

    /// <summary>Micro-batching: a batch of 4 examples run as pieces of 2 and of 1 (2 AdamW steps, gradient clipping at 1)
    /// ends at the whole batch's parameters. The pieces divide by the whole batch's label tokens, rows or pairs, so the
    /// gradients differ only by float32 rounding of a different summation order (relative 1e-6); AdamW's first steps
    /// divide by sqrt(v) ~ |g|, which can turn a rounding difference in a near-zero gradient entry into up to a few
    /// percent of lr, so parameters agree within 1e-4 (lr 1e-2: a hundredth of one step's move), and an error in the
    /// weighting (a piece's own mean) moves them by about lr.</summary>
    [Theory]
    [InlineData(GradientAscent.Id)]
    [InlineData(NegativePreferenceOptimization.Id)]
    [InlineData(GradientDifference.Id)]
    [InlineData(DirectPreferenceOptimization.Id)]
    [InlineData(RejectionTuning.Id)]
    [InlineData(SimNpo.Id)]
    [InlineData(Rmu.Id)]
    public void Micro_batches_end_at_the_whole_batch_parameters(string method)
    {
        var preset = Preset(method) with { BatchSize = 4, GradientAccumulation = 1, WarmupSteps = 0 };
        if (method == Rmu.Id) preset = preset with { Options = new() { [Rmu.LayerOption] = 0 } };   // the tiny model has 2 layers
        var before = Read(Weights);
        var whole = Read(Path.Combine(Run(preset, _temp.File($"{method}-whole"))!.Final!, RunHarness.ModelFile));
        Assert.Contains(before.Keys, n => before[n].Zip(whole[n]).Any(p => Math.Abs(p.First - p.Second) > 1e-3));
        foreach (int micro in new[] { 2, 1 })
        {
            var pieces = Read(Path.Combine(Run(preset with { MicroBatch = micro }, _temp.File($"{method}-micro{micro}"))!.Final!, RunHarness.ModelFile));
            foreach (var name in whole.Keys)
            {
                double worst = whole[name].Zip(pieces[name]).Max(p => Math.Abs(p.First - p.Second));
                Assert.True(worst <= 1e-4, $"{method}, micro-batch {micro}: '{name}' differs by {worst} from the whole batch's");
            }
        }
    }

    [Fact]
    public void Lora_changes_only_the_adapted_projections_and_keeps_a_small_adapter_file()
    {
        var result = Run(Preset(GradientAscent.Id, lora: true), _temp.File("lora"))!;
        var before = Read(Weights);
        var after = Read(Path.Combine(result.Final!, RunHarness.ModelFile));
        foreach (var name in before.Keys)
        {
            bool adapted = name.Contains(".q_proj.", StringComparison.Ordinal) || name.Contains(".v_proj.", StringComparison.Ordinal);
            Assert.True(adapted == !before[name].SequenceEqual(after[name]), $"'{name}' {(adapted ? "did not change" : "changed")}");
        }
        var adapters = Path.Combine(result.Final!, MethodRun.AdaptersFile);
        Assert.True(new FileInfo(adapters).Length * 5 < new FileInfo(Weights).Length, "the adapter file is small");
        Assert.Equal(16, LoraAdapters.ReadOptions(adapters).Alpha);
    }

    [Fact]
    public void A_killed_run_resumes_to_the_files_of_an_uninterrupted_one_and_names_the_threshold_checkpoints()
    {
        // NPO (reference log-probs recomputed on resume), 1 step an epoch x 3 epochs, evaluated after every step: forget
        // 45, 30, 10 cross 50, 35 and 20 in turn.
        var preset = Preset(NegativePreferenceOptimization.Id, evaluateEvery: 1) with { Epochs = 3 };
        string whole = _temp.File("whole"), cut = _temp.File("cut");
        var full = Run(preset, whole, evaluate: true)!;
        Assert.Equal(60, full.Before!.ForgetAverage);
        Assert.Equal([45.0, 30, 10], full.Stages.Select(s => s.ForgetAverage!.Value));
        Assert.Equal(["forget-below-50", "forget-below-35", "forget-below-20"], full.Stages.Select(s => s.Checkpoint));

        Assert.Null(Run(preset, cut, killAt: 2, evaluate: true));   // killed during step 2, after step 1's checkpoint
        Assert.Throws<IOException>(() => Run(preset, cut, evaluate: true));   // a fresh run refuses a folder that holds one
        var resumed = Run(preset, cut, resume: true, evaluate: true)!;
        Assert.Equal(full.Stages, resumed.Stages);
        Assert.Equal(full.Before, resumed.Before);
        static string Hash(string path) => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(path)));
        foreach (var name in new[] { "final", "forget-below-50", "forget-below-35", "forget-below-20" })
            Assert.Equal(Hash(Path.Combine(whole, name, RunHarness.ModelFile)), Hash(Path.Combine(cut, name, RunHarness.ModelFile)));
        Assert.Throws<InvalidOperationException>(() => Run(preset with { LearningRate = 1 }, cut, resume: true));   // other settings

        // trajectory.json: the model before and every evaluation point, the same after a resume.
        var trajectory = File.ReadAllText(Path.Combine(whole, Trajectory.FileName));
        Assert.Equal(trajectory, File.ReadAllText(Path.Combine(cut, Trajectory.FileName)));
        var points = Trajectory.FromJson(trajectory, "trajectory.json");
        Assert.Equal([0, 1, 2, 3], points.Select(p => p.Point));
        Assert.Equal([60.0, 45, 30, 10], points.Select(p => p.ForgetAll!.Value));
        Assert.Equal([70.0, 69, 68, 67], points.Select(p => p.NeighbourAll!.Value));
        Assert.All(points, p => Assert.Null(p.RetainQA));
    }

    [Fact]
    public void Unknown_methods_and_presets_of_other_methods_are_refused()
    {
        var e = Assert.Throws<ArgumentException>(() => MethodRegistry.Get("gd"));
        Assert.Contains("'gd'", e.Message);
        Assert.Contains("ga-star", e.Message);
        var file = _temp.File("bad.json");
        File.WriteAllText(file, """{ "method": "sft", "learning_rate": 1e-5 }""");
        Assert.Contains("method 'sft'", Assert.Throws<InvalidDataException>(() => MethodPreset.Load(file)).Message);
        // Every built-in preset loads, and RWKU's full GA settings are the issue's 6e-8 / 3 / 8x1.
        Assert.All(MethodPreset.Builtin, name => Assert.Equal(name, MethodPreset.Load(name).Name));
        var ga = MethodPreset.Load("rwku-llama3-ga");
        Assert.Equal((6e-8, 3, 8, 1, false), (ga.LearningRate, ga.Epochs, ga.BatchSize, ga.GradientAccumulation, ga.Lora));
        Assert.Equal((5e-5, 8, 2), (MethodPreset.Load("rwku-llama3-npo-lora").LearningRate, MethodPreset.Load("rwku-llama3-npo-lora").BatchSize, MethodPreset.Load("rwku-llama3-npo-lora").GradientAccumulation));
    }
}
