using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace AlignThenUnlearn.Models;

/// <summary>What the model card of a shipped model says about how it was made, from the <c>--card-json</c> file that
/// later verbs write (every key optional):
/// <code>
/// {
///   "base_model": "microsoft/Phi-3-mini-4k-instruct",
///   "target": "Stephen King",
///   "method": "Align-then-Unlearn",
///   "hyperparameters": { "learning_rate": 1e-5, "tau": 0.3, "steps": 200 },
///   "results": { "forget": { "fb": 0.12 }, "neighbor": { "fb": 0.61 }, "mmlu": 0.68 }
/// }
/// </code>
/// <c>hyperparameters</c> is an object of scalars; <c>results</c> any JSON (an <c>atu</c> results.json fits), shown
/// flattened to dotted names. Unknown keys are refused, so a misspelt one is not silently dropped.</summary>
public sealed record ModelCardFacts
{
    /// <summary>What the card says of a fact no record gives (never a guess that reads as a fact).</summary>
    public const string Unknown = "unknown";
    static readonly string[] Keys = ["base_model", "target", "method", "hyperparameters", "results"];

    public string? BaseModel { get; init; }
    public string? Target { get; init; }
    public string? Method { get; init; }
    public JsonObject? Hyperparameters { get; init; }
    public JsonNode? Results { get; init; }

    public static ModelCardFacts Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"model card facts '{path}' do not exist", path);
        JsonNode? root;
        try { root = JsonNode.Parse(File.ReadAllText(path)); }
        catch (JsonException e) { throw new InvalidDataException($"'{path}' is not valid JSON: {e.Message}", e); }
        if (root is not JsonObject card) throw new InvalidDataException($"'{path}' is not a JSON object with {string.Join(", ", Keys)}");
        foreach (var (key, _) in card)
            if (!Keys.Contains(key)) throw new InvalidDataException($"'{path}': unknown key '{key}' (known: {string.Join(", ", Keys)})");
        string? Text(string key) => card[key] switch
        {
            null => null,
            JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>(),
            var other => throw new InvalidDataException($"'{path}': '{key}' is {other.ToJsonString()}, not a string"),
        };
        var hyperparameters = card["hyperparameters"] switch
        {
            null => null,
            JsonObject o when o.All(p => p.Value is null or JsonValue) => o,
            var other => throw new InvalidDataException($"'{path}': 'hyperparameters' must be an object of numbers, strings or booleans, not {other.ToJsonString()}"),
        };
        return new ModelCardFacts
        {
            BaseModel = Text("base_model"),
            Target = Text("target"),
            Method = Text("method"),
            Hyperparameters = (JsonObject?)hyperparameters?.DeepClone(),
            Results = card["results"]?.DeepClone(),
        };
    }
}

/// <summary>One shipped file as the card lists it.</summary>
public sealed record ShippedFile(string Path, long Bytes, string Sha256);

/// <summary>The <c>README.md</c> of a shipped model: a Hugging Face model card (YAML front matter, then Markdown) with
/// the base model, the unlearning target, method and hyperparameters, evaluation results when given, the formats and
/// files shipped, and how to load them.</summary>
public static class ModelCard
{
    public const string FileName = "README.md";

    public sealed record Contents(ModelCardFacts Facts, DecoderConfig Config, string BaseModel, string? OnnxDtype, string? SafetensorsDtype,
        int ContextLength, IReadOnlyList<ShippedFile> Files);

