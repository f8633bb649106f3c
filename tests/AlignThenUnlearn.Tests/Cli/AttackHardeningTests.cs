using System.Diagnostics;
using AlignThenUnlearn.Cli;
using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Models.Checkpoints;
using AlignThenUnlearn.Tests.Evaluation;
using AlignThenUnlearn.Tests.Support;

namespace AlignThenUnlearn.Tests.Cli;

/// <summary>Issue 29, groups 2 and 6: each attack kind takes only its own options (and `atu ship` its int4 options only
/// with --quantize int4), and an attack removes the staging folders that killed runs of the same output left behind,
/// never that of a run still alive.</summary>
[Collection(ConsoleCollection.Name)]
public sealed class AttackHardeningTests(TinyChatModel tiny) : IClassFixture<TinyChatModel>, IDisposable
{
    readonly TempFolder _temp = new();
    public void Dispose() => _temp.Dispose();

    // ---- 6. an option of another attack kind is an error naming the option and the kind ----

    [Theory]
    [InlineData("sample", "--bits", "8", "quantize")]
    [InlineData("sample", "--scheme", "foo", "quantize")]
    [InlineData("relearn", "--scheme", "nf4", "quantize")]
    [InlineData("relearn", "--top-p", "7", "sample")]
    [InlineData("quantize", "-n", "3", "sample")]
    [InlineData("quantize", "--steps", "9", "relearn")]
    [InlineData("quantize", "--lr", "1", "relearn")]
    [InlineData("cast", "--bits", "8", "quantize")]
    [InlineData("sample", "--to", "bf16", "cast")]
    public void An_option_of_another_attack_kind_is_refused_naming_the_option_and_both_kinds(string kind, string option, string value, string owner)
    {
        // The old parser took every kind's options on every kind and ignored the foreign ones (exit 0, nothing recorded).
        using var fixture = new RwkuFixture();
        var output = _temp.File("out");
        var stderr = new StringWriter();
        int code = AtuProgram.Run(["attack", kind, option, value, "--artifacts", tiny.Artifacts, "--rwku", fixture.Root, "--targets", "1", "--no-mmlu",
            "--out", output, "--device", "cpu"], TextWriter.Null, stderr);
        Assert.Equal(2, code);
        var message = stderr.ToString();
        Assert.Contains($"atu attack {kind}: {option} is an option of `atu attack {owner}`, not of {kind}", message);
        Assert.False(Path.Exists(output));
        var e = Assert.Throws<ArgumentException>(() => AttackCommand.Parse(kind, option, value, "--artifacts", "a", "--rwku", "r", "--out", "o"));
        Assert.Contains(option, e.Message);
        Assert.Contains(kind, e.Message);
    }

    [Fact]
    public void An_unknown_option_or_kind_is_refused_and_each_kind_parses_its_own_options()
    {
        Assert.Contains("unknown option --shards", Assert.Throws<ArgumentException>(() => AttackCommand.Parse("quantize", "--shards", "2", "--artifacts", "a", "--rwku", "r", "--out", "o")).Message);
        Assert.Contains("unknown attack 'prune'", Assert.Throws<ArgumentException>(() => AttackCommand.Parse("prune")).Message);
        // The README's examples parse as before.
        var quantize = Assert.IsType<QuantizeAttackOptions>(AttackCommand.Parse("quantize", "--bits", "4", "--scheme", "rtn", "--group-size", "32", "--artifacts", "artifacts/phi3",
            "--weights", "w.safetensors", "--rwku", "RWKU", "--targets", "1", "--no-mmlu", "--before", "runs/before", "--unlearned", "runs/king-35", "--out", "runs/king-35-int4"));
        Assert.Equal((4, "rtn", (int?)32, "runs/before"), (quantize.Bits, quantize.Scheme, quantize.GroupSize, quantize.Before));
        var sample = Assert.IsType<SampleAttackOptions>(AttackCommand.Parse("sample", "-n", "16", "--temperature", "1", "--top-p", "0.9", "--seed", "0", "--artifacts", "a",
            "--rwku", "RWKU", "--targets", "1", "--out", "o"));
        Assert.Equal((16, 0.9), (sample.Samples, sample.TopP));
        var relearn = Assert.IsType<RelearnAttackOptions>(AttackCommand.Parse("relearn", "--data", "forget", "--examples", "0,4,16", "--steps", "20", "--lr", "1e-5",
            "--seed", "0", "--artifacts", "a", "--rwku", "RWKU", "--out", "o"));
        Assert.Equal((20L, "0,4,16"), (relearn.Steps, relearn.Examples));
        var cast = Assert.IsType<CastAttackOptions>(AttackCommand.Parse("cast", "--to", "bf16", "--artifacts", "a", "--rwku", "RWKU", "--out", "o"));
        Assert.Equal("bf16", cast.To);
        var adapters = AttackCommand.Parse("quantize", "--bits", "4", "--scheme", "nf4", "--artifacts", "a", "--adapters", "ad.safetensors", "--rwku", "RWKU",
            "--targets", "1", "--series", "GA (L)", "--out", "o");
        Assert.Equal(("ad.safetensors", "GA (L)"), (adapters.Adapters, adapters.Series));
        // eval's --suite is not an attack's: the attack scores the probes (it used to run the suite through eval unrecorded).
        Assert.Contains("--suite", Assert.Throws<ArgumentException>(() => AttackCommand.Run(new CastAttackOptions { Artifacts = "a", Rwku = "r", Out = "o", Suite = "rwku" })).Message);
        var stdout = new StringWriter();
        Assert.Equal(0, AtuProgram.Run(["attack", "relearn", "--help"], stdout, TextWriter.Null));
        Assert.Contains("--examples", stdout.ToString());
        Assert.DoesNotContain("--bits", stdout.ToString());
    }

