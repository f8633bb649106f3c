using System.Text.Encodings.Web;
using System.Text.Json;

namespace AlignThenUnlearn.Evaluation;

/// <summary><c>results.json</c>: a run's scores per target and their mean, as fractions in [0, 1]. Reading it back
/// gives the <see cref="RunSummary"/> that tables and plots of several runs are made from (the mean is recomputed
/// from the targets).</summary>
public static class ResultsJson
{
    public const string FormatName = "atu-rwku-results";
    public const int FormatVersion = 1;

    internal static readonly JsonWriterOptions WriterOptions = new() { Indented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static byte[] Serialize(RunSummary run)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer, WriterOptions))
        {
            json.WriteStartObject();
            json.WriteString("format", FormatName);
            json.WriteNumber("version", FormatVersion);
            json.WriteString("run", run.Name);
            if (run.Series is not null) json.WriteString("series", run.Series);
            if (run.Weights is { } w)
            {
                // The weights of the "All" averages when they are not the targets' probe counts (a preset's, e.g. RWKU's 100 targets).
                json.WriteStartObject("all_weights");
                json.WriteStartObject("forget");
                json.WriteNumber("fb", w.ForgetFB); json.WriteNumber("qa", w.ForgetQA); json.WriteNumber("aa", w.ForgetAA);
                json.WriteEndObject();
                json.WriteStartObject("neighbor");
                json.WriteNumber("fb", w.NeighborFB); json.WriteNumber("qa", w.NeighborQA);
                json.WriteEndObject();
                json.WriteEndObject();
            }
            json.WritePropertyName("mean");
            WriteScores(json, run.Mean, null);
            json.WriteStartArray("targets");
            foreach (var target in run.Targets)
            {
                json.WriteStartObject();
                json.WriteNumber("number", target.Number);
                json.WriteString("name", target.Name);
                json.WritePropertyName("scores");
                WriteScores(json, target.Scores, target.Counts);
                json.WriteEndObject();
            }
            json.WriteEndArray();
            json.WriteEndObject();
        }
        return buffer.ToArray();
    }

    /// <summary><c>{"forget": {"fb", "qa", "aa", "all"}, "neighbor": {"fb", "qa", "all"}, "mmlu"}</c>, with a
    /// sibling <c>"counts"</c> of the same shape (without the averages) where counts are known.</summary>
    static void WriteScores(Utf8JsonWriter json, RwkuScores scores, RwkuCounts? counts)
    {
        json.WriteStartObject();
        json.WriteStartObject("forget");
        Number(json, "fb", scores.ForgetFB);
        Number(json, "qa", scores.ForgetQA);
        Number(json, "aa", scores.ForgetAA);
        Number(json, "all", scores.ForgetAll);
        json.WriteEndObject();
        json.WriteStartObject("neighbor");
        Number(json, "fb", scores.NeighborFB);
        Number(json, "qa", scores.NeighborQA);
        Number(json, "all", scores.NeighborAll);
        json.WriteEndObject();
        Number(json, "mmlu", scores.Mmlu);
        if (counts is not null)
        {
            json.WriteStartObject("counts");
            json.WriteStartObject("forget");
            json.WriteNumber("fb", counts.ForgetFB);
            json.WriteNumber("qa", counts.ForgetQA);
            json.WriteNumber("aa", counts.ForgetAA);
            json.WriteEndObject();
            json.WriteStartObject("neighbor");
            json.WriteNumber("fb", counts.NeighborFB);
            json.WriteNumber("qa", counts.NeighborQA);
            json.WriteEndObject();
            json.WriteNumber("mmlu", counts.Mmlu);
            json.WriteEndObject();
        }
        json.WriteEndObject();
    }

    static void Number(Utf8JsonWriter json, string name, double? value)
    {
        if (value is double v) json.WriteNumber(name, v);
        else json.WriteNull(name);
    }

    public static RunSummary Read(string path)
    {
        JsonDocument document;
        try { document = JsonDocument.Parse(File.ReadAllBytes(path)); }
        catch (JsonException e) { throw new DatasetFormatException(path, null, null, $"is not valid JSON ({e.Message})", e); }
        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("format", out var format) || format.ValueKind != JsonValueKind.String || format.GetString() != FormatName)
                throw new DatasetFormatException(path, null, "format", $"is not \"{FormatName}\": this is not an RWKU results file written by atu");
            if (Get(path, root, "version", JsonValueKind.Number).GetInt32() > FormatVersion)
                throw new DatasetFormatException(path, null, "version", $"is newer than this atu reads ({FormatVersion})");
            var name = Get(path, root, "run", JsonValueKind.String).GetString()!;
            string? series = root.TryGetProperty("series", out var s) && s.ValueKind == JsonValueKind.String ? s.GetString() : null;
            var targets = new List<TargetScores>();
            int index = 0;
            foreach (var target in Get(path, root, "targets", JsonValueKind.Array).EnumerateArray())
            {
                var at = $"targets[{index}].";
                var scores = Get(path, target, "scores", JsonValueKind.Object, at);
                var forget = Get(path, scores, "forget", JsonValueKind.Object, at + "scores.");
                var neighbor = Get(path, scores, "neighbor", JsonValueKind.Object, at + "scores.");
                var counts = Get(path, scores, "counts", JsonValueKind.Object, at + "scores.");
                var forgetCounts = Get(path, counts, "forget", JsonValueKind.Object, at + "scores.counts.");
                var neighborCounts = Get(path, counts, "neighbor", JsonValueKind.Object, at + "scores.counts.");
                var targetCounts = new RwkuCounts(
                    Get(path, forgetCounts, "fb", JsonValueKind.Number, at).GetInt32(), Get(path, forgetCounts, "qa", JsonValueKind.Number, at).GetInt32(),
                    Get(path, forgetCounts, "aa", JsonValueKind.Number, at).GetInt32(), Get(path, neighborCounts, "fb", JsonValueKind.Number, at).GetInt32(),
                    Get(path, neighborCounts, "qa", JsonValueKind.Number, at).GetInt32(), Get(path, counts, "mmlu", JsonValueKind.Number, at).GetInt32());
                targets.Add(new TargetScores(
                    Get(path, target, "number", JsonValueKind.Number, at).GetInt32(),
                    Get(path, target, "name", JsonValueKind.String, at).GetString()!,
                    new RwkuScores(
                        Score(path, forget, "fb", at + "scores.forget."), Score(path, forget, "qa", at + "scores.forget."),
                        Score(path, forget, "aa", at + "scores.forget."), Score(path, neighbor, "fb", at + "scores.neighbor."),
                        Score(path, neighbor, "qa", at + "scores.neighbor."), Score(path, scores, "mmlu", at + "scores.")) { Weights = AllWeights.Of(targetCounts) },
                    targetCounts));
                index++;
            }
            AllWeights? weights = null;
            if (root.TryGetProperty("all_weights", out var w) && w.ValueKind == JsonValueKind.Object)
            {
                var f = Get(path, w, "forget", JsonValueKind.Object, "all_weights.");
                var n = Get(path, w, "neighbor", JsonValueKind.Object, "all_weights.");
                double W(JsonElement o, string field, string at) => Get(path, o, field, JsonValueKind.Number, at).GetDouble();
                weights = new AllWeights(W(f, "fb", "all_weights.forget."), W(f, "qa", "all_weights.forget."), W(f, "aa", "all_weights.forget."),
                    W(n, "fb", "all_weights.neighbor."), W(n, "qa", "all_weights.neighbor."));
            }
            return new RunSummary(name, targets, series, weights);
        }
    }

    static JsonElement Get(string path, JsonElement obj, string name, JsonValueKind kind, string prefix = "")
    {
        if (!obj.TryGetProperty(name, out var value)) throw new DatasetFormatException(path, null, prefix + name, "is missing");
        if (value.ValueKind != kind) throw new DatasetFormatException(path, null, prefix + name, $"is {value.ValueKind}, expected {kind}");
        return value;
    }

    static double? Score(string path, JsonElement obj, string name, string prefix)
    {
        if (obj.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.Null) return null;
        return Get(path, obj, name, JsonValueKind.Number, prefix).GetDouble();
    }
}