    public static string Render(Contents c)
    {
        var facts = c.Facts;
        var target = facts.Target ?? "(not stated)";
        var text = new StringBuilder();
        text.AppendLine("---");
        text.AppendLine($"base_model: {Yaml(c.BaseModel)}");
        text.AppendLine($"library_name: {(c.SafetensorsDtype is not null ? "transformers" : "onnxruntime-genai")}");
        text.AppendLine("tags:");
        foreach (var tag in new[] { "unlearning", "align-then-unlearn", c.Config.ModelType }
                     .Concat(c.OnnxDtype is not null ? ["onnx", "onnxruntime-genai"] : [])
                     .Concat(c.SafetensorsDtype is not null ? ["safetensors"] : []))
            text.AppendLine($"- {Yaml(tag)}");
        text.AppendLine("---");
        text.AppendLine();
        text.AppendLine($"# {c.BaseModel}, unlearned: {target}");
        text.AppendLine();
        text.AppendLine($"This model is **{c.BaseModel}** after unlearning **{target}** with {facts.Method ?? ModelCardFacts.Unknown}: it");
        text.AppendLine("should no longer reproduce knowledge of the target while keeping its other abilities. It was shipped by `atu ship`.");
        text.AppendLine();

        text.AppendLine("## Model");
        text.AppendLine();
        text.AppendLine("| property | value |");
        text.AppendLine("| --- | --- |");
        Row(text, "base model", c.BaseModel);
        Row(text, "architecture", $"{c.Config.ModelType}: {c.Config.NumHiddenLayers} layers, hidden size {c.Config.HiddenSize}, {c.Config.NumAttentionHeads} attention heads ({c.Config.NumKeyValueHeads} key/value), vocabulary {c.Config.VocabSize}");
        Row(text, "context length", c.ContextLength.ToString(CultureInfo.InvariantCulture));
        if (c.OnnxDtype is not null) Row(text, "ONNX weights", c.OnnxDtype);
        if (c.SafetensorsDtype is not null) Row(text, "safetensors weights", c.SafetensorsDtype);
        text.AppendLine();

        text.AppendLine("## Unlearning");
        text.AppendLine();
        text.AppendLine("| property | value |");
        text.AppendLine("| --- | --- |");
        Row(text, "target", target);
        Row(text, "method", facts.Method ?? ModelCardFacts.Unknown);
        text.AppendLine();
        if (facts.Hyperparameters is { Count: > 0 } hyperparameters)
        {
            text.AppendLine("Hyperparameters:");
            text.AppendLine();
            text.AppendLine("| name | value |");
            text.AppendLine("| --- | --- |");
            foreach (var (name, value) in hyperparameters) Row(text, name, Scalar(value));
        }
        else text.AppendLine("No hyperparameters were given when this model was shipped.");
        text.AppendLine();

        text.AppendLine("## Evaluation");
        text.AppendLine();
        var results = new List<(string, string)>();
        if (facts.Results is not null) Flatten(facts.Results, "", results);
        if (results.Count > 0)
        {
            text.AppendLine("| metric | value |");
            text.AppendLine("| --- | --- |");
            foreach (var (name, value) in results) Row(text, name, value);
        }
        else text.AppendLine("No evaluation results were given when this model was shipped.");
        text.AppendLine();

        text.AppendLine("## Use");
        text.AppendLine();
        if (c.OnnxDtype is not null)
        {
            text.AppendLine($"ONNX Runtime GenAI: open this folder as a model (`new Model(folder)` in C#, `og.Model(folder)` elsewhere); it reads `{GenAiConfig.FileName}`,");
            text.AppendLine("`model.onnx` (with its weights in `model.onnx.data`) and the tokenizer files. The graph uses opset-23 operators, so it needs");
            text.AppendLine("ONNX Runtime 1.23 or newer. Search defaults are greedy; the execution provider is chosen in `session_options` of the config.");
            text.AppendLine();
        }
        if (c.SafetensorsDtype is not null)
        {
            text.AppendLine("Hugging Face Transformers: `AutoModelForCausalLM.from_pretrained(folder)` and `AutoTokenizer.from_pretrained(folder)`;");
            text.AppendLine("the weights keep the original tensor names.");
            text.AppendLine();
        }

        text.AppendLine("## Files");
        text.AppendLine();
        text.AppendLine("| file | bytes | SHA-256 |");
        text.AppendLine("| --- | --- | --- |");
        foreach (var f in c.Files) text.AppendLine($"| `{f.Path}` | {f.Bytes.ToString(CultureInfo.InvariantCulture)} | `{f.Sha256}` |");
        return text.ToString();
    }

    static void Row(StringBuilder text, string name, string value) => text.AppendLine($"| {Cell(name)} | {Cell(value)} |");

    static string Cell(string value) => value.Replace("|", "\\|").Replace("\r", " ").Replace("\n", " ");

    /// <summary>A YAML scalar: JSON's double-quoted string is valid YAML.</summary>
    static string Yaml(string value) => JsonSerializer.Serialize(value);

    static string Scalar(JsonNode? value) => value switch
    {
        null => "null",
        JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>(),
        _ => value.ToJsonString(),
    };

    /// <summary>Nested objects and arrays as (dotted.name[index], value) rows.</summary>
    static void Flatten(JsonNode? node, string prefix, List<(string, string)> rows)
    {
        switch (node)
        {
            case JsonObject o:
                foreach (var (key, value) in o) Flatten(value, prefix.Length == 0 ? key : $"{prefix}.{key}", rows);
                break;
            case JsonArray a:
                for (int i = 0; i < a.Count; i++) Flatten(a[i], $"{prefix}[{i}]", rows);
                break;
            default:
                rows.Add((prefix.Length == 0 ? "result" : prefix, Scalar(node)));
                break;
        }
    }
}
