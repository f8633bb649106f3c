using System.Text.Json;

namespace AlignThenUnlearn.Evaluation;

/// <summary>The probe file: one JSON object per line for every probe and MMLU question of a run, with the query,
/// the reference answer, the model's prediction and its score, so any number in the tables can be traced.</summary>
public static class ProbesJsonLines
{
    public static void Write(TextWriter writer, string run, IEnumerable<TargetEvaluation> targets)
    {
        var options = ResultsJson.WriterOptions with { Indented = false };
        foreach (var target in targets)
        {
            foreach (var outcome in target.Probes)
                writer.Write(Line(options, json =>
                {
                    var probe = outcome.Probe;
                    Head(json, run, outcome.Target, probe.Set == ProbeSet.Forget ? "forget" : "neighbor", probe.Kind.ShortName());
                    json.WriteNumber("level", probe.Level);
                    if (probe.Type.Length > 0) json.WriteString("type", probe.Type);
                    if (probe.Neighbor is not null) json.WriteString("neighbor", probe.Neighbor);
                    json.WriteString("query", probe.Query);
                    json.WriteString("reference", probe.Answer);
                    json.WriteString("prediction", outcome.Prediction);
                    json.WriteNumber("score", outcome.Score);
                }));
            foreach (var outcome in target.Mmlu)
                writer.Write(Line(options, json =>
                {
                    Head(json, run, outcome.Target, "utility", "MMLU");
                    json.WriteString("task", outcome.Question.Task);
                    json.WriteString("query", outcome.Question.Question);
                    json.WriteString("reference", MmluPrompts.Letters[outcome.Question.Answer]);
                    json.WriteString("prediction", MmluPrompts.Letters[outcome.Predicted]);
                    json.WriteNumber("score", outcome.Correct ? 1 : 0);
                }));
        }
    }

    internal static void Head(Utf8JsonWriter json, string run, RwkuTarget target, string set, string kind)
    {
        json.WriteString("run", run);
        json.WriteNumber("target", target.Number);
        json.WriteString("subject", target.Name);
        json.WriteString("set", set);
        json.WriteString("kind", kind);
    }

    internal static string Line(JsonWriterOptions options, Action<Utf8JsonWriter> write)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer, options))
        {
            json.WriteStartObject();
            write(json);
            json.WriteEndObject();
        }
        return System.Text.Encoding.UTF8.GetString(buffer.ToArray()) + "\n";
    }
}
