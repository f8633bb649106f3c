using System.Text.Json;
using AlignThenUnlearn.Cli;
using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.Evaluation.Attacks;
using AlignThenUnlearn.Jobs.Attacks;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Models.Checkpoints;
using AlignThenUnlearn.Models.Quantization;
using AlignThenUnlearn.Tests.Support;
using CommandLine;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Tests.Evaluation;

/// <summary>`atu attack quantize`: the quantised-dequantised weights it scores, the ordinary evaluation of them, and the
/// recovery figure against earlier evaluations.</summary>
[Collection(ConsoleCollection.Name)]
public sealed class AttackCommandTests(TinyChatModel tiny) : IClassFixture<TinyChatModel>, IDisposable
{
    readonly TempFolder _temp = new();
    public void Dispose() => _temp.Dispose();

    static QuantizationScheme SchemeOf(QuantizeAttackOptions o) => QuantizeAttack.SchemeOf(o.Scheme, o.Bits, o.GroupSize, o.Symmetric);

    static RunSummary Summary(string name, params (int Number, string Name, double Forget)[] targets) =>
        new(name, [.. targets.Select(t => new TargetScores(t.Number, t.Name, new RwkuScores(t.Forget, t.Forget, t.Forget, 0.5, 0.5, null), new RwkuCounts(1, 1, 1, 1, 1, 0)))]);

    string WriteResults(string name, RunSummary run)
    {
        var path = _temp.File(name);
        File.WriteAllBytes(path, ResultsJson.Serialize(run));
        return path;
    }

    static string[] Predictions(string folder) =>
        [.. File.ReadAllLines(Path.Combine(folder, RwkuReports.ProbesFile)).Where(l => l.Length > 0).Select(l => JsonDocument.Parse(l).RootElement.GetProperty("prediction").GetString()!)];

    [Fact]
    public void Recovery_is_the_share_of_the_forgotten_forget_score_the_attack_brings_back()
    {
        // Before 0.5, unlearned 0.1, attacked 0.3: (0.3 - 0.1) / (0.5 - 0.1) = 0.5.
        Assert.Equal(0.5, new AttackRecovery(0.5, 0.1, 0.3).Recovery!.Value, 12);
        Assert.Equal(-0.25, new AttackRecovery(0.5, 0.1, 0.0).Recovery!.Value, 12);   // forgets further
        Assert.Null(new AttackRecovery(0.4, 0.4, 0.3).Recovery);

        // Averaged over the attacked run's targets only: before has targets 1 and 2, the attack ran on 2.
        var before = Summary("before", (1, "A", 0.9), (2, "B", 0.7));
        var unlearned = Summary("unlearned", (2, "B", 0.2));
        var attacked = Summary("attacked", (2, "B", 0.45));
        var recovery = AttackRecovery.Of(before, "b.json", unlearned, "u.json", attacked);
        Assert.Equal(0.7, recovery.Before, 12);
        Assert.Equal(0.2, recovery.Unlearned, 12);
        Assert.Equal(0.45, recovery.Attacked, 12);
        Assert.Equal(0.5, recovery.Recovery!.Value, 12);   // (0.45 - 0.2) / (0.7 - 0.2)
        var missing = Assert.Throws<InvalidDataException>(() => AttackRecovery.Of(Summary("b", (1, "A", 0.9)), "b.json", unlearned, "u.json", attacked));
        Assert.Contains("'b.json' has no scores for target 2 (B)", missing.Message);
    }

    [Fact]
    public void Written_weights_quantise_only_the_projections()
    {
        var path = _temp.File("q.safetensors");
        var specs = DecoderBuilder.Parameters(tiny.Config);
        using var source = SafetensorsCheckpoint.Open(Path.Combine(tiny.Artifacts, ArtifactExporter.WeightsFile));
        var quantized = WeightQuantization.WriteQuantized(source, specs, path, DataType.Float, QuantizationScheme.Rtn(4, 32, symmetric: true));
        // tiny-llama-gqa: 2 layers x (q, k, v, o, gate, up, down).
        Assert.Equal(14, quantized.Count);
        using var written = SafetensorsCheckpoint.Open(path);
        foreach (var spec in specs)
        {
            var original = source.ReadSingles(spec.Name);
            var values = written.ReadSingles(spec.Name);
            if (!spec.Projection) { Assert.Equal(original, values); continue; }
            Assert.Contains(spec.Name, quantized);
            Assert.Matches(@"^model\.layers\.\d+\.(self_attn|mlp)\.\w+_proj\.weight$", spec.Name);
            // Symmetric int4 in groups of 32: every group takes at most 15 distinct values, each a multiple of its scale.
            for (int first = 0; first < values.Length; first += 32)
            {
                var group = values.AsSpan(first, 32).ToArray();
                float scale = original.AsSpan(first, 32).ToArray().Max(Math.Abs) / 7;
                Assert.True(group.Distinct().Count() <= 15);
                Assert.All(group, v => Assert.True(Math.Abs(v / scale - MathF.Round(v / scale)) < 1e-3, $"{spec.Name}: {v} is no multiple of {scale}"));
            }
            Assert.NotEqual(original, values);
        }
        Assert.DoesNotContain(quantized, n => n.Contains("embed_tokens") || n.Contains("norm") || n.Contains("lm_head"));
    }

