using System.Text.Json;
using System.Text.Json.Nodes;
using AlignThenUnlearn.Cli;
using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Models.Checkpoints;
using AlignThenUnlearn.Onnx;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Tests.Support;
using CommandLine;

namespace AlignThenUnlearn.Tests.Evaluation;

/// <summary>`atu eval` of a folder `atu ship` wrote scores the shipped model.onnx itself (f32 as the artifact with the same
/// weights, int4 as the project's own int4 evaluation); `atu attack --adapters` attacks base + merged LoRA adapters;
/// `atu attack sample --icu` prompts with the ICU prompt.</summary>
[Collection(ConsoleCollection.Name)]
public sealed class ShippedEvalTests(TinyChatModel tiny) : IClassFixture<TinyChatModel>, IDisposable
{
    readonly TempFolder _temp = new();
    public void Dispose() => _temp.Dispose();

    static List<JsonElement> Lines(string folder) =>
        [.. File.ReadAllLines(Path.Combine(folder, RwkuReports.ProbesFile)).Where(l => l.Length > 0).Select(l => JsonDocument.Parse(l).RootElement)];

    static string?[] Predictions(string folder) =>
        [.. Lines(folder).Select(l => l.TryGetProperty("prediction", out var p) ? p.GetString() : null)];

    static double?[] Scores(string folder) =>
        [.. Lines(folder).Select(l => l.GetProperty("score").ValueKind == JsonValueKind.Number ? l.GetProperty("score").GetDouble() : (double?)null)];

    static IReadOnlyList<TargetScores> Targets(string folder) => ResultsJson.Read(Path.Combine(folder, RwkuReports.ResultsFile)).Targets;

    /// <summary>The same probes answered alike, token for token (the same text), and scored alike.</summary>
    static void AssertSameEvaluation(string expected, string actual)
    {
        Assert.Equal(Predictions(expected), Predictions(actual));
        Assert.Equal(Scores(expected), Scores(actual));
        Assert.Equal(Targets(expected), Targets(actual));
    }

    /// <summary>"Trained" weights: random weights of another seed (written once per fixture).</summary>
    string Trained()
    {
        var path = tiny.File(Path.Combine("trained", SafetensorsCheckpoint.SingleFileName));
        return File.Exists(path) ? path : tiny.OtherWeights("trained", 3, SafetensorsDType.F32);
    }

    string Ship(string weights, string name, int? int4BlockSize = null)
    {
        var folder = _temp.File(name);
        ModelShipper.Ship(tiny.Artifacts, weights, folder, new ShipOptions { Format = ShipFormat.Onnx, Int4BlockSize = int4BlockSize });
        return folder;
    }

    EvalOptions Eval(RwkuFixture fixture, string artifacts, string? weights, string output, Action<EvalOptions>? change = null)
    {
        var o = new EvalOptions { Artifacts = artifacts, Weights = weights, Rwku = fixture.Root, Targets = "1-2", Out = _temp.File(output), Name = "run" };
        change?.Invoke(o);
        return o;
    }

    [Fact]
    public void Eval_of_a_shipped_f32_folder_answers_and_scores_as_eval_of_the_artifact_with_the_same_weights()
    {
        using var fixture = new RwkuFixture();
        var trained = Trained();
        var shipped = Ship(trained, "shipped");
        Assert.True(ShippedModel.IsShipped(shipped));
        Assert.False(ShippedModel.IsShipped(tiny.Artifacts));
        Assert.Equal(0, EvalCommand.Run(Eval(fixture, tiny.Artifacts, trained, "artifact")));
        Assert.Equal(0, EvalCommand.Run(Eval(fixture, shipped, null, "from-shipped")));
        AssertSameEvaluation(_temp.File("artifact"), _temp.File("from-shipped"));
        // The comparison tells weights apart: the artifact's own weights answer otherwise.
        Assert.Equal(0, EvalCommand.Run(Eval(fixture, tiny.Artifacts, null, "untrained")));
        Assert.NotEqual(Predictions(_temp.File("artifact")), Predictions(_temp.File("untrained")));
        // Without --name the run is named after the shipped folder.
        Assert.Equal(0, EvalCommand.Run(Eval(fixture, shipped, null, "named", o => o.Name = null)));
        Assert.Equal("shipped", ResultsJson.Read(_temp.File("named/results.json")).Name);
    }

