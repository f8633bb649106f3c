using System.Text.Json;
using System.Text.Json.Nodes;
using AlignThenUnlearn.Cli;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Models.Checkpoints;
using AlignThenUnlearn.Tests.Support;
using Json.Schema;

namespace AlignThenUnlearn.Tests.Docs;

/// <summary>The JSON Schemas of docs/schemas/ describe the files the program writes: manifest.json of artifact folders
/// exported from the repository's tiny configurations, shipped.json and genai_config.json of `atu ship` (f16, int4),
/// and the --card-json file that `atu ship` reads (the example of docs/deployment.md; a file the program refuses is
/// refused by the schema too).</summary>
[Collection(ConsoleCollection.Name)]
public sealed class SchemaTests : IDisposable
{
    readonly TempFolder _temp = new();
    public void Dispose() => _temp.Dispose();

    static readonly Lazy<Dictionary<string, JsonSchema>> Schemas = new(() =>
    {
        var options = new BuildOptions { SchemaRegistry = new SchemaRegistry() };
        // manifest first: shipped.schema.json refers to its file list.
        return new[] { "manifest", "shipped", "genai_config", "card" }.ToDictionary(name => name,
            name => JsonSchema.FromText(File.ReadAllText(RepositoryFiles.Path("docs", "schemas", $"{name}.schema.json")), options));
    });

    static EvaluationResults Evaluate(string schema, string json)
    {
        using var document = JsonDocument.Parse(json);
        return Schemas.Value[schema].Evaluate(document.RootElement, new EvaluationOptions { OutputFormat = OutputFormat.List });
    }

    static void AssertValid(string schema, string path)
    {
        var result = Evaluate(schema, File.ReadAllText(path));
        var errors = (result.Details ?? []).Where(d => d.Errors is not null)
            .SelectMany(d => d.Errors!.Select(e => $"{d.InstanceLocation}: {e.Key}: {e.Value}"));
        Assert.True(result.IsValid, $"{path} does not follow docs/schemas/{schema}.schema.json: {string.Join("; ", errors)}");
    }

    [Theory]
    [InlineData("tiny-llama-gqa.json")]
    [InlineData("tiny-phi3.json")]
    [InlineData("tiny-qwen2.json")]
    public void Exported_and_shipped_files_follow_their_schemas(string configFile)
    {
        var config = HfConfig.Load(RepositoryFiles.Path("models", configFile));
        var hf = _temp.File("hf");
        RandomCheckpoint.Write(config, hf, seed: 3, SafetensorsDType.F32, std: 0.1);
        var artifacts = _temp.File("artifacts");
        ArtifactExporter.Export(hf, artifacts, new ExportOptions { MaxSequenceLength = 64 });
        AssertValid("manifest", Path.Combine(artifacts, ArtifactManifest.FileName));

        var weights = Path.Combine(artifacts, ArtifactExporter.WeightsFile);
        var card = _temp.File("card.json");
        File.WriteAllText(card, DeploymentCardExample());
        foreach (var (name, extra) in new[] { ("f16", new[] { "--format", "both", "--dtype", "f16", "--card-json", card }), ("int4", ["--format", "onnx", "--quantize", "int4"]) })
        {
            var shipped = _temp.File(name);
            Assert.Equal(0, AtuProgram.Run(["ship", "--artifacts", artifacts, "--weights", weights, "--out", shipped, .. extra], TextWriter.Null, TextWriter.Null));
            AssertValid("shipped", Path.Combine(shipped, ShippedManifest.FileName));
            AssertValid("genai_config", Path.Combine(shipped, "genai_config.json"));
        }
    }

    /// <summary>The --card-json example of docs/deployment.md (its only ```json block that has "base_model").</summary>
    static string DeploymentCardExample()
    {
        var text = File.ReadAllText(RepositoryFiles.Path("docs", "deployment.md"));
        var blocks = text.Split("```json\n").Skip(1).Select(b => b[..b.IndexOf("```", StringComparison.Ordinal)]).Where(b => b.Contains("\"base_model\"")).ToList();
        return Assert.Single(blocks);
    }

    [Fact]
    public void The_documented_card_example_is_valid_for_the_schema_and_the_program()
    {
        var card = _temp.File("card.json");
        File.WriteAllText(card, DeploymentCardExample());
        AssertValid("card", card);
        Assert.Equal("Stephen King", ModelCardFacts.Load(card).Target);
    }

    [Theory]
    [InlineData("""{ "taget": "Stephen King" }""")]                       // a misspelt key
    [InlineData("""{ "target": 7 }""")]                                    // not a string
    [InlineData("""{ "hyperparameters": { "lr": { "peak": 1e-5 } } }""")]  // not a scalar
    [InlineData("""[ "Stephen King" ]""")]                                 // not an object
    public void A_card_the_program_refuses_the_schema_refuses(string json)
    {
        var card = _temp.File("card.json");
        File.WriteAllText(card, json);
        Assert.Throws<InvalidDataException>(() => ModelCardFacts.Load(card));
        Assert.False(Evaluate("card", json).IsValid, $"the card schema accepts {json}");
    }

    [Fact]
    public void A_manifest_with_a_damaged_hash_or_an_unknown_key_is_invalid()
    {
        const string file = """{ "path": "config.json", "bytes": 4, "sha256": "0000000000000000000000000000000000000000000000000000000000000000" }""";
        string Manifest(string files, string more = "") =>
            $$"""{ "format": "atu-artifacts", "version": 1, "family": "llama", "config": { "model_type": "llama", "hidden_size": 8, "num_hidden_layers": 1, "vocab_size": 10 }, "dtype": "f32", "max_sequence_length": 8, "created_by": "atu", "files": [{{files}}]{{more}} }""";
        Assert.True(Evaluate("manifest", Manifest(file)).IsValid);
        Assert.False(Evaluate("manifest", Manifest(file.Replace("\"00000", "\"0000"))).IsValid);    // 63 hex digits
        Assert.False(Evaluate("manifest", Manifest(file, ", \"colour\": 1")).IsValid);
        Assert.False(Evaluate("manifest", Manifest(file.Replace("config.json", "/etc/passwd"))).IsValid);
    }
}