    [Fact]
    public void Quantize_attack_scores_the_dequantised_model_as_eval_does_and_writes_the_recovery()
    {
        using var fixture = new RwkuFixture();
        var unlearned = tiny.OtherWeights("unlearned", 3, SafetensorsDType.F32);
        string attacked = _temp.File("attacked"), reference = _temp.File("reference");
        var before = WriteResults("before.json", Summary("before", (1, RwkuFixture.Ada, 0.9), (2, RwkuFixture.Cora, 0.8)));
        var unlearnedResults = WriteResults("unlearned.json", Summary("unlearned", (1, RwkuFixture.Ada, 0.1), (2, RwkuFixture.Cora, 0.1)));
        Assert.Equal(0, AttackCommand.Run(new QuantizeAttackOptions
        {
            Scheme = "nf4", Artifacts = tiny.Artifacts, Weights = unlearned, Rwku = fixture.Root, Targets = "1",
            Out = attacked, NoMmlu = true, Before = before, Unlearned = unlearnedResults,
        }));

        // The same scores as `atu eval` on weights quantised to NF4 here.
        var nf4 = _temp.File("nf4.safetensors");
        using (var source = SafetensorsCheckpoint.Open(unlearned))
            WeightQuantization.WriteQuantized(source, DecoderBuilder.Parameters(tiny.Config), nf4, DataType.Float, QuantizationScheme.Nf4);
        Assert.Equal(0, EvalCommand.Run(new EvalOptions { Artifacts = tiny.Artifacts, Weights = nf4, Rwku = fixture.Root, Targets = "1", Out = reference, NoMmlu = true }));
        Assert.Equal(Predictions(reference), Predictions(attacked));

        var results = ResultsJson.Read(Path.Combine(attacked, RwkuReports.ResultsFile));
        Assert.Equal($"{Path.GetFileNameWithoutExtension(unlearned)} nf4-b64", results.Name);
        double forget = results.Mean.ForgetAll!.Value;
        var report = JsonDocument.Parse(File.ReadAllText(Path.Combine(attacked, RobustnessTable.ReportFile))).RootElement;
        Assert.Equal("nf4-b64", report.GetProperty("scheme").GetString());
        Assert.Equal(forget, report.GetProperty("forget_all").GetDouble(), 12);
        // Target 1 only: before 0.9, unlearned 0.1.
        Assert.Equal(0.9, report.GetProperty("forget_all_before").GetDouble(), 12);
        Assert.Equal((forget - 0.1) / (0.9 - 0.1), report.GetProperty("recovery").GetDouble(), 12);
    }

    /// <summary>The names of the entries created directly in <paramref name="folder"/> (matching <paramref name="filter"/>)
    /// while <paramref name="action"/> runs: a sentinel made afterwards marks the end of its events (inotify keeps their order).</summary>
    static List<string> Created(string folder, string filter, Action action)
    {
        var created = new List<string>();
        var sentinel = filter.TrimEnd('*') + $"sentinel-{Guid.NewGuid():N}";
        using var sentinelSeen = new ManualResetEventSlim();
        using var watcher = new FileSystemWatcher(folder, filter) { NotifyFilter = NotifyFilters.DirectoryName | NotifyFilters.FileName };
        watcher.Created += (_, e) => { if (e.Name == sentinel) sentinelSeen.Set(); else lock (created) created.Add(e.Name!); };
        watcher.EnableRaisingEvents = true;
        action();
        Directory.CreateDirectory(Path.Combine(folder, sentinel));
        try { Assert.True(sentinelSeen.Wait(TimeSpan.FromMinutes(2)), $"no event for the sentinel in '{folder}'"); }
        finally { Directory.Delete(Path.Combine(folder, sentinel)); }
        lock (created) return [.. created];
    }