    [Fact]
    public void Eval_of_a_shipped_f16_folder_answers_as_eval_of_an_f16_artifact_with_the_same_weights()
    {
        using var fixture = new RwkuFixture();
        var trained = Trained();
        var shipped = _temp.File("shipped-f16");
        ModelShipper.Ship(tiny.Artifacts, trained, shipped, new ShipOptions { Format = ShipFormat.Onnx, Dtype = SafetensorsDType.F16 });
        Assert.Equal(Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Float16, ShippedModel.Open(shipped).ElementType);   // a float16 cache and logits
        var art16 = tiny.File("artifacts-f16");
        if (!Directory.Exists(art16)) ArtifactExporter.Export(tiny.HfFolder, art16, new ExportOptions { ElementType = global::Onnx.TensorProto.Types.DataType.Float16 });
        // Both hold the weights rounded to float16 (to nearest even) and run the same float16 graph. (The f32 weights
        // themselves would be scored in f32 on the f16 artifact; the cast attack's f16 file is what the shipped folder holds.)
        var cast = tiny.File(Path.Combine("trained-cast-f16", SafetensorsCheckpoint.SingleFileName));
        Directory.CreateDirectory(Path.GetDirectoryName(cast)!);
        AlignThenUnlearn.Evaluation.Attacks.PrecisionCast.Write(tiny.Config, trained, AlignThenUnlearn.Evaluation.Attacks.PrecisionCast.F16, cast);
        Assert.Equal(0, EvalCommand.Run(Eval(fixture, art16, cast, "artifact-f16")));
        Assert.Equal(0, EvalCommand.Run(Eval(fixture, shipped, null, "from-shipped-f16")));
        AssertSameEvaluation(_temp.File("artifact-f16"), _temp.File("from-shipped-f16"));
    }

    [Fact]
    public void Eval_suite_of_a_shipped_folder_scores_every_task_as_the_artifact_with_the_same_weights()
    {
        using var fixture = new RwkuFixture();
        RwkuUtilityFixture.AddTo(fixture);
        var trained = Trained();
        var shipped = Ship(trained, "shipped");
        Assert.Equal(0, EvalCommand.Run(Eval(fixture, tiny.Artifacts, trained, "artifact", o => o.Suite = "rwku")));
        Assert.Equal(0, EvalCommand.Run(Eval(fixture, shipped, null, "from-shipped", o => o.Suite = "rwku")));
        var expected = Lines(_temp.File("artifact"));
        var actual = Lines(_temp.File("from-shipped"));
        Assert.Equal(expected.Count, actual.Count);
        // Every kind of item (probes, MMLU, BBH, TruthfulQA, TriviaQA, fluency, MIA) is in the comparison.
        Assert.Contains(actual, l => l.TryGetProperty("kind", out var k) && k.GetString() == "FM");
        Assert.Contains(actual, l => l.TryGetProperty("kind", out var k) && k.GetString() == "BBH");
        Assert.Equal(Predictions(_temp.File("artifact")), Predictions(_temp.File("from-shipped")));
        foreach (var (e, a) in Scores(_temp.File("artifact")).Zip(Scores(_temp.File("from-shipped"))))
        {
            Assert.Equal(e.HasValue, a.HasValue);
            if (e is double value) Assert.Equal(value, a!.Value, 9);   // the same graph on the same f32 weights
        }
        Assert.Equal(File.ReadAllText(_temp.File("artifact/" + RwkuSuiteReports.UtilityFile)), File.ReadAllText(_temp.File("from-shipped/" + RwkuSuiteReports.UtilityFile)));
    }

