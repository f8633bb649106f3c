using System.Security.Cryptography;
using System.Text.Json;
using AlignThenUnlearn.Cli;
using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Models.Checkpoints;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Tests.Evaluation;
using AlignThenUnlearn.Tests.Support;

namespace AlignThenUnlearn.Tests.Cli;

/// <summary>Issue 29 (second hardening round), the groups outside the attack code: shipped folders verified by their
/// SHA-256 before they are scored (3), int4 block sizes and the ONNX Runtime load of a shipped folder (4), numeric options
/// of `atu corpus` (5), RWKU's files never an output of `atu corpus` (7), the model card of weights shipped without
/// --card-json (9), empty RWKU task files (10). The sweep faults (8) are in Sweeps/SweepFaultTests.</summary>
[Collection(ConsoleCollection.Name)]
public sealed class HardeningRound2Tests(TinyChatModel tiny) : IClassFixture<TinyChatModel>, IDisposable
{
    readonly TempFolder _temp = new();
    public void Dispose() => _temp.Dispose();

    /// <summary>"Trained" weights: random weights of another seed (written once per fixture).</summary>
    string Trained()
    {
        var path = tiny.File(Path.Combine("trained", SafetensorsCheckpoint.SingleFileName));
        return File.Exists(path) ? path : tiny.OtherWeights("trained", 3, SafetensorsDType.F32);
    }

    /// <summary>Names in <paramref name="parent"/> that start with '.': staging leftovers of a command.</summary>
    static string[] Hidden(string parent) => [.. Directory.EnumerateFileSystemEntries(parent).Select(Path.GetFileName).Where(n => n!.StartsWith('.')).Select(n => n!)];

    // ---- 3. a shipped folder is verified before it is scored ----

