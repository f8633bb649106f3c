using System.Globalization;
using System.Text;
using System.Text.Json;

namespace AlignThenUnlearn.Evaluation;

/// <summary>A run of RWKU's whole evaluation: the probe evaluation (forget, neighbour, MMLU) and the utility and MIA
/// evaluation of the same targets.</summary>
public sealed record SuiteEvaluation(RunEvaluation Probes, IReadOnlyList<UtilityEvaluation> Utility, RwkuTasks Tasks)
{
    public string Name => Probes.Summary.Name;

    public UtilityScores UtilityMean => UtilityScores.MeanOf([.. Utility.Select(u => u.Scores)]);

    public UtilityScores UtilityOf(int target) =>
        Utility.FirstOrDefault(u => u.Target.Number == target)?.Scores ?? new UtilityScores(null, null, null, null, null, null, null, null);
}

/// <summary>The report files of <c>atu eval --suite rwku</c>: <c>results.json</c> (forget, neighbour, MMLU, as
/// <c>atu eval</c> writes it, so <c>atu report</c> reads it), <c>utility.json</c> (the utility and MIA figures),
/// <c>results.md</c> in the layout of RWKU's Table 2, and <c>probes.jsonl</c> with a line per probe, question,
/// instruction and MIA text.</summary>
public static class RwkuSuiteReports
{
    public const string UtilityFile = "utility.json";

    /// <summary>RWKU's Table 2: forget and neighbour ROUGE-L recall, MIA loss of forget (FM) and retain (RM) members,
    /// and utility: MMLU (Gen), BBH exact match (Rea), TruthfulQA MC1 (Tru), TriviaQA F1 (Fac), fluency entropy (Flu).
    /// Every figure x 100 with one decimal (the MIA loss and the entropy too, as RWKU reports them).</summary>
    public static readonly IReadOnlyList<string> Columns =
    [
        "Forget FB ↓", "Forget QA ↓", "Forget AA ↓", "Forget All ↓", "Neighbor FB ↑", "Neighbor QA ↑", "Neighbor All ↑",
        "MIA FM ↑", "MIA RM ↓", "Gen ↑", "Rea ↑", "Tru ↑", "Fac ↑", "Flu ↑",
    ];

    public static double?[] Row(RwkuScores probes, UtilityScores utility) =>
    [
        probes.ForgetFB, probes.ForgetQA, probes.ForgetAA, probes.ForgetAll, probes.NeighborFB, probes.NeighborQA, probes.NeighborAll,
        utility.ForgetLoss, utility.RetainLoss, probes.Mmlu, utility.Bbh, utility.TruthfulQaMc1, utility.TriviaQaF1, utility.Fluency,
    ];

    public static void Write(string folder, SuiteEvaluation run)
    {
        Directory.CreateDirectory(folder);
        Models.AtomicFile.WriteAllBytes(Path.Combine(folder, RwkuReports.ResultsFile), ResultsJson.Serialize(run.Probes.Summary));
        Models.AtomicFile.WriteAllBytes(Path.Combine(folder, UtilityFile), SerializeUtility(run));
        WriteText(Path.Combine(folder, RwkuReports.TableFile), Table(run));
        var lines = new StringWriter { NewLine = "\n" };
        ProbesJsonLines.Write(lines, run.Name, run.Probes.Targets);
        WriteUtilityLines(lines, run.Name, run.Utility);
        WriteText(Path.Combine(folder, RwkuReports.ProbesFile), lines.ToString());
    }