    [Fact]
    public void Eval_of_a_shipped_int4_folder_equals_the_projects_own_int4_evaluation()
    {
        using var fixture = new RwkuFixture();
        var trained = Trained();
        var int4 = Ship(trained, "int4", int4BlockSize: 32);
        Assert.Contains(ModelFile.Load(Path.Combine(int4, ModelShipper.OnnxModelFile), loadExternalData: false).Graph.Node, n => n.OpType == "MatMulNBits");
        Assert.Equal(0, EvalCommand.Run(Eval(fixture, int4, null, "from-int4")));
        // The project's int4 evaluation: `atu attack quantize` with the shipper's scheme (asymmetric RTN int4, blocks of 32),
        // the dequantised weights scored through the artifact's f32 graph.
        Assert.Equal(0, AttackCommand.Run(new QuantizeAttackOptions
        {
            Bits = 4, Scheme = "rtn", GroupSize = 32, Artifacts = tiny.Artifacts, Weights = trained,
            Rwku = fixture.Root, Targets = "1-2", Out = _temp.File("attack-int4"), Name = "run",
        }));
        AssertSameEvaluation(_temp.File("attack-int4"), _temp.File("from-int4"));
        // And the quantisation shows: the f32 shipped model answers otherwise.
        Assert.Equal(0, EvalCommand.Run(Eval(fixture, Ship(trained, "f32"), null, "from-f32")));
        Assert.NotEqual(Predictions(_temp.File("from-f32")), Predictions(_temp.File("from-int4")));
    }

    [Fact]
    public void The_decoders_input_and_output_names_are_read_from_genai_config()
    {
        using var fixture = new RwkuFixture();
        var shipped = Ship(Trained(), "shipped");
        // The graph's cache and logits renamed (every node reading or writing them too), genai_config.json naming the new names.
        var renamed = Broken(shipped, "renamed", folder =>
        {
            string Rename(string name) => name == DecoderGraph.LogitsName ? "lm_logits"
                : name.StartsWith("past_key_values.", StringComparison.Ordinal) ? "cache_in." + name["past_key_values.".Length..]
                : name.StartsWith("present.", StringComparison.Ordinal) ? "cache_out." + name["present.".Length..] : name;
            var path = Path.Combine(folder, ModelShipper.OnnxModelFile);
            var model = ModelFile.Load(path, loadExternalData: false);
            foreach (var value in model.Graph.Input.Concat(model.Graph.Output)) value.Name = Rename(value.Name);
            foreach (var node in model.Graph.Node)
            {
                for (int i = 0; i < node.Input.Count; i++) node.Input[i] = Rename(node.Input[i]);
                for (int i = 0; i < node.Output.Count; i++) node.Output[i] = Rename(node.Output[i]);
            }
            ModelFile.Save(model, path);   // the weights stay in model.onnx.data, referenced as before
            var configPath = Path.Combine(folder, GenAiConfig.FileName);
            var json = JsonNode.Parse(File.ReadAllText(configPath))!;
            var decoder = json["model"]!["decoder"]!;
            decoder["inputs"]!["past_key_names"] = "cache_in.%d.key";
            decoder["inputs"]!["past_value_names"] = "cache_in.%d.value";
            decoder["outputs"]!["logits"] = "lm_logits";
            decoder["outputs"]!["present_key_names"] = "cache_out.%d.key";
            decoder["outputs"]!["present_value_names"] = "cache_out.%d.value";
            File.WriteAllText(configPath, json.ToJsonString());
        });
        Assert.Contains(ModelFile.Load(Path.Combine(renamed, ModelShipper.OnnxModelFile), loadExternalData: false).Graph.Input, v => v.Name == "cache_in.1.value");
        Assert.Equal(0, EvalCommand.Run(Eval(fixture, shipped, null, "as-shipped")));
        Assert.Equal(0, EvalCommand.Run(Eval(fixture, renamed, null, "from-renamed")));
        AssertSameEvaluation(_temp.File("as-shipped"), _temp.File("from-renamed"));
    }