    [Theory]
    [InlineData("--block-size", "64")]
    [InlineData("--symmetric", null)]
    public void Ship_int4_options_without_quantize_int4_are_refused(string option, string? value)
    {
        // --block-size without --quantize int4 used to ship f32 projections, exit 0.
        var output = _temp.File("shipped");
        var stderr = new StringWriter();
        string[] args = ["ship", "--artifacts", tiny.Artifacts, "--weights", Path.Combine(tiny.Artifacts, ArtifactExporter.WeightsFile), "--out", output,
            "--format", "onnx", option, .. value is null ? Array.Empty<string>() : [value]];
        Assert.Equal(1, AtuProgram.Run(args, TextWriter.Null, stderr));
        var e = Assert.Throws<ArgumentException>(() => ShipCommand.Run(new ShipOptionsCli
        {
            Artifacts = tiny.Artifacts, Weights = Path.Combine(tiny.Artifacts, ArtifactExporter.WeightsFile), Out = output, Format = "onnx",
            BlockSize = value is null ? null : int.Parse(value), Symmetric = value is null,
        }));
        Assert.Contains(option, e.Message);
        Assert.Contains("--quantize int4", e.Message);
        Assert.False(Directory.Exists(output));
    }

    // ---- 2. the staging folder a killed attack leaves is removed by the next run of the same output ----

    [Fact]
    public void A_stale_staging_folder_of_a_killed_attack_is_removed_by_the_next_run_and_a_live_one_is_kept()
    {
        using var fixture = new RwkuFixture();
        var output = _temp.File("attacked");
        // A killed run left its staging folder with a model-sized file: its process is gone (one that ran and exited).
        int deadPid;
        using (var ended = Process.Start(new ProcessStartInfo("true") { UseShellExecute = false })!)
        {
            ended.WaitForExit();
            deadPid = ended.Id;
        }
        var stale = Directory.CreateDirectory(_temp.File($".attacked.quantize-{deadPid}-{Guid.NewGuid():N}")).FullName;
        File.Copy(Path.Combine(tiny.Artifacts, ArtifactExporter.WeightsFile), Path.Combine(stale, "quantized.safetensors"));
        // A run of the same output that is still alive keeps its staging folder.
        using var alive = Process.Start(new ProcessStartInfo("sleep", "300") { UseShellExecute = false })!;
        try
        {
            var live = Directory.CreateDirectory(_temp.File($".attacked.relearn-{alive.Id}-{Guid.NewGuid():N}")).FullName;
            var said = new List<string>();
            var previous = StagingArea.Report;
            StagingArea.Report = said.Add;
            try
            {
                Assert.Equal(0, AttackCommand.Run(new QuantizeAttackOptions
                {
                    Scheme = "rtn", Bits = 8, Artifacts = tiny.Artifacts, Rwku = fixture.Root, Targets = "1", Out = output, NoMmlu = true, Device = "cpu",
                }));
            }
            finally { StagingArea.Report = previous; }
            Assert.False(Directory.Exists(stale));
            Assert.True(Directory.Exists(live));
            Assert.Equal([live], Directory.GetDirectories(_temp.Path, ".attacked.*"));
            var line = Assert.Single(said);   // one line per leftover removed
            Assert.Contains(stale, line);
            Assert.Contains($"process {deadPid}", line);
            // The output is complete: the reports and attack.json (written last).
            foreach (var file in new[] { RwkuReports.ResultsFile, RwkuReports.TableFile, RwkuReports.ProbesFile, RobustnessTable.ReportFile })
                Assert.True(File.Exists(Path.Combine(output, file)), file);
        }
        finally
        {
            alive.Kill();
            alive.WaitForExit();
        }
    }
}