    [Fact]
    public void A_shipped_folder_records_the_SHA256_of_every_file_it_holds()
    {
        var shipped = _temp.File("shipped");
        ModelShipper.Ship(tiny.Artifacts, Trained(), shipped, new ShipOptions { Format = ShipFormat.Both });
        using var manifest = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(shipped, ShippedManifest.FileName)));
        var recorded = manifest.RootElement.GetProperty("files").EnumerateArray()
            .ToDictionary(f => f.GetProperty("path").GetString()!, f => (Bytes: f.GetProperty("bytes").GetInt64(), Sha256: f.GetProperty("sha256").GetString()!));
        var present = Directory.GetFiles(shipped, "*", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(shipped, f))
            .Where(f => f != ShippedManifest.FileName).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(present, recorded.Keys.Order(StringComparer.Ordinal));
        Assert.Contains(ModelCard.FileName, present);   // the card too: it states the hashes a user compares against
        foreach (var file in present)
        {
            // Hashed here independently of the product's code.
            var bytes = File.ReadAllBytes(Path.Combine(shipped, file));
            Assert.Equal((bytes.LongLength, Convert.ToHexStringLower(SHA256.HashData(bytes))), recorded[file]);
        }
    }

    [Fact]
    public void A_shipped_folder_whose_embeddings_were_overwritten_with_finite_values_is_refused_naming_the_file()
    {
        using var fixture = new RwkuFixture();
        var shipped = _temp.File("shipped");
        ModelShipper.Ship(tiny.Artifacts, Trained(), shipped, new ShipOptions { Format = ShipFormat.Onnx });
        // The embeddings are the first tensor of model.onnx.data (offset 0): overwrite them with a finite value in place,
        // so the file keeps its size and every value stays finite (the NaN check cannot see it, only the hash can).
        var data = Path.Combine(shipped, ModelShipper.OnnxDataFile);
        long size = new FileInfo(data).Length;
        using (var stream = new FileStream(data, FileMode.Open, FileAccess.Write))
            for (int i = 0; i < 1024; i++) stream.Write(BitConverter.GetBytes(0.25f));
        Assert.Equal(size, new FileInfo(data).Length);

        var eval = new EvalOptions { Artifacts = shipped, Rwku = fixture.Root, Targets = "1", Out = _temp.File("eval"), Device = "cpu" };
        var e = Assert.Throws<InvalidDataException>(() => EvalCommand.Run(eval));
        Assert.Contains(ModelShipper.OnnxDataFile, e.Message);
        Assert.Contains("SHA-256", e.Message);
        Assert.False(Directory.Exists(_temp.File("eval")));   // no score at all (it used to be forget All 0.0, exit 0)
        Assert.Equal(1, AtuProgram.Run(["eval", "--artifacts", shipped, "--rwku", fixture.Root, "--targets", "1", "--out", _temp.File("eval2"), "--device", "cpu"],
            TextWriter.Null, TextWriter.Null));

        // A shipped folder without its record cannot be verified, so it is not scored either.
        var unrecorded = _temp.File("unrecorded");
        ModelShipper.Ship(tiny.Artifacts, Trained(), unrecorded, new ShipOptions { Format = ShipFormat.Onnx });
        File.Delete(Path.Combine(unrecorded, ShippedManifest.FileName));
        Assert.Contains(ShippedManifest.FileName, Assert.ThrowsAny<IOException>(() => ShippedModel.Open(unrecorded)).Message);
        // An intact one opens.
        var intact = _temp.File("intact");
        ModelShipper.Ship(tiny.Artifacts, Trained(), intact, new ShipOptions { Format = ShipFormat.Onnx });
        Assert.Equal(tiny.Config.NumHiddenLayers, ShippedModel.Open(intact).Config.NumHiddenLayers);
    }

    // ---- 4. int4 block sizes; a shipped folder is loaded by ONNX Runtime before it is declared done ----

    ShipOptionsCli Int4(int blockSize, string output) => new()
    {
        Artifacts = tiny.Artifacts, Weights = Trained(), Out = _temp.File(output), Format = "onnx", Quantize = "int4", BlockSize = blockSize,
    };

    [Theory]
    [InlineData(512)]
    [InlineData(65536)]
    [InlineData(1 << 23)]   // used to overflow the stack (exit 134, staging folder left behind)
    [InlineData(1 << 24)]   // used to overflow an int
    [InlineData(1 << 30)]
    [InlineData(8)]
    [InlineData(48)]
    [InlineData(0)]
    [InlineData(-32)]
    public void Int4_block_sizes_MatMulNBits_does_not_run_are_refused_at_option_validation(int blockSize)
    {
        var e = Assert.Throws<ArgumentException>(() => ShipCommand.Run(Int4(blockSize, "int4")));
        Assert.Contains($"--block-size {blockSize}", e.Message);
        Assert.Contains("16, 32, 64, 128 or 256", e.Message);
        Assert.False(Directory.Exists(_temp.File("int4")));
        Assert.Empty(Hidden(_temp.Path));
    }

    [Theory]
    [InlineData(16)]
    [InlineData(256)]
    public void Int4_block_sizes_16_to_256_ship_a_folder_ONNX_Runtime_runs(int blockSize)
    {
        Assert.Equal(0, ShipCommand.Run(Int4(blockSize, "int4")));
        using var generator = GreedyGenerator.Open(ShippedModel.Open(_temp.File("int4")), GradCheck.Cpu);
        Assert.InRange(generator.Generate([[1, 5, 9]], 4, []).Single().Tokens.Length, 1, 4);
    }

    [Fact]
    public void A_shipped_folder_ONNX_Runtime_cannot_load_is_not_declared_done_and_its_staging_folder_is_removed()
    {
        // The load check sees the finished staging folder; here its model.onnx is broken first, as a writer bug would.
        string? seen = null;
        var options = new ShipOptions
        {
            Format = ShipFormat.Onnx,
            LoadCheck = staging =>
            {
                seen = staging;
                File.WriteAllBytes(Path.Combine(staging, ModelShipper.OnnxModelFile), [1, 2, 3]);
                ShippedModel.CheckLoads(staging);
            },
        };
        var e = Assert.ThrowsAny<Exception>(() => ModelShipper.Ship(tiny.Artifacts, Trained(), _temp.File("broken"), options));
        Assert.Contains("ONNX Runtime", e.Message);
        Assert.NotNull(seen);
        Assert.NotEqual(_temp.File("broken"), seen);   // checked before the rename into place
        Assert.False(Directory.Exists(_temp.File("broken")));
        Assert.False(Directory.Exists(seen));
        Assert.Empty(Hidden(_temp.Path));
        // The CLI always loads what it ships: an intact folder passes the same check.
        Assert.Equal(0, ShipCommand.Run(Int4(32, "ok")));
        ShippedModel.CheckLoads(_temp.File("ok"));
    }

    /// <summary>`atu ship --quantize int4` killed with SIGKILL mid-way, then run again with the same command line: no
    /// leftover anywhere beside the output, and the folder of an uninterrupted run byte for byte. The model is large
    /// enough (21M parameters) for the kill to land while the staging folder is being written.</summary>
    [SkippableFact]
    public void Ship_int4_killed_with_SIGKILL_mid_way_then_run_again_leaves_no_leftover_and_the_uninterrupted_output()
    {
        if (!OperatingSystem.IsLinux()) throw new SkipTestException("kills with SIGKILL");
        var config = HfConfig.Load(RepositoryFiles.Path("models", "tiny-llama-gqa.json")) with
        {
            HiddenSize = 512, IntermediateSize = 1376, NumHiddenLayers = 4, NumAttentionHeads = 8, NumKeyValueHeads = 4, VocabSize = 8000,
        };
        RandomCheckpoint.Write(config, _temp.File("hf"), seed: 5, SafetensorsDType.F32);
        ArtifactExporter.Export(_temp.File("hf"), _temp.File("art"), new ExportOptions { MaxSequenceLength = 64 });
        var weights = Path.Combine(_temp.File("hf"), SafetensorsCheckpoint.SingleFileName);
        var output = Directory.CreateDirectory(_temp.File("out")).FullName;
        string[] Ship(string name) => ["ship", "--artifacts", _temp.File("art"), "--weights", weights, "--out", Path.Combine(output, name), "--format", "onnx", "--quantize", "int4"];
        static System.Diagnostics.Process Start(string[] arguments) => AtuProcess.Start(arguments);
        static int Wait(System.Diagnostics.Process process) => AtuProcess.Wait(process);
        using (var whole = Start(Ship("whole"))) Assert.Equal(0, Wait(whole));

        using (var cut = Start(Ship("cut")))
        {
            // Mid-way: once the staging folder beside the output holds the ONNX weights being written.
            var clock = System.Diagnostics.Stopwatch.StartNew();
            while (!Directory.EnumerateFiles(output, ModelShipper.OnnxDataFile, SearchOption.AllDirectories).Any(f => Path.GetFileName(Path.GetDirectoryName(f))!.StartsWith(".cut.partial")))
            {
                Assert.False(cut.HasExited, "atu ship ended before it could be killed mid-way");
                Assert.True(clock.Elapsed < TimeSpan.FromMinutes(5));
                Thread.Sleep(5);
            }
            cut.Kill();
            cut.WaitForExit();
        }
        Assert.False(Directory.Exists(Path.Combine(output, "cut")));
        Assert.NotEmpty(Hidden(output));   // what the kill left behind ...

        using (var again = Start(Ship("cut"))) Assert.Equal(0, Wait(again));
        Assert.Empty(Hidden(output));      // ... the next run removed
        var expected = Directory.GetFiles(Path.Combine(output, "whole")).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(expected, Directory.GetFiles(Path.Combine(output, "cut")).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        foreach (var file in expected)
            Assert.True(File.ReadAllBytes(Path.Combine(output, "whole", file!)).AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(output, "cut", file!))), file);
    }

    // ---- 5. numeric options of atu corpus ----

    CorpusOptions Corpus(RwkuFixture fixture, string file = "positive_tiny.json") => new()
    {
        Artifacts = tiny.Artifacts, Rwku = fixture.Root, Targets = "1", File = file, Samples = 2, MaxNewTokens = 8, Device = "cpu",
    };

    public static TheoryData<string, double, double> BadSampling => new()
    {
        { "--top-p", 0.9 , double.NaN },
        { "--top-p", 0.9, double.PositiveInfinity },
        { "--top-p", 0.9, 0 },
        { "--top-p", 0.9, 1.5 },
        { "--top-p", 0.9, -0.1 },
        { "--temperature", double.NaN, 0.9 },
        { "--temperature", double.PositiveInfinity, 0.9 },
        { "--temperature", -1, 0.9 },
    };

    [Theory]
    [MemberData(nameof(BadSampling))]
    public void Corpus_refuses_non_finite_and_out_of_range_sampling_options_before_anything_is_written(string option, double temperature, double topP)
    {
        using var fixture = new RwkuFixture();
        var o = Corpus(fixture);
        o.Temperature = temperature;
        o.TopP = topP;
        var e = Assert.Throws<ArgumentException>(() => CorpusCommand.Run(o));
        Assert.StartsWith(option + " ", e.Message);
        Assert.False(File.Exists(Path.Combine(fixture.Root, "1_Ada_Quill", "positive_tiny.json")));
    }

    [Theory]
    [InlineData("--samples", 0, 8)]
    [InlineData("--samples", 1_000_001, 8)]
    [InlineData("--max-new-tokens", 2, 0)]
    [InlineData("--max-new-tokens", 2, 1_000_000)]   // beyond the model's context
    public void Corpus_refuses_counts_outside_their_range(string option, int samples, int maxNewTokens)
    {
        using var fixture = new RwkuFixture();
        var o = Corpus(fixture);
        o.Samples = samples;
        o.MaxNewTokens = maxNewTokens;
        Assert.StartsWith(option + " ", Assert.Throws<ArgumentException>(() => CorpusCommand.Run(o)).Message);
    }

    // ---- 7. RWKU's files are never an output of atu corpus ----

    [Theory]
    [InlineData("forget_level1.json")]
    [InlineData("forget_mia.json")]
    [InlineData("retain_mmlu.json")]
    [InlineData("neighbor_level2.json")]
    [InlineData("triviaqa.json")]
    [InlineData("positive.json")]
    [InlineData("reject_phi.json")]
    public void Corpus_never_writes_an_RWKU_dataset_file_also_with_force(string file)
    {
        using var fixture = new RwkuFixture();
        RwkuUtilityFixture.AddTo(fixture);
        var path = Path.Combine(fixture.Root, "1_Ada_Quill", file);
        if (!File.Exists(path)) File.WriteAllText(path, "[]");
        var before = File.ReadAllBytes(path);
        var o = Corpus(fixture, file);
        o.Force = true;
        var e = Assert.Throws<ArgumentException>(() => CorpusCommand.Run(o));
        Assert.Contains($"--file '{file}'", e.Message);
        Assert.Contains("RWKU", e.Message);
        Assert.Equal(before, File.ReadAllBytes(path));
    }

    // ---- 9. the model card of weights shipped without --card-json ----

    /// <summary>A run folder as `atu run --method` leaves it (preset.json and settings.json, as MethodRun writes them),
    /// with the weights in final/.</summary>
    string GaRunWeights()
    {
        var run = Directory.CreateDirectory(_temp.File("runs/ga-ada")).FullName;
        var preset = AlignThenUnlearn.Unlearning.MethodPreset.Load("toy-ga");
        File.WriteAllText(Path.Combine(run, "preset.json"), preset.ToJson());
        File.WriteAllText(Path.Combine(run, "settings.json"), new System.Text.Json.Nodes.JsonObject
        {
            ["preset"] = System.Text.Json.Nodes.JsonNode.Parse(preset.ToJson()), ["target"] = RwkuFixture.Ada,
        }.ToJsonString());
        var weights = Path.Combine(Directory.CreateDirectory(Path.Combine(run, "final")).FullName, "model.safetensors");
        File.Copy(Trained(), weights);
        return weights;
    }

    [Fact]
    public void Weights_shipped_without_card_json_get_the_method_and_target_of_their_run_folder_and_no_invented_base_model()
    {
        var weights = GaRunWeights();
        Assert.Equal(0, ShipCommand.Run(new ShipOptionsCli { Artifacts = tiny.Artifacts, Weights = weights, Out = _temp.File("ga"), Format = "safetensors" }));
        var card = File.ReadAllText(_temp.File("ga/README.md"));
        Assert.Contains("| method | ga |", card);
        Assert.Contains($"| target | {RwkuFixture.Ada} |", card);
        Assert.DoesNotContain("Align-then-Unlearn", card.Replace("align-then-unlearn", ""));   // only the project's tag stays
        // The artifact was exported from a folder named "hf" and its config.json names no model (_name_or_path).
        Assert.StartsWith("---\nbase_model: \"unknown\"\n", card);

        // Weights outside a run folder: the method is not known either.
        Assert.Equal(0, ShipCommand.Run(new ShipOptionsCli { Artifacts = tiny.Artifacts, Weights = Trained(), Out = _temp.File("loose"), Format = "safetensors" }));
        var loose = File.ReadAllText(_temp.File("loose/README.md"));
        Assert.Contains("| method | unknown |", loose);
        Assert.DoesNotContain("Align-then-Unlearn", loose);
    }

    /// <summary>Group 9: an attack (or eval) of a run's checkpoint without --series showed "-" as its method, and every
    /// checkpoint was named "model" (the file name each checkpoint folder uses): the run folder's records fill both in.</summary>
    [Fact]
    public void An_attacked_checkpoint_of_a_run_folder_is_named_by_run_and_checkpoint_and_its_series_is_the_recorded_method()
    {
        using var fixture = new RwkuFixture();
        var weights = GaRunWeights();
        var output = _temp.File("attacked");
        Assert.Equal(0, AttackCommand.Run(new QuantizeAttackOptions
        {
            Scheme = "rtn", Bits = 8, Artifacts = tiny.Artifacts, Weights = weights, Rwku = fixture.Root, Targets = "1", Out = output, NoMmlu = true, Device = "cpu",
        }));
        using var attack = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(output, RobustnessTable.ReportFile)));
        Assert.Equal("ga", attack.RootElement.GetProperty("series").GetString());
        using var results = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(output, RwkuReports.ResultsFile)));
        Assert.Equal("ga-ada/final rtn-int8-channel-asym", results.RootElement.GetProperty("run").GetString());

        // eval names the checkpoint the same way; --series and --name still win.
        var o = new EvalOptions { Artifacts = tiny.Artifacts, Weights = weights, Rwku = fixture.Root, Targets = "1", Out = _temp.File("eval"), Device = "cpu" };
        Assert.Equal(("ga-ada/final", "ga"), (EvalCommand.DefaultName(o), EvalCommand.SeriesOf(o, o.Weights)));
        o.Series = "GA (mine)";
        o.Name = "mine";
        Assert.Equal(("mine", "GA (mine)"), (EvalCommand.RunName(o), EvalCommand.SeriesOf(o, o.Weights)));
        // Weights outside a run folder keep their file name and no series.
        var loose = new EvalOptions { Artifacts = tiny.Artifacts, Weights = Trained(), Rwku = fixture.Root, Out = _temp.File("loose-eval") };
        Assert.Equal((Path.GetFileNameWithoutExtension(Trained()), (string?)null), (EvalCommand.DefaultName(loose), EvalCommand.SeriesOf(loose, loose.Weights)));
    }

    // ---- 10. an empty RWKU task file is named ----

    [Theory]
    [InlineData("triviaqa.json")]
    [InlineData("forget_mia.json")]
    [InlineData("fluency.json")]
    public void An_empty_task_file_in_the_rwku_suite_is_refused_naming_the_file(string file)
    {
        using var fixture = new RwkuFixture();
        RwkuUtilityFixture.AddTo(fixture);
        var path = Path.Combine(fixture.Root, "1_Ada_Quill", file);
        File.WriteAllText(path, "[]");
        var o = new EvalOptions { Artifacts = tiny.Artifacts, Rwku = fixture.Root, Targets = "1", Out = _temp.File("suite"), Suite = "rwku", Device = "cpu" };
        var e = Assert.ThrowsAny<Exception>(() => EvalCommand.Run(o));
        Assert.Contains(path, e.Message);
        Assert.Contains("no rows", e.Message);
        Assert.False(File.Exists(Path.Combine(_temp.File("suite"), RwkuReports.TableFile)));
    }
}