    /// <summary>A copy of a shipped folder, changed by <paramref name="change"/>, its shipped.json recorded afresh (as if
    /// it had been shipped so), so that the checks after the hash check are what is tested.</summary>
    string Broken(string shipped, string name, Action<string> change)
    {
        var folder = Directory.CreateDirectory(_temp.File(name)).FullName;
        foreach (var file in Directory.GetFiles(shipped)) File.Copy(file, Path.Combine(folder, Path.GetFileName(file)));
        change(folder);
        ShippedManifest.Of(folder).Save(folder);
        return folder;
    }

    [Fact]
    public void A_shipped_folder_missing_a_part_or_naming_what_its_graph_lacks_is_refused_with_the_file_named()
    {
        using var fixture = new RwkuFixture();
        var shipped = Ship(Trained(), "shipped");
        Exception Refusal(string folder, string? weights = null) =>
            Assert.ThrowsAny<Exception>(() => EvalCommand.Run(Eval(fixture, folder, weights, "out-" + Path.GetFileName(folder))));

        var weights = Refusal(shipped, tiny.File("trained/model.safetensors"));
        Assert.IsType<ArgumentException>(weights);
        Assert.Contains("is a shipped folder (genai_config.json)", weights.Message);

        var noModel = Broken(shipped, "no-model", f => File.Delete(Path.Combine(f, ModelShipper.OnnxModelFile)));
        Assert.Contains($"names the decoder 'model.onnx', which '{noModel}' lacks", Assert.IsType<FileNotFoundException>(Refusal(noModel)).Message);

        var noData = Broken(shipped, "no-data", f => File.Delete(Path.Combine(f, ModelShipper.OnnxDataFile)));
        Assert.Contains("external data 'model.onnx.data'", Assert.IsType<OnnxFormatException>(Refusal(noData)).Message);

        var noConfig = Broken(shipped, "no-config", f => File.Delete(Path.Combine(f, HfConfig.FileName)));
        Assert.Contains($"'{noConfig}' has no config.json", Assert.IsType<FileNotFoundException>(Refusal(noConfig)).Message);

        var noTokenizer = Broken(shipped, "no-tokenizer", f => { foreach (var t in new[] { "tokenizer.model", "tokenizer.json" }) File.Delete(Path.Combine(f, t)); });
        Assert.Contains($"'{noTokenizer}' has no tokenizer files", Assert.IsType<InvalidOperationException>(Refusal(noTokenizer)).Message);

        void EditGenAi(string folder, Action<JsonNode> edit)
        {
            var path = Path.Combine(folder, GenAiConfig.FileName);
            var json = JsonNode.Parse(File.ReadAllText(path))!;
            edit(json);
            File.WriteAllText(path, json.ToJsonString());
        }
        var renamed = Broken(shipped, "renamed", f => EditGenAi(f, j => j["model"]!["decoder"]!["inputs"]!["past_key_names"] = "past.%d.k"));
        var e = Assert.IsType<ModelFormatException>(Refusal(renamed));
        Assert.Contains("has no input 'past.0.k', which", e.Message);
        Assert.Contains(Path.Combine(renamed, GenAiConfig.FileName), e.Message);

        var layers = Broken(shipped, "layers", f => EditGenAi(f, j => j["model"]!["decoder"]!["num_hidden_layers"] = 3));
        Assert.Contains("num_hidden_layers is 3, but", Assert.IsType<ModelFormatException>(Refusal(layers)).Message);

        var noFile = Broken(shipped, "no-filename", f => EditGenAi(f, j => j["model"]!["decoder"]!.AsObject().Remove("filename")));
        Assert.Contains("has no value 'filename'", Assert.IsType<ModelFormatException>(Refusal(noFile)).Message);
        Assert.False(Directory.Exists(_temp.File("out-no-filename")));
    }

    // ---- atu attack --adapters ----

    static readonly LoraOptions Lora = new() { Rank = 2, Alpha = 4, Targets = ["q_proj", "v_proj"] };