    public static string Table(SuiteEvaluation run)
    {
        var text = new StringBuilder();
        text.Append($"# RWKU: {run.Name}\n\n");
        text.Append($"Tasks: {RwkuTaskNames.Format(run.Tasks)}. Mean over {run.Probes.Summary.Targets.Count} target{(run.Probes.Summary.Targets.Count == 1 ? "" : "s")}. ");
        text.Append("Forget and neighbour: ROUGE-L recall; MIA: loss (mean token NLL) of the forget (FM) and retain (RM) member texts; ");
        text.Append("Gen: MMLU accuracy; Rea: BBH exact match; Tru: TruthfulQA MC1; Fac: TriviaQA F1; Flu: weighted bigram/trigram entropy in bits. All x 100.\n\n");
        AppendTable(text, "Run", [(run.Name, Row(run.Probes.Summary.Mean, run.UtilityMean))]);
        text.Append("\n## Per target\n\n");
        AppendTable(text, "Target", run.Probes.Summary.Targets.Select(t => ($"{t.Number} {t.Name}", Row(t.Scores, run.UtilityOf(t.Number)))));
        return text.ToString();
    }

    static void AppendTable(StringBuilder text, string firstColumn, IEnumerable<(string Label, double?[] Values)> rows)
    {
        text.Append("| ").Append(firstColumn).Append(" | ").AppendJoin(" | ", Columns).Append(" |\n");
        text.Append("| :-- |").Append(string.Concat(Enumerable.Repeat(" --: |", Columns.Count))).Append('\n');
        foreach (var (label, values) in rows)
            text.Append("| ").Append(label.Replace("|", "\\|").ReplaceLineEndings(" ")).Append(" | ").AppendJoin(" | ", values.Select(Hundredfold)).Append(" |\n");
    }

    static string Hundredfold(double? value) => value is double v ? (100 * v).ToString("F1", CultureInfo.InvariantCulture) : "–";