    [Fact]
    public void Attacked_weights_are_staged_beside_the_output_never_in_the_system_temporary_folder()
    {
        using var fixture = new RwkuFixture();
        var unlearned = tiny.OtherWeights("staged", 3, SafetensorsDType.F32);
        var attacked = _temp.File("attacked");
        List<string> beside = [];
        var inTemp = Created(Path.GetTempPath(), "atu-*", () => beside = Created(_temp.Path, ".attacked.quantize-*", () =>
            Assert.Equal(0, AttackCommand.Run(new QuantizeAttackOptions
            {
                Scheme = "rtn", Bits = 8, Artifacts = tiny.Artifacts, Weights = unlearned, Rwku = fixture.Root, Targets = "1",
                Out = attacked, NoMmlu = true,
            }))));
        // The tests' own temporary folders (atu-test-*, atu-folder-*) may appear meanwhile; the product stages none there
        // (it used atu-quantized-*, atu-rewritten-*, atu-sampled-*, atu-relearned-*).
        Assert.DoesNotContain(inTemp, p => !Path.GetFileName(p).StartsWith("atu-test-", StringComparison.Ordinal) && !Path.GetFileName(p).StartsWith("atu-folder-", StringComparison.Ordinal));
        Assert.Single(beside);
        Assert.Empty(Directory.GetFileSystemEntries(_temp.Path, ".attacked.*"));   // removed when the attack finished
    }

    [Fact]
    public void An_attack_output_that_is_inside_or_holds_an_input_is_refused_before_any_work()
    {
        // Issue 29, group 1: --out U with --unlearned U --force replaced U's reports; --out holding --weights wrote into
        // the checkpoint folder; --out equal to the weights file ran the whole evaluation, then failed.
        using var fixture = new RwkuFixture();
        string before = _temp.File("before"), unlearnedReports = _temp.File("unlearned");
        Assert.Equal(0, EvalCommand.Run(new EvalOptions { Artifacts = tiny.Artifacts, Rwku = fixture.Root, Targets = "1-2", Out = before, NoMmlu = true }));
        Assert.Equal(0, EvalCommand.Run(new EvalOptions { Artifacts = tiny.Artifacts, Rwku = fixture.Root, Targets = "1-2", Out = unlearnedReports, NoMmlu = true }));
        var kept = File.ReadAllBytes(Path.Combine(unlearnedReports, RwkuReports.ResultsFile));
        var checkpoint = Directory.CreateDirectory(_temp.File("ck")).FullName;
        var weights = Path.Combine(checkpoint, "model.safetensors");
        File.Copy(tiny.OtherWeights("ck", 3, SafetensorsDType.F32), weights);
        QuantizeAttackOptions Quantize(string output, bool recovery) => new()
        {
            Scheme = "rtn", Bits = 8, Artifacts = tiny.Artifacts, Weights = weights, Rwku = fixture.Root, Targets = "1",
            Out = output, NoMmlu = true, Force = true, Before = recovery ? before : null, Unlearned = recovery ? unlearnedReports : null,
        };
        foreach (var (output, option) in new[] { (unlearnedReports, "--unlearned"), (before, "--before"), (checkpoint, "--weights"), (weights, "--weights") })
        {
            var e = Assert.Throws<IOException>(() => AttackCommand.Run(Quantize(output, recovery: true)));
            Assert.Contains(option, e.Message);
        }
        Assert.Equal(kept, File.ReadAllBytes(Path.Combine(unlearnedReports, RwkuReports.ResultsFile)));
        Assert.Equal(["model.safetensors"], Directory.GetFileSystemEntries(checkpoint).Select(Path.GetFileName));
    }

    [Theory]
    [InlineData("sample", double.NaN, 1_000L, "--top-p")]
    [InlineData("sample", 1.5, 1_000L, "--top-p")]
    [InlineData("relearn", 0.9, 1_000_000_000L, "--steps")]
    public void Non_finite_or_out_of_range_attack_options_are_refused_before_any_output(string attack, double topP, long steps, string option)
    {
        // Issue 29, group 5: sample --top-p NaN wrote results.json and probes.jsonl, then crashed on attack.json;
        // relearn --steps 1000000000 was accepted.
        using var fixture = new RwkuFixture();
        var output = _temp.File($"refused-{attack}");
        AttackOptions o = attack == "sample" ? new SampleAttackOptions { Samples = 2, Temperature = 1, TopP = topP } : new RelearnAttackOptions { Steps = steps };
        (o.Artifacts, o.Rwku, o.Targets, o.Out, o.NoMmlu) = (tiny.Artifacts, fixture.Root, "1", output, true);
        var e = Assert.ThrowsAny<ArgumentException>(() => AttackCommand.Run(o));
        Assert.Contains(option, e.Message);
        Assert.False(Path.Exists(output));
    }

