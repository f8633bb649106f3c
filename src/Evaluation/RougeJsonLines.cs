using System.Text.Json;
using System.Text.Json.Nodes;

namespace AlignThenUnlearn.Evaluation;

/// <summary>Scores a JSON-lines file of <c>{"prediction": ..., "reference": ...}</c> objects: each line is written
/// back with <c>"recall"</c> (ROUGE-L recall, <see cref="RougeL"/>) added or replaced, other fields kept in order.
/// Blank lines are skipped.</summary>
public static class RougeJsonLines
{
    static readonly JsonSerializerOptions Compact = new() { WriteIndented = false, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>Returns how many lines were scored and their mean recall (null for none).</summary>
    public static (int Count, double? MeanRecall) Score(TextReader input, TextWriter output, string sourceName)
    {
        int count = 0, lineNumber = 0;
        double sum = 0;
        for (string? line; (line = input.ReadLine()) is not null;)
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            JsonObject row;
            try
            {
                row = JsonNode.Parse(line) as JsonObject ?? throw Invalid(sourceName, lineNumber, null, "is not a JSON object");
            }
            catch (JsonException e)
            {
                throw Invalid(sourceName, lineNumber, null, $"is not valid JSON ({e.Message})");
            }
            var recall = RougeL.Recall(Text(row, "prediction", sourceName, lineNumber), Text(row, "reference", sourceName, lineNumber));
            row["recall"] = recall;
            output.Write(row.ToJsonString(Compact));
            output.Write('\n');
            sum += recall;
            count++;
        }
        return (count, count == 0 ? null : sum / count);
    }

    static string Text(JsonObject row, string field, string source, int line)
    {
        if (!row.TryGetPropertyValue(field, out var node) || node is null) throw Invalid(source, line, field, "is missing");
        if (node.GetValueKind() != JsonValueKind.String) throw Invalid(source, line, field, $"is a {node.GetValueKind()}, expected a string");
        return node.GetValue<string>();
    }

    static InvalidDataException Invalid(string source, int line, string? field, string problem) =>
        new($"{source}, line {line}{(field is null ? "" : $", field '{field}'")}: {problem}");
}