    static byte[] SerializeUtility(SuiteEvaluation run)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer, ResultsJson.WriterOptions))
        {
            json.WriteStartObject();
            json.WriteString("format", "atu-rwku-utility");
            json.WriteNumber("version", 1);
            json.WriteString("run", run.Name);
            json.WriteString("tasks", RwkuTaskNames.Format(run.Tasks));
            json.WritePropertyName("mean");
            WriteScores(json, run.UtilityMean);
            json.WriteStartArray("targets");
            foreach (var target in run.Utility)
            {
                json.WriteStartObject();
                json.WriteNumber("number", target.Target.Number);
                json.WriteString("name", target.Target.Name);
                json.WritePropertyName("scores");
                WriteScores(json, target.Scores);
                json.WriteStartObject("counts");
                json.WriteNumber("bbh", target.Bbh.Count);
                json.WriteNumber("truthfulqa", target.TruthfulQa.Count);
                json.WriteNumber("triviaqa", target.TriviaQa.Count);
                json.WriteNumber("fluency", target.Fluency.Count);
                json.WriteNumber("mia_forget", target.Mia.Count(m => m.Text.Set == MiaSet.Forget && m.Scores is not null));
                json.WriteNumber("mia_retain", target.Mia.Count(m => m.Text.Set == MiaSet.Retain && m.Scores is not null));
                json.WriteEndObject();
                json.WriteEndObject();
            }
            json.WriteEndArray();
            json.WriteEndObject();
        }
        return buffer.ToArray();
    }

    static void WriteScores(Utf8JsonWriter json, UtilityScores scores)
    {
        json.WriteStartObject();
        Number(json, "bbh_em", scores.Bbh);
        Number(json, "truthfulqa_mc1", scores.TruthfulQaMc1);
        Number(json, "truthfulqa_mc2", scores.TruthfulQaMc2);
        Number(json, "triviaqa_em", scores.TriviaQaExactMatch);
        Number(json, "triviaqa_f1", scores.TriviaQaF1);
        Number(json, "fluency_entropy", scores.Fluency);
        Number(json, "mia_forget_loss", scores.ForgetLoss);
        Number(json, "mia_retain_loss", scores.RetainLoss);
        Number(json, "mia_loss_gap", scores.ForgetLoss - scores.RetainLoss); // forget minus retain: rises as the target is forgotten
        Number(json, "mia_forget_zlib", scores.ForgetZlib);
        Number(json, "mia_retain_zlib", scores.RetainZlib);
        Number(json, "mia_forget_minkpp_0.2", scores.ForgetMinKPlusPlus20);
        Number(json, "mia_retain_minkpp_0.2", scores.RetainMinKPlusPlus20);
        json.WriteEndObject();
    }

    /// <summary>A number, or null where there is none or it is not finite (JSON has no NaN; RWKU's Min-K% of too few
    /// tokens is NaN).</summary>
    static void Number(Utf8JsonWriter json, string name, double? value)
    {
        if (value is double v && double.IsFinite(v)) json.WriteNumber(name, v);
        else json.WriteNull(name);
    }

    static void WriteUtilityLines(TextWriter writer, string run, IEnumerable<UtilityEvaluation> targets)
    {
        var options = ResultsJson.WriterOptions with { Indented = false };
        void Line(Action<Utf8JsonWriter> write) => writer.Write(ProbesJsonLines.Line(options, write));
        foreach (var target in targets)
        {
            var t = target.Target;
            foreach (var o in target.Bbh)
                Line(json =>
                {
                    ProbesJsonLines.Head(json, run, t, "utility", "BBH");
                    json.WriteString("task", o.Question.Task);
                    json.WriteString("query", o.Question.Question);
                    json.WriteString("reference", o.Question.Answer);
                    json.WriteString("output", o.Output);
                    json.WriteString("prediction", o.Prediction);
                    Number(json, "score", o.Score);
                });
            foreach (var o in target.TruthfulQa)
                Line(json =>
                {
                    ProbesJsonLines.Head(json, run, t, "utility", "TruthfulQA");
                    json.WriteString("query", o.Question.Question);
                    json.WriteString("reference", o.Question.Mc1.True.First());
                    json.WriteStartObject("logprobs");
                    foreach (var (answer, score) in o.AnswerScores) Number(json, answer, score);
                    json.WriteEndObject();
                    Number(json, "mc1", o.Mc1);
                    Number(json, "mc2", o.Mc2);
                    Number(json, "score", o.Mc1);
                });
            foreach (var o in target.TriviaQa)
                Line(json =>
                {
                    ProbesJsonLines.Head(json, run, t, "utility", "TriviaQA");
                    json.WriteString("query", o.Question.Question);
                    json.WriteStartArray("references");
                    foreach (var answer in o.Question.Answers) json.WriteStringValue(answer);
                    json.WriteEndArray();
                    json.WriteString("prediction", o.Output);
                    Number(json, "em", o.ExactMatch);
                    Number(json, "f1", o.F1);
                    Number(json, "score", o.F1);
                });
            foreach (var o in target.Fluency)
                Line(json =>
                {
                    ProbesJsonLines.Head(json, run, t, "utility", "Fluency");
                    json.WriteString("query", o.Instruction.Instruction);
                    json.WriteString("prediction", o.Output);
                    Number(json, "score", o.Entropy);
                });
            foreach (var o in target.Mia)
                Line(json =>
                {
                    ProbesJsonLines.Head(json, run, t, "mia", o.Text.Set == MiaSet.Forget ? "FM" : "RM");
                    json.WriteString("query", o.Text.Text);
                    if (o.Scores is not { } s)
                    {
                        json.WriteNull("score");
                        return;
                    }
                    Number(json, "zlib", s.Zlib);
                    json.WriteStartObject("mink");
                    for (int i = 0; i < MiaScores.Ratios.Count; i++) Number(json, MiaScores.Ratios[i].ToString("0.0", CultureInfo.InvariantCulture), s.MinK[i]);
                    json.WriteEndObject();
                    json.WriteStartObject("mink++");
                    for (int i = 0; i < MiaScores.Ratios.Count; i++) Number(json, MiaScores.Ratios[i].ToString("0.0", CultureInfo.InvariantCulture), s.MinKPlusPlus[i]);
                    json.WriteEndObject();
                    Number(json, "score", s.Loss);
                });
        }
    }

    static void WriteText(string path, string text) => Models.AtomicFile.WriteAllBytes(path, Encoding.UTF8.GetBytes(text));
}