    static double[] Scores(string folder) =>
        [.. File.ReadAllLines(Path.Combine(folder, RwkuReports.ProbesFile)).Where(l => l.Length > 0).Select(l => JsonDocument.Parse(l).RootElement.GetProperty("score").GetDouble())];

    SampleAttackOptions Sample(RwkuFixture fixture, string name, int n, double temperature, long seed) => new()
    {
        Samples = n, Temperature = temperature, TopP = 0.9, Seed = seed, Artifacts = tiny.Artifacts,
        Rwku = fixture.Root, Targets = "1-2", Out = _temp.File(name), NoMmlu = true,
    };

    [Fact]
    public void Sampling_at_temperature_zero_answers_as_eval_does()
    {
        using var fixture = new RwkuFixture();
        Assert.Equal(0, AttackCommand.Run(Sample(fixture, "t0", 2, 0, 5)));
        Assert.Equal(0, EvalCommand.Run(new EvalOptions { Artifacts = tiny.Artifacts, Rwku = fixture.Root, Targets = "1-2", Out = _temp.File("greedy"), NoMmlu = true }));
        Assert.Equal(Predictions(_temp.File("greedy")), Predictions(_temp.File("t0")));
        Assert.Equal(Scores(_temp.File("greedy")), Scores(_temp.File("t0")));
        var report = JsonDocument.Parse(File.ReadAllText(_temp.File("t0/attack.json"))).RootElement;
        Assert.Equal(report.GetProperty("forget_all").GetDouble(), report.GetProperty("forget_all_mean").GetDouble(), 12);
    }

    [Fact]
    public void Sampled_answers_score_each_probe_by_its_best_and_mean_recall()
    {
        var target = new RwkuTarget(1, "A", "1_A");
        RwkuProbe[] probes = [new(ProbeSet.Forget, 1, "q1", "r1", "", "A"), new(ProbeSet.Forget, 2, "q2", "r2", "", "A"), new(ProbeSet.Forget, 3, "q3", "r3", "", "A")];
        RunEvaluation Run(int sample, params double[] scores)
        {
            var outcomes = probes.Select((p, i) => new ProbeOutcome(target, p, $"answer {sample}.{i}", scores[i])).ToList();
            var (s, counts) = RwkuScores.FromOutcomes(outcomes, []);
            var evaluation = new TargetEvaluation(new TargetScores(1, "A", s, counts), outcomes, []);
            return new RunEvaluation(new RunSummary("x", [evaluation.Scores]), [evaluation]);
        }
        // Per probe over three samples: FB 0.2/0.6/0.4, QA 0/0/0.3, AA 1/0.5/0.
        var (best, mean) = SampledAnswers.Combine([Run(0, 0.2, 0, 1), Run(1, 0.6, 0, 0.5), Run(2, 0.4, 0.3, 0)], "attacked");
        // Best: 0.6 (sample 1), 0.3 (sample 2), 1 (sample 0), with those samples' answers; forget All (0.6 + 0.3 + 1) / 3.
        Assert.Equal([0.6, 0.3, 1.0], best.Targets[0].Probes.Select(p => p.Score));
        Assert.Equal(["answer 1.0", "answer 2.1", "answer 0.2"], best.Targets[0].Probes.Select(p => p.Prediction));
        Assert.Equal(1.9 / 3, best.Summary.Mean.ForgetAll!.Value, 12);
        // Mean: 0.4, 0.1, 0.5; forget All 1 / 3.
        Assert.Equal(0.4, mean.Targets[0].Probes[0].Score, 12);
        Assert.Equal(0.1, mean.Targets[0].Probes[1].Score, 12);
        Assert.Equal(0.5, mean.Targets[0].Probes[2].Score, 12);
        Assert.Equal(1.0 / 3, mean.Summary.Mean.ForgetAll!.Value, 12);
        Assert.Equal("attacked", best.Summary.Name);
    }

    [Fact]
    public void Sampling_answer_i_draws_with_seed_plus_i_and_a_rerun_repeats_the_answers()
    {
        using var fixture = new RwkuFixture();
        // The random model never hits a reference, so every recall ties at 0 and best-of-n keeps the first answer: that of
        // seed 7 in a run of n = 3 from seed 7.
        Assert.Equal(0, AttackCommand.Run(Sample(fixture, "n3", 3, 1.5, 7)));
        Assert.All(Scores(_temp.File("n3")), v => Assert.Equal(0, v));
        Assert.Equal(0, AttackCommand.Run(Sample(fixture, "s7", 1, 1.5, 7)));
        Assert.Equal(0, AttackCommand.Run(Sample(fixture, "s8", 1, 1.5, 8)));
        Assert.Equal(Predictions(_temp.File("s7")), Predictions(_temp.File("n3")));
        Assert.NotEqual(Predictions(_temp.File("s7")), Predictions(_temp.File("s8")));   // another seed, other answers
        Assert.Equal(0, AttackCommand.Run(Sample(fixture, "n3-again", 3, 1.5, 7)));
        Assert.Equal(Predictions(_temp.File("n3")), Predictions(_temp.File("n3-again")));
        var report = JsonDocument.Parse(File.ReadAllText(_temp.File("n3/attack.json"))).RootElement;
        Assert.Equal(3, report.GetProperty("n").GetInt32());
        Assert.Equal(0, report.GetProperty("forget_all_mean").GetDouble());
    }