    /// <summary>An adapter file as a LoRA run writes it (atu-lora/1 metadata), of uniform values in ±0.3; <paramref name="change"/>
    /// may alter the tensors.</summary>
    string Adapters(string name, Func<List<ParameterSpec>, List<ParameterSpec>>? change = null)
    {
        var specs = Lora.Adapters(tiny.Config).ToList();
        var path = _temp.File(name);
        SafetensorsWriter.Write(path, [.. (change?.Invoke(specs) ?? specs).Select(s => SyntheticTensors.Tensor(s.Name, SafetensorsDType.F32, s.Shape, 5, 0.3f))],
            LoraAdapters.Metadata(Lora));
        return path;
    }

    /// <summary>The merge computed here: W[o, i] += (alpha / rank) * sum_r B[o, r] A[r, i] (scale 4 / 2 = 2) for every adapted
    /// projection (Llama: the projection's own weight), every other weight as it is.</summary>
    string MergedByHand(string baseWeights, string adapters)
    {
        using var base_ = SafetensorsCheckpoint.Open(baseWeights);
        using var lora = SafetensorsCheckpoint.Open(adapters);
        var sources = new List<TensorSource>();
        foreach (var spec in DecoderBuilder.Parameters(tiny.Config))
        {
            var w = base_.ReadSingles(spec.Name);
            var module = spec.Name[..^".weight".Length];
            if (lora.Contains(LoraOptions.AName(module)))
            {
                float[] a = lora.ReadSingles(LoraOptions.AName(module)), b = lora.ReadSingles(LoraOptions.BName(module));
                long outputs = spec.Shape[0], inputs = spec.Shape[1];
                for (long o = 0; o < outputs; o++)
                    for (long i = 0; i < inputs; i++)
                        w[o * inputs + i] += (float)(2.0 * (b[o * 2] * (double)a[i] + b[o * 2 + 1] * (double)a[inputs + i]));
            }
            sources.Add(TensorSource.FromArray(spec.Name, spec.Shape, w));
        }
        var path = _temp.File("merged-by-hand.safetensors");
        SafetensorsWriter.Write(path, sources);
        return path;
    }

    AttackOptions Attack(RwkuFixture fixture, string attack, string? weights, string? adapters, string output, Action<AttackOptions>? change = null)
    {
        AttackOptions o = attack switch
        {
            "quantize" => new QuantizeAttackOptions { Bits = 4, GroupSize = 32 },
            "sample" => new SampleAttackOptions { Samples = 1, Temperature = 0 },
            _ => throw new ArgumentException(attack),
        };
        (o.Artifacts, o.Weights, o.Adapters, o.Rwku, o.Targets, o.Out, o.Name, o.NoMmlu) = (tiny.Artifacts, weights, adapters, fixture.Root, "1", _temp.File(output), "run", true);
        change?.Invoke(o);
        return o;
    }

    [Fact]
    public void Attacking_base_weights_with_adapters_equals_attacking_the_merged_weights()
    {
        using var fixture = new RwkuFixture();
        var trained = Trained();
        var adapters = Adapters("adapters.safetensors");
        var merged = MergedByHand(trained, adapters);
        Assert.Equal(0, AttackCommand.Run(Attack(fixture, "quantize", trained, adapters, "quantize-adapters")));
        Assert.Equal(0, AttackCommand.Run(Attack(fixture, "quantize", merged, null, "quantize-merged")));
        AssertSameEvaluation(_temp.File("quantize-merged"), _temp.File("quantize-adapters"));
        var report = JsonDocument.Parse(File.ReadAllText(_temp.File("quantize-adapters/attack.json"))).RootElement;
        Assert.Equal(trained, report.GetProperty("weights").GetString());
        Assert.Equal(adapters, report.GetProperty("adapters").GetString());
        // The adapters matter: the base weights alone answer otherwise.
        Assert.Equal(0, AttackCommand.Run(Attack(fixture, "quantize", trained, null, "quantize-base")));
        Assert.NotEqual(Predictions(_temp.File("quantize-base")), Predictions(_temp.File("quantize-adapters")));

        // Sampling at temperature 0 (greedy) with adapters answers as eval of the merged weights; without --name the run
        // is named after the weights and the adapters.
        Assert.Equal(0, AttackCommand.Run(Attack(fixture, "sample", trained, adapters, "sample-adapters", o => o.Name = null)));
        Assert.Equal(0, EvalCommand.Run(new EvalOptions { Artifacts = tiny.Artifacts, Weights = merged, Rwku = fixture.Root, Targets = "1", Out = _temp.File("eval-merged"), NoMmlu = true }));
        Assert.Equal(Predictions(_temp.File("eval-merged")), Predictions(_temp.File("sample-adapters")));
        Assert.Equal("model+adapters sample-n1-t0-p1", ResultsJson.Read(_temp.File("sample-adapters/results.json")).Name);
    }

