using System.Text.Json;
using AlignThenUnlearn.Sweeps;
using AlignThenUnlearn.Tests.Support;
using AlignThenUnlearn.Unlearning;

namespace AlignThenUnlearn.Tests.Sweeps;

/// <summary>`atu sweep plan`: cells and command lines from a sweep file, against hand-written expectations.</summary>
public sealed class SweepPlanTests : IDisposable
{
    readonly TempFolder _temp = new();
    public void Dispose() => _temp.Dispose();

    string SweepFile(string json)
    {
        var path = _temp.File("sweep.json");
        File.WriteAllText(path, json);
        return path;
    }

    [Fact]
    public void Cells_are_the_product_in_order_targets_methods_presets_layers_with_one_command_each()
    {
        File.WriteAllText(_temp.File("my tiny.json"), AtuPreset.Load("toy").ToJson());
        var file = SweepFile("""
            { "name": "layers", "artifacts": "model", "rwku": "/data/rwku", "targets": "2-3,7", "methods": ["atu"],
              "presets": ["toy", "my tiny.json"], "layers": [10, 20], "device": "cpu", "threads": 1,
              "slurm": { "partition": "gpu", "gpus": 1, "time": "04:00:00", "memory": "32G", "throttle": 2 } }
            """);
        var sweep = _temp.File("out");
        var manifest = SweepPlanner.Plan(file, sweep, ["/opt/atu/atu"]);

        // 3 targets (2, 3, 7) x 1 method x 2 presets x 2 layers = 12 cells; the layer varies fastest, then the preset.
        string[] expected =
        [
            "atu_toy_t002_L10", "atu_toy_t002_L20", "atu_my-tiny_t002_L10", "atu_my-tiny_t002_L20",
            "atu_toy_t003_L10", "atu_toy_t003_L20", "atu_my-tiny_t003_L10", "atu_my-tiny_t003_L20",
            "atu_toy_t007_L10", "atu_toy_t007_L20", "atu_my-tiny_t007_L10", "atu_my-tiny_t007_L20",
        ];
        Assert.Equal(expected, manifest.Cells.Select(c => c.Name));
        Assert.Equal(Enumerable.Range(0, 12), manifest.Cells.Select(c => c.Index));
        Assert.All(manifest.Cells, c => Assert.Equal($"cells/{c.Name}", c.Folder));
        // Valid folder names on every system: letters, digits, '_', '-', '.' only.
        Assert.All(manifest.Cells, c => Assert.Matches("^[A-Za-z0-9_.-]+$", c.Name));

        var cell = manifest.Cells[6];   // target 3, "my tiny.json", layer 10
        Assert.Equal((3, 10, "my tiny.json"), (cell.Target, cell.Layer!.Value, cell.Preset));
        string[] command =
        [
            "run", "--artifacts", _temp.File("model"), "--rwku", "/data/rwku", "--target", "3",
            "--preset", Path.Combine(sweep, "presets", "my-tiny.json"), "--layer", "10",
            "--out", Path.Combine(sweep, "cells", "atu_my-tiny_t003_L10", "run"), "--resume", "--device", "cpu", "--threads", "1",
        ];
        Assert.Equal(command, cell.Command);
        // The preset is copied into the sweep folder as it was planned.
        Assert.Equal(AtuPreset.Load("toy").ToJson(), File.ReadAllText(Path.Combine(sweep, "presets", "my-tiny.json")));

        // The manifest reads back to the same plan; planning again from the same file is allowed, from another is not.
        var read = SweepManifest.Read(sweep);
        Assert.Equal(manifest.ToJson(), read.ToJson());
        Assert.Equal(["/opt/atu/atu"], read.Atu);
        SweepPlanner.Plan(file, sweep, ["/opt/atu/atu"]);
        var other = SweepFile("""{ "artifacts": "model", "rwku": "/data/rwku", "targets": "1-2" }""");
        Assert.Contains("another sweep", Assert.Throws<IOException>(() => SweepPlanner.Plan(other, sweep, ["/opt/atu/atu"])).Message);
    }