    [Fact]
    public void The_command_line_parses_both_attacks_with_every_option()
    {
        object Parse(params string[] args) => args[0] == "attack" ? AttackCommand.Parse(args[1..]) :
            Parser.Default.ParseArguments(args, Verbs.Types).MapResult(o => o, errors => throw new ArgumentException(string.Join("; ", errors)));
        var sample = Assert.IsType<SampleAttackOptions>(Parse("attack", "sample", "-n", "4", "--temperature", "0.7", "--top-p", "0.9", "--seed", "3",
            "--artifacts", "a", "--rwku", "r", "--out", "o", "--before", "b", "--unlearned", "u"));
        Assert.Equal(("sample", 4, 0.7, 0.9, 3L, "b", "u"), (sample.Kind, sample.Samples, sample.Temperature, sample.TopP, sample.Seed, sample.Before, sample.Unlearned));
        var quantize = Assert.IsType<QuantizeAttackOptions>(Parse("attack", "quantize", "--bits", "4", "--scheme", "rtn", "--group-size", "64", "--symmetric",
            "--artifacts", "a", "--weights", "w", "--rwku", "r", "--out", "o", "--no-mmlu"));
        Assert.Equal(QuantizationScheme.Rtn(4, 64, true), SchemeOf(quantize));
        Assert.True(quantize.NoMmlu);
        var ship = Assert.IsType<ShipOptionsCli>(Parse("ship", "--artifacts", "a", "--weights", "w", "--out", "o", "--quantize", "int4", "--block-size", "64"));
        Assert.Equal(("int4", (int?)64), (ship.Quantize, ship.BlockSize));
    }

    [Fact]
    public void Bad_attack_options_are_refused_before_anything_runs()
    {
        T Options<T>(Action<T> change) where T : AttackOptions, new()
        {
            var o = new T { Artifacts = tiny.Artifacts, Rwku = "nowhere", Out = _temp.File("out") };
            change(o);
            return o;
        }
        QuantizeAttackOptions Quantize(Action<QuantizeAttackOptions> change) => Options(change);
        Assert.Contains("expected 8 or 4", Assert.Throws<ArgumentException>(() => AttackCommand.Run(Quantize(o => o.Bits = 3))).Message);
        Assert.Contains("nf4 is 4-bit", Assert.Throws<ArgumentException>(() => AttackCommand.Run(Quantize(o => { o.Scheme = "nf4"; o.GroupSize = 32; }))).Message);
        Assert.Contains("expected rtn or nf4", Assert.Throws<ArgumentException>(() => AttackCommand.Run(Quantize(o => o.Scheme = "gptq"))).Message);
        Assert.Contains("--top-p 0: expected", Assert.Throws<ArgumentException>(() => AttackCommand.Run(Options<SampleAttackOptions>(o => o.TopP = 0))).Message);
        Assert.Contains("--samples 0: expected", Assert.Throws<ArgumentException>(() => AttackCommand.Run(Options<SampleAttackOptions>(o => o.Samples = 0))).Message);
        Assert.Contains("unknown attack 'prune'", Assert.Throws<ArgumentException>(() => AttackCommand.Parse("prune", "--out", "o")).Message);
        Assert.Contains("both --before", Assert.Throws<ArgumentException>(() => AttackCommand.Run(Quantize(o => o.Before = "b.json"))).Message);
        Assert.Contains("do not exist", Assert.Throws<FileNotFoundException>(() => AttackCommand.Run(Quantize(o => { o.Before = "b.json"; o.Unlearned = "u.json"; }))).Message);
        Assert.False(Directory.Exists(_temp.File("out")));
        Assert.Equal(QuantizationScheme.Rtn(8, 0, false), SchemeOf(Quantize(o => o.Bits = 8)));
        Assert.Equal(QuantizationScheme.Rtn(4, 128, true), SchemeOf(Quantize(o => o.Symmetric = true)));
    }
}
