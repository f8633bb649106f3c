using System.Diagnostics;
using System.Text.Json.Nodes;
using AlignThenUnlearn.Cli;
using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Models.Checkpoints;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Tests.Evaluation;
using AlignThenUnlearn.Tests.Support;

namespace AlignThenUnlearn.Tests.Cli;

/// <summary>Issue 13: inputs that used to fake a result, destroy an input or exhaust the machine are refused with a
/// message naming the culprit. Every bad input is built here: NaN and huge tensors, meaningless configuration values,
/// outputs overlapping inputs, leftovers of killed runs, a huge vocabulary, thread counts, broken probe files.</summary>
[Collection(ConsoleCollection.Name)]
public sealed class HardeningTests(TinyChatModel tiny) : IClassFixture<TinyChatModel>, IDisposable
{
    readonly TempFolder _temp = new();
    public void Dispose() => _temp.Dispose();

    const string Tensor = "model.layers.1.mlp.down_proj.weight";

    /// <summary>Overwrites elements [first, first + values.Length) of an F32 tensor in place (the file keeps its size).</summary>
    static void Patch(string file, string tensor, long first, params float[] values)
    {
        long offset;
        using (var read = SafetensorsFile.Open(file))
        {
            Assert.Equal(SafetensorsDType.F32, read.Entry(tensor).DType);
            offset = read.DataStart + read.Entry(tensor).DataBegin + first * 4;
        }
        using var stream = new FileStream(file, FileMode.Open, FileAccess.Write);
        stream.Position = offset;
        foreach (var v in values) stream.Write(BitConverter.GetBytes(v));
    }