    [Fact]
    public void Seeds_become_preset_files_and_a_missing_layer_list_keeps_the_presets_own()
    {
        var file = SweepFile("""{ "artifacts": "/m", "rwku": "/r", "targets": [1, "4-5"], "presets": ["toy"], "seeds": [0, 5] }""");
        var sweep = _temp.File("seeds");
        var manifest = SweepPlanner.Plan(file, sweep, ["atu"]);
        // targets 1, 4, 5 x seeds 0, 5 = 6 cells
        Assert.Equal(["atu_toy_t001_s0", "atu_toy_t001_s5", "atu_toy_t004_s0", "atu_toy_t004_s5", "atu_toy_t005_s0", "atu_toy_t005_s5"], manifest.Cells.Select(c => c.Name));
        Assert.DoesNotContain("--layer", manifest.Cells[0].Command);
        var seed5 = Path.Combine(sweep, "presets", "toy-seed5.json");
        Assert.Equal(seed5, manifest.Cells[1].Command[Array.IndexOf(manifest.Cells[1].Command, "--preset") + 1]);
        Assert.Equal(AtuPreset.Load("toy") with { Seed = 5 }, AtuPreset.Load(seed5), PresetComparer.Instance);
    }

    [Fact]
    public void Baselines_run_with_atu_run_method_their_presets_loaded_as_method_presets_and_lora_as_a_method_name()
    {
        File.WriteAllText(_temp.File("my ga.json"), (MethodPreset.Load("toy-ga") with { Epochs = 1 }).ToJson());
        var file = SweepFile("""
            { "artifacts": "model", "rwku": "/data/rwku", "targets": "4", "methods": ["ga", "npo-lora", "icu"],
              "method_presets": { "ga": ["my ga.json"] }, "layers": [10, 20], "seeds": [3], "device": "cpu", "threads": 2 }
            """);
        var sweep = _temp.File("baselines");
        var manifest = SweepPlanner.Plan(file, sweep, ["atu"]);
        // 1 target x (ga with its file, npo-lora with its default rwku-llama3-npo-lora, icu without preset); the hook
        // layers are ATU's, so a baseline has one cell per seed, and icu (no training) one cell per target.
        Assert.Equal(["ga_my-ga_t004_s3", "npo-lora_rwku-llama3-npo-lora_t004_s3", "icu_t004"], manifest.Cells.Select(c => c.Name));
        Assert.All(manifest.Cells, c => Assert.Matches("^[A-Za-z0-9_.-]+$", c.Name));

        string[] ga =
        [
            "run", "--method", "ga", "--artifacts", _temp.File("model"), "--rwku", "/data/rwku", "--target", "4",
            "--preset", Path.Combine(sweep, "presets", "my-ga-seed3.json"),
            "--out", Path.Combine(sweep, "cells", "ga_my-ga_t004_s3", "run"), "--resume", "--device", "cpu", "--threads", "2",
        ];
        Assert.Equal(ga, manifest.Cells[0].Command);
        Assert.Equal((MethodPreset.Load(_temp.File("my ga.json")) with { Seed = 3 }).ToJson(), File.ReadAllText(Path.Combine(sweep, "presets", "my-ga-seed3.json")));

        string[] npoLora =
        [
            "run", "--method", "npo", "--lora", "--artifacts", _temp.File("model"), "--rwku", "/data/rwku", "--target", "4",
            "--preset", Path.Combine(sweep, "presets", "rwku-llama3-npo-lora-seed3.json"),
            "--out", Path.Combine(sweep, "cells", "npo-lora_rwku-llama3-npo-lora_t004_s3", "run"), "--resume", "--device", "cpu", "--threads", "2",
        ];
        Assert.Equal(npoLora, manifest.Cells[1].Command);
        var npoPreset = MethodPreset.Load(Path.Combine(sweep, "presets", "rwku-llama3-npo-lora-seed3.json"));
        Assert.Equal((MethodPreset.Load("rwku-llama3-npo-lora") with { Seed = 3 }).ToJson(), npoPreset.ToJson());

        Assert.DoesNotContain("--preset", manifest.Cells[2].Command);
        Assert.Equal(["run", "--method", "icu"], manifest.Cells[2].Command[..3]);
        Assert.Equal(("", null, null), (manifest.Cells[2].Preset, manifest.Cells[2].Layer, manifest.Cells[2].Seed));
    }

    [Fact]
    public void A_hundred_targets_from_one_range()
    {
        var file = SweepFile("""{ "artifacts": "/m", "rwku": "/r", "targets": "1-100", "presets": ["paper"], "layers": [10, 20, 30] }""");
        var manifest = SweepPlanner.Plan(file, _temp.File("all"), ["atu"]);
        Assert.Equal(300, manifest.Cells.Length);   // 100 targets x 3 layers
        Assert.Equal("atu_paper_t100_L30", manifest.Cells[^1].Name);
        Assert.Equal(manifest.Cells.Length, manifest.Cells.Select(c => c.Name).Distinct().Count());
    }