    [Fact]
    public void A_bad_adapter_file_is_refused_naming_the_file_and_the_tensor()
    {
        using var fixture = new RwkuFixture();
        Exception Refusal(string adapters) => Assert.ThrowsAny<Exception>(() => AttackCommand.Run(Attack(fixture, "quantize", null, adapters, "out")));
        const string q0A = "model.layers.0.self_attn.q_proj.lora_A.weight", q0B = "model.layers.0.self_attn.q_proj.lora_B.weight";

        // A layer the 2-layer model lacks.
        var stray = Adapters("stray.safetensors", s => [.. s, new ParameterSpec("model.layers.5.self_attn.q_proj.lora_A.weight", [2, tiny.Config.HiddenSize], global::Onnx.TensorProto.Types.DataType.Float)]);
        var e = Assert.IsType<ModelFormatException>(Refusal(stray));
        Assert.Contains($"'{stray}' holds tensor 'model.layers.5.self_attn.q_proj.lora_A.weight', which is no LoRA adapter of this model", e.Message);

        // A of rank 3 where the metadata says 2.
        var shape = Adapters("shape.safetensors", s => [.. s.Select(p => p.Name == q0A ? p with { Shape = [3, tiny.Config.HiddenSize] } : p)]);
        e = Assert.IsType<ModelFormatException>(Refusal(shape));
        Assert.Contains($"tensor '{q0A}' in '{shape}' has shape [3, {tiny.Config.HiddenSize}]; the model needs [2, {tiny.Config.HiddenSize}]", e.Message);

        // A without its B.
        var half = Adapters("half.safetensors", s => [.. s.Where(p => p.Name != q0B)]);
        e = Assert.IsType<ModelFormatException>(Refusal(half));
        Assert.Contains($"'{half}' holds tensor '{q0A}' but not '{q0B}'", e.Message);

        Assert.Contains("does not exist", Assert.IsType<FileNotFoundException>(Refusal(_temp.File("none.safetensors"))).Message);
        Assert.False(Directory.Exists(_temp.File("out")));
    }

    [Fact]
    public void The_command_line_takes_adapters_on_every_attack()
    {
        foreach (var attack in new[] { "quantize", "relearn", "sample", "cast" })
        {
            var parsed = AttackCommand.Parse(attack, "--artifacts", "a", "--weights", "w", "--adapters", "run/adapters.safetensors", "--rwku", "r", "--out", "o");
            Assert.Equal("run/adapters.safetensors", parsed.Adapters);
        }
    }

    // ---- atu attack sample --icu ----

    [Fact]
    public void Sample_attack_with_icu_prompts_as_eval_with_icu_does()
    {
        using var fixture = new RwkuFixture();
        EvalOptions Plain(string output, bool icu) => new() { Artifacts = tiny.Artifacts, Rwku = fixture.Root, Targets = "1", Out = _temp.File(output), NoMmlu = true, Icu = icu };
        Assert.Equal(0, AttackCommand.Run(Attack(fixture, "sample", null, null, "sample-icu", o => o.Icu = true)));
        Assert.Equal(0, EvalCommand.Run(Plain("eval-icu", icu: true)));
        Assert.Equal(0, EvalCommand.Run(Plain("eval-plain", icu: false)));
        // Temperature 0 is greedy: the ICU prompt's answers, which differ from those of the plain prompt.
        Assert.Equal(Predictions(_temp.File("eval-icu")), Predictions(_temp.File("sample-icu")));
        Assert.NotEqual(Predictions(_temp.File("eval-plain")), Predictions(_temp.File("sample-icu")));
    }
}