    string CopyOfArtifacts(string name)
    {
        var copy = _temp.File(name);
        foreach (var file in Directory.GetFiles(tiny.Artifacts, "*", SearchOption.AllDirectories))
        {
            var target = Path.Combine(copy, Path.GetRelativePath(tiny.Artifacts, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }
        return copy;
    }

    // ---- 1. non-finite weights and logits ----

    [Fact]
    public void Eval_generate_and_forward_of_weights_holding_NaN_fail_naming_the_weights_file_and_the_tensor()
    {
        using var fixture = new RwkuFixture();
        var weights = tiny.OtherWeights("nan", 3, SafetensorsDType.F32);
        Patch(weights, Tensor, 5, float.NaN);

        var eval = new EvalOptions { Artifacts = tiny.Artifacts, Weights = weights, Rwku = fixture.Root, Targets = "1", Out = _temp.File("eval"), Device = "cpu" };
        var e = Assert.Throws<ModelFormatException>(() => EvalCommand.Run(eval));
        Assert.Contains(weights, e.Message);
        Assert.Contains($"'{Tensor}'", e.Message);
        Assert.Contains("element 5", e.Message);
        Assert.False(File.Exists(Path.Combine(_temp.File("eval"), RwkuReports.ResultsFile)));   // no score at all
        // The command line exits non-zero (it used to exit 0 with every forget score 0.0).
        Assert.Equal(1, AtuProgram.Run(["eval", "--artifacts", tiny.Artifacts, "--weights", weights, "--rwku", fixture.Root, "--targets", "1", "--out", _temp.File("eval2"), "--device", "cpu"],
            TextWriter.Null, TextWriter.Null));

        var generate = new GenerateOptions { Artifacts = tiny.Artifacts, Weights = weights, Ids = "1,5", Device = "cpu" };
        Assert.Contains($"'{Tensor}'", Assert.Throws<ModelFormatException>(() => GenerateCommand.Run(generate, TextWriter.Null, TextWriter.Null)).Message);
        var forward = new ForwardOptions { Artifacts = tiny.Artifacts, Weights = weights, Ids = "1,5", Out = _temp.File("f.safetensors"), Device = "cpu" };
        Assert.Contains($"'{Tensor}'", Assert.Throws<ModelFormatException>(() => ForwardCommand.Run(forward)).Message);
        Assert.False(File.Exists(_temp.File("f.safetensors")));
    }

    [Fact]
    public void Export_of_a_snapshot_holding_infinity_fails_naming_the_tensor_and_writes_nothing()
    {
        var hf = _temp.File("hf");
        RandomCheckpoint.Write(tiny.Config, hf, 5, SafetensorsDType.F32);
        TinyChatModel.WriteTokenizer(hf);
        Patch(Path.Combine(hf, SafetensorsCheckpoint.SingleFileName), Tensor, 0, float.PositiveInfinity);
        var out_ = _temp.File("art");
        var e = Assert.Throws<ModelFormatException>(() => ExportCommand.Run(new ExportOptionsCli { HfFolder = hf, Out = out_ }));
        Assert.Contains($"'{Tensor}'", e.Message);
        Assert.Contains("holds Infinity at element 0", e.Message);
        Assert.Equal(["hf"], Directory.GetFileSystemEntries(_temp.Path).Select(Path.GetFileName));   // no artifact, no staging left
    }

    [Fact]
    public void An_artifact_whose_weights_were_edited_in_place_is_refused_by_its_manifest_hash()
    {
        var copy = CopyOfArtifacts("edited");
        ArtifactModel.Open(copy);   // verified (and remembered) as exported
        var weights = Path.Combine(copy, ArtifactExporter.WeightsFile);
        long size = new FileInfo(weights).Length;
        Patch(weights, Tensor, 3, float.NaN);
        Assert.Equal(size, new FileInfo(weights).Length);   // same size: the old size check passed it
        var e = Assert.Throws<InvalidDataException>(() => ArtifactModel.Open(copy));
        Assert.Contains(ArtifactExporter.WeightsFile, e.Message);
        Assert.Contains("SHA-256", e.Message);
    }

    [Fact]
    public void A_model_whose_logits_overflow_fails_the_evaluation_naming_the_probe()
    {
        // Finite weights that pass every check, but lm_head rows of 3e38 make every logit overflow to +-infinity or NaN
        // (sum of 64 products each far beyond float's 3.4e38).
        using var fixture = new RwkuFixture();
        var weights = tiny.OtherWeights("huge", 4, SafetensorsDType.F32);
        Patch(weights, "lm_head.weight", 0, [.. Enumerable.Repeat(3e38f, tiny.Config.VocabSize * tiny.Config.HiddenSize)]);
        var eval = new EvalOptions { Artifacts = tiny.Artifacts, Weights = weights, Rwku = fixture.Root, Targets = "1", Out = _temp.File("eval"), Device = "cpu", BatchSize = 1 };
        var e = Assert.Throws<InvalidDataException>(() => EvalCommand.Run(eval));
        Assert.Contains("not finite", e.Message);
        Assert.Contains("\"Ada Quill was born in ___.\"", e.Message);   // the first forget probe of target 1
        Assert.False(File.Exists(Path.Combine(_temp.File("eval"), RwkuReports.ResultsFile)));
    }

    // ---- 2 and 9. configuration values ----

    [Theory]
    [InlineData("rope_theta", "0", "'rope_theta' is 0")]
    [InlineData("rope_theta", "-10000", "'rope_theta' is -10000")]
    [InlineData("rms_norm_eps", "0", "'rms_norm_eps' is 0")]
    [InlineData("rms_norm_eps", "-1e-5", "'rms_norm_eps' is -1E-05")]
    [InlineData("bos_token_id", "512", "'bos_token_id' is 512")]            // vocab_size 512: ids 0..511
    [InlineData("eos_token_id", "[2, 600]", "'eos_token_id' [2,600]")]
    [InlineData("torch_dtype", "\"float8\"", "'torch_dtype' is \"float8\"")]
    [InlineData("head_dim", "15", "head dimension is 15")]
    public void Meaningless_configuration_values_are_refused_naming_the_file_and_the_key(string key, string value, string expected)
    {
        var config = JsonNode.Parse(File.ReadAllText(RepositoryFiles.Path("models", "tiny-llama-gqa.json")))!.AsObject();
        config[key] = JsonNode.Parse(value);
        var path = _temp.File("config.json");
        File.WriteAllText(path, config.ToJsonString());
        var e = Assert.Throws<ModelFormatException>(() => HfConfig.Load(path));
        Assert.Contains(path, e.Message);
        Assert.Contains(expected, e.Message.Replace(", ", ","), StringComparison.Ordinal);
    }

    [Fact]
    public void A_config_json_that_is_a_directory_is_named_as_such()
    {
        var folder = _temp.File("model");
        Directory.CreateDirectory(Path.Combine(folder, HfConfig.FileName));
        foreach (var path in new[] { folder, Path.Combine(folder, HfConfig.FileName) })
        {
            var e = Assert.Throws<ModelFormatException>(() => HfConfig.Load(path));
            Assert.Contains($"'{Path.Combine(folder, HfConfig.FileName)}' is a directory", e.Message);
        }
    }

    // ---- 3. outputs overlapping inputs ----

    [Fact]
    public void Outputs_equal_to_inside_or_containing_an_input_are_refused_with_force_and_the_input_stays_byte_identical()
    {
        using var fixture = new RwkuFixture();
        var artifacts = CopyOfArtifacts("artifacts");
        string hf = tiny.HfFolder, before = FolderContents.Hash(artifacts), hfBefore = FolderContents.Hash(hf), rwkuBefore = FolderContents.Hash(fixture.Root);
        var weights = Path.Combine(artifacts, ArtifactExporter.WeightsFile);

        Action[] attempts =
        [
            () => ExportCommand.Run(new ExportOptionsCli { HfFolder = hf, Out = hf, Force = true }),
            () => ExportCommand.Run(new ExportOptionsCli { HfFolder = hf, Out = Path.Combine(hf, "inside"), Force = true }),
            () => ExportCommand.Run(new ExportOptionsCli { HfFolder = hf, Out = Path.GetDirectoryName(hf)!, Force = true }),
            () => ShipCommand.Run(new ShipOptionsCli { Artifacts = artifacts, Weights = weights, Out = artifacts, Force = true }),
            () => ShipCommand.Run(new ShipOptionsCli { Artifacts = tiny.Artifacts, Weights = weights, Out = artifacts, Force = true }),   // contains --weights
            () => ForwardCommand.Run(new ForwardOptions { Artifacts = artifacts, Ids = "1", Out = weights, Force = true, Device = "cpu" }),
            () => EvalCommand.Run(new EvalOptions { Artifacts = artifacts, Rwku = fixture.Root, Out = fixture.Root, Force = true, Device = "cpu" }),
            () => EvalCommand.Run(new EvalOptions { Artifacts = artifacts, Rwku = fixture.Root, Out = Path.Combine(artifacts, "eval"), Force = true, Device = "cpu" }),
        ];
        foreach (var attempt in attempts)
            Assert.Contains("refused (also with --force)", Assert.Throws<IOException>(attempt).Message);
        Assert.Equal(before, FolderContents.Hash(artifacts));
        Assert.Equal(hfBefore, FolderContents.Hash(hf));
        Assert.Equal(rwkuBefore, FolderContents.Hash(fixture.Root));
    }

    [Fact]
    public void Overlap_is_judged_after_links_are_resolved()
    {
        var link = _temp.File("link");
        File.CreateSymbolicLink(link, tiny.HfFolder);
        var e = Assert.Throws<IOException>(() => OutputPaths.RequireApart(("--out", Path.Combine(link, "sub")), ("--hf", tiny.HfFolder)));
        Assert.Contains("lies inside the input --hf", e.Message);
        OutputPaths.RequireApart(("--out", tiny.HfFolder + "-sibling"), ("--hf", tiny.HfFolder));   // a common prefix is no overlap
    }

    // ---- 4. evaluation settings that cannot produce an answer ----

    [Theory]
    [InlineData(0)]
    [InlineData(-3)]
    public void Eval_refuses_max_new_tokens_below_one_saying_the_minimum(int tokens)
    {
        using var fixture = new RwkuFixture();
        var e = Assert.Throws<ArgumentException>(() => EvalCommand.Run(new EvalOptions
            { Artifacts = tiny.Artifacts, Rwku = fixture.Root, Targets = "1", Out = _temp.File("eval"), MaxNewTokens = tokens, Device = "cpu" }));
        Assert.Contains($"--max-new-tokens {tokens}: expected 1 or more", e.Message);
        Assert.False(Directory.Exists(_temp.File("eval")));
    }

    // ---- 5. recorded settings (toy pretrain's resume is tested in ToyPretrainingTests) ----

    [Fact]
    public void Recorded_settings_list_every_difference_and_none_when_equal()
    {
        var recorded = new JsonObject { ["Steps"] = 8, ["Seed"] = 1, ["world"] = "ab" };
        var current = new JsonObject { ["Steps"] = 12, ["Seed"] = 1, ["world"] = "ab", ["Extra"] = true };
        Assert.Equal(["Extra: recorded (none), now true", "Steps: recorded 8, now 12"], RecordedSettings.Differences(recorded, current));
        Assert.Empty(RecordedSettings.Differences(recorded, (JsonObject)recorded.DeepClone()));
        var path = _temp.File("settings.json");
        RecordedSettings.Record(path, recorded);
        RecordedSettings.RequireSame(path, (JsonObject)recorded.DeepClone(), "the run");
        Assert.Contains("Steps: recorded 8, now 12", Assert.Throws<InvalidOperationException>(() => RecordedSettings.RequireSame(path, current, "the run")).Message);
    }

    // ---- 6. leftovers and disk space ----

    static int DeadProcessId()
    {
        using var process = Process.Start(new ProcessStartInfo("true") { UseShellExecute = false })!;
        process.WaitForExit();
        return process.Id;
    }

    [Fact]
    public void Export_removes_and_reports_the_staging_leftovers_of_a_killed_run_beside_its_output()
    {
        int dead = DeadProcessId();
        var parent = _temp.File("exports");
        var partial = Path.Combine(parent, $".art.partial-{dead}-{Guid.NewGuid():N}");
        var random = Path.Combine(parent, $".art.random-{dead}-{Guid.NewGuid():N}");
        var alive = Path.Combine(parent, $".art.partial-{Environment.ProcessId}-{Guid.NewGuid():N}");   // a run in progress (this process)
        foreach (var folder in new[] { partial, random, alive })
        {
            Directory.CreateDirectory(folder);
            File.WriteAllBytes(Path.Combine(folder, "weights.safetensors"), new byte[1000]);
        }
        var reports = new List<string>();
        var previous = StagingArea.Report;
        StagingArea.Report = reports.Add;
        try
        {
            Assert.Equal(0, ExportCommand.Run(new ExportOptionsCli { RandomConfig = RepositoryFiles.Path("models", "tiny-llama-gqa.json"), Out = Path.Combine(parent, "art") }));
        }
        finally { StagingArea.Report = previous; }
        Assert.False(Directory.Exists(partial));
        Assert.False(Directory.Exists(random));
        Assert.True(Directory.Exists(alive));
        Assert.Equal(2, reports.Count);
        Assert.All(reports, r => Assert.Contains("(1,000 bytes)", r));
        // Nothing else is left beside the output: the random checkpoint was staged there and removed.
        Assert.Equal([Path.GetFileName(alive), "art"], Directory.GetFileSystemEntries(parent).Select(Path.GetFileName).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void A_configuration_too_large_for_the_disk_is_refused_before_anything_is_written()
    {
        // vocab_size 2e9 with hidden 4096: the embedding alone is 2e9 * 4096 * 2 bytes (bf16) = 16.4 TB.
        var config = JsonNode.Parse(File.ReadAllText(RepositoryFiles.Path("models", "tiny-llama-gqa.json")))!.AsObject();
        config["vocab_size"] = 2_000_000_000;
        config["hidden_size"] = 4096;
        config["head_dim"] = 64;
        var path = _temp.File("huge.json");
        File.WriteAllText(path, config.ToJsonString());
        var e = Assert.Throws<IOException>(() => ExportCommand.Run(new ExportOptionsCli { RandomConfig = path, Out = _temp.File("art") }));
        Assert.Contains("bytes free; nothing was written", e.Message);
        Assert.Equal(["huge.json"], Directory.GetFileSystemEntries(_temp.Path).Select(Path.GetFileName));
    }

    // ---- 7. --out naming an existing file or folder of the other kind ----

    [Fact]
    public void Force_does_not_replace_a_file_by_a_folder_or_a_folder_by_a_file_and_leaves_nothing_stray()
    {
        var file = _temp.File("taken");
        File.WriteAllText(file, "keep me");
        var e = Assert.Throws<IOException>(() => ExportCommand.Run(new ExportOptionsCli { RandomConfig = RepositoryFiles.Path("models", "tiny-llama-gqa.json"), Out = file, Force = true }));
        Assert.Contains("is a file", e.Message);
        Assert.Equal("keep me", File.ReadAllText(file));

        var folder = Directory.CreateDirectory(_temp.File("folder")).FullName;
        e = Assert.Throws<IOException>(() => ForwardCommand.Run(new ForwardOptions { Artifacts = tiny.Artifacts, Ids = "1", Out = folder, Force = true, Device = "cpu" }));
        Assert.Contains("is a folder", e.Message);
        Assert.Equal(["folder", "taken"], Directory.GetFileSystemEntries(_temp.Path).Select(Path.GetFileName).Order(StringComparer.Ordinal));
    }

    // ---- 8. --threads ----

    [Fact]
    public void Threads_from_zero_to_the_logical_processors_are_accepted_and_others_refused()
    {
        ExecutionDevice.Create("cpu", 0).Dispose();
        ExecutionDevice.Create("cpu", Environment.ProcessorCount).Dispose();
        foreach (var threads in new[] { -1, Environment.ProcessorCount + 1, 100000 })
            Assert.Contains($"--threads {threads}: expected 0", Assert.Throws<ArgumentException>(() => ExecutionDevice.Create("cpu", threads)).Message);
        var generate = new GenerateOptions { Artifacts = tiny.Artifacts, Ids = "1", Device = "cpu", Threads = 100000 };
        Assert.Throws<ArgumentException>(() => GenerateCommand.Run(generate, TextWriter.Null, TextWriter.Null));
    }

    // ---- 9. probe files ----

    [Fact]
    public void A_probe_file_that_is_not_UTF8_is_refused_naming_the_file_and_the_byte_offset()
    {
        using var fixture = new RwkuFixture();
        var path = Path.Combine(fixture.Root, "1_Ada_Quill", "forget_level1.json");
        var bytes = File.ReadAllBytes(path);
        int offset = System.Text.Encoding.UTF8.GetString(bytes).IndexOf("Lisbon", StringComparison.Ordinal);   // ASCII before it: chars = bytes
        bytes[offset] = 0xFF;   // never part of UTF-8
        File.WriteAllBytes(path, bytes);
        var dataset = RwkuDataset.Open(fixture.Root);
        var e = Assert.Throws<DatasetFormatException>(() => dataset.Load(dataset.Select("1")[0]));
        Assert.Contains(path, e.Message);
        Assert.Contains($"byte 0xFF at byte offset {offset}", e.Message);
    }

    [Fact]
    public void An_empty_reference_answer_is_refused_naming_file_and_row_before_anything_is_generated()
    {
        using var fixture = new RwkuFixture();
        var path = Path.Combine(fixture.Root, "1_Ada_Quill", "forget_level1.json");
        var rows = JsonNode.Parse(File.ReadAllText(path))!.AsArray();
        rows[1]!["answer"] = " ";
        File.WriteAllText(path, rows.ToJsonString());
        // NaN weights would fail at the first generation: the answer's error comes first, so it is found before.
        var weights = tiny.OtherWeights("nan-too", 3, SafetensorsDType.F32);
        Patch(weights, Tensor, 0, float.NaN);
        var e = Assert.Throws<DatasetFormatException>(() => EvalCommand.Run(new EvalOptions
            { Artifacts = tiny.Artifacts, Weights = weights, Rwku = fixture.Root, Targets = "1", Out = _temp.File("eval"), Device = "cpu" }));
        Assert.Contains($"{path}, row 1, field 'answer'", e.Message);
    }

    // ---- 10. --help and --version ----

    [Theory]
    [InlineData("--help", "eval")]
    [InlineData("--version", "")]
    [InlineData("eval --help", "--max-new-tokens")]
    public void Help_and_version_are_successful_requests_written_to_standard_output(string arguments, string expected)
    {
        using StringWriter stdout = new(), stderr = new();
        Assert.Equal(0, AtuProgram.Run(arguments.Split(' '), stdout, stderr));
        Assert.NotEmpty(stdout.ToString().Trim());
        Assert.Contains(expected, stdout.ToString());
        Assert.Empty(stderr.ToString());
    }

    [Fact]
    public void An_unknown_verb_is_a_parse_error_with_exit_code_2_on_standard_error()
    {
        using StringWriter stdout = new(), stderr = new();
        Assert.Equal(2, AtuProgram.Run(["no-such-verb"], stdout, stderr));
        Assert.Empty(stdout.ToString());
        Assert.NotEmpty(stderr.ToString());
    }
}