    [Theory]
    [InlineData("""{ "artifacts": "/m", "rwku": "/r", "targets": "1-2", "methods": ["atu", "sft"] }""", "'sft' cannot run with this atu")]
    [InlineData("""{ "artifacts": "/m", "rwku": "/r", "targets": "1", "methods": ["ga"], "method_presets": { "ga": ["toy-npo"] } }""", "preset 'toy-npo' of method ga is a npo preset; expected a ga preset")]
    [InlineData("""{ "artifacts": "/m", "rwku": "/r", "targets": "1", "methods": ["ga"], "method_presets": { "npo": ["toy-npo"] } }""", "\"method_presets.npo\"")]
    [InlineData("""{ "artifacts": "/m", "rwku": "/r", "targets": "1", "methods": ["icu"], "method_presets": { "icu": ["toy-ga"] } }""", "\"method_presets.icu\" must not be given")]
    [InlineData("""{ "artifacts": "/m", "rwku": "/r", "targets": "5-3" }""", "'5-3'")]
    [InlineData("""{ "artifacts": "/m", "rwku": "/r", "targets": "1-3,2" }""", "target(s) 2 more than once")]
    [InlineData("""{ "artifacts": "/m", "rwku": "/r" }""", "\"targets\" is missing")]
    [InlineData("""{ "artifacts": "/m", "rwku": "/r", "targets": "1", "eval": ["forget"] }""", "\"eval\" must list forget, neighbor, mmlu")]
    [InlineData("""{ "artifacts": "/m", "rwku": "/r", "targets": "1", "slurm": { "memory": "lots" } }""", "\"slurm.memory\"")]
    [InlineData("""{ "artifacts": "/m", "rwku": "/r", "targets": "1", "layer": [3] }""", "layer")]
    public void Bad_sweep_files_are_refused_at_plan_time_naming_the_key(string json, string message)
    {
        var file = SweepFile(json);
        var error = Assert.Throws<InvalidDataException>(() => SweepPlanner.Plan(file, _temp.File("bad"), ["atu"]));
        Assert.Contains(message, error.Message);
        Assert.False(File.Exists(Path.Combine(_temp.File("bad"), SweepManifest.FileName)));
    }

    [Fact]
    public void Targets_missing_from_a_present_rwku_folder_are_refused()
    {
        using var rwku = new Evaluation.RwkuFixture();   // targets 1 (Ada Quill) and 2 (Cora Lind)
        var file = SweepFile($$"""{ "artifacts": "/m", "rwku": {{JsonSerializer.Serialize(rwku.Root)}}, "targets": "1-3" }""");
        Assert.Contains("target(s) 3 are not in the RWKU folder", Assert.Throws<InvalidDataException>(() => SweepPlanner.Plan(file, _temp.File("x"), ["atu"])).Message);
    }

    [Fact]
    public void Slurm_script_is_one_throttled_requeueable_array_with_the_files_resources()
    {
        var file = SweepFile("""
            { "name": "my sweep", "artifacts": "/m", "rwku": "/r", "targets": "1-4", "presets": ["toy"],
              "slurm": { "partition": "gpu", "gpus": 1, "cpus": 4, "time": "04:00:00", "memory": "32G", "throttle": 2 } }
            """);
        var sweep = _temp.File("s");
        var manifest = SweepPlanner.Plan(file, sweep, ["/opt/atu/atu"]);
        var script = SlurmJobs.Script(sweep, manifest).Split('\n');
        // 4 cells: tasks 0-3, at most 2 at once
        string[] directives =
        [
            "#SBATCH --job-name=my-sweep", "#SBATCH --array=0-3%2", "#SBATCH --requeue", "#SBATCH --cpus-per-task=4",
            "#SBATCH --partition=gpu", "#SBATCH --gpus=1", "#SBATCH --time=04:00:00", "#SBATCH --mem=32G",
            $"#SBATCH --output={sweep}/slurm/%A_%a.out",
        ];
        Assert.All(directives, d => Assert.Contains(d, script));
        Assert.Equal($"exec /opt/atu/atu sweep cell {sweep} \"$SLURM_ARRAY_TASK_ID\"", script.Single(l => l.StartsWith("exec ", StringComparison.Ordinal)));
    }

    /// <summary>Presets compare by their JSON (records with arrays do not compare by value).</summary>
    sealed class PresetComparer : IEqualityComparer<AtuPreset>
    {
        public static readonly PresetComparer Instance = new();
        public bool Equals(AtuPreset? x, AtuPreset? y) => x?.ToJson() == y?.ToJson();
        public int GetHashCode(AtuPreset obj) => obj.ToJson().GetHashCode(StringComparison.Ordinal);
    }
}
