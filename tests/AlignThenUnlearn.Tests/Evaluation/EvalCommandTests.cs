using System.Text.Json;
using AlignThenUnlearn.Cli;
using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Tests.Support;

namespace AlignThenUnlearn.Tests.Evaluation;

/// <summary>`atu eval`, `atu report` and `atu generate` end to end on a tiny random model with a Phi-3-shaped tokenizer
/// and the RWKU-shaped fixture. Each reported answer is checked against the model run on that one prompt alone, each
/// score against ROUGE-L / the MMLU argmax, and each table number against the probe file.</summary>
[Collection(ConsoleCollection.Name)]
public sealed class EvalCommandTests(TinyChatModel tiny) : IClassFixture<TinyChatModel>, IDisposable
{
    readonly TempFolder _temp = new();
    public void Dispose() => _temp.Dispose();

    static List<JsonElement> Lines(string path) =>
        [.. File.ReadAllLines(path).Where(l => l.Length > 0).Select(l => JsonDocument.Parse(l).RootElement)];

    [Fact]
    public void Eval_writes_three_reports_whose_answers_and_scores_are_the_models_and_report_combines_runs()
    {
        using var fixture = new RwkuFixture();
        string batched = _temp.File("batched"), single = _temp.File("single");
        Assert.Equal(0, EvalCommand.Run(new EvalOptions { Artifacts = tiny.Artifacts, Rwku = fixture.Root, Targets = "1-2", Out = batched, Name = "batch16" }));
        Assert.Equal(0, EvalCommand.Run(new EvalOptions { Artifacts = tiny.Artifacts, Rwku = fixture.Root, Targets = "1,2", Out = single, BatchSize = 1, Name = "batch1", Series = "s" }));
        foreach (var file in new[] { RwkuReports.ResultsFile, RwkuReports.TableFile, RwkuReports.ProbesFile })
            Assert.True(File.Exists(Path.Combine(batched, file)), file);

        // Target 1 (own folder): 2 FB, 1 QA, 3 AA, 1 + 1 neighbour probes, 2 MMLU questions; target 2 (from All/):
        // one probe of each of the five kinds and 1 MMLU question.
        var lines = Lines(Path.Combine(batched, RwkuReports.ProbesFile));
        Assert.Equal(13, lines.Count(l => l.GetProperty("set").GetString() != "utility"));
        Assert.Equal(3, lines.Count(l => l.GetProperty("set").GetString() == "utility"));
        // Batching does not change any answer.
        Assert.Equal(lines.Select(l => l.GetProperty("prediction").GetString()),
            Lines(Path.Combine(single, RwkuReports.ProbesFile)).Select(l => l.GetProperty("prediction").GetString()));

        // Every answer is what the model says to that prompt alone, stripped (NOANSWER when empty); every score its recall.
        var dataset = RwkuDataset.Open(fixture.Root);
        var data = dataset.Select("1-2").Select(t => dataset.Load(t)).ToList();
        using var generator = GreedyGenerator.Open(tiny.Model, GradCheck.Cpu);
        var text = new GreedyTextGenerator(generator, tiny.Tokenizer, RwkuPrompts.StopIds(tiny.Tokenizer));
        var letters = MmluPrompts.AnswerTokenIds(tiny.Tokenizer);
        foreach (var line in lines)
        {
            var target = data.Single(d => d.Target.Number == line.GetProperty("target").GetInt32());
            var query = line.GetProperty("query").GetString()!;
            var prediction = line.GetProperty("prediction").GetString()!;
            if (line.GetProperty("set").GetString() == "utility")
            {
                var question = target.Mmlu.Single(q => q.Question == query);
                var logits = text.NextTokenLogits([MmluPrompts.Render(question, ChatFormat.Phi3)], letters)[0];
                Assert.Equal(MmluPrompts.Letters[Array.IndexOf(logits, logits.Max())], prediction);
                continue;
            }
            var probe = target.Probes.Single(p => p.Query == query);
            var alone = text.Generate([RwkuPrompts.Render(probe, ChatFormat.Phi3)], RwkuPrompts.MaxNewTokens)[0];
            Assert.Equal(RwkuPrompts.Answer(alone), prediction);
            Assert.Equal(probe.Answer, line.GetProperty("reference").GetString());
            Assert.Equal(RougeL.Recall(prediction, probe.Answer), line.GetProperty("score").GetDouble());
        }

        // results.json: each target's level score is the mean of its probe lines' scores.
        var summary = ResultsJson.Read(Path.Combine(batched, RwkuReports.ResultsFile));
        Assert.Equal("batch16", summary.Name);
        foreach (var target in summary.Targets)
        {
            double Mean(string set, string kind) => lines.Where(l => l.GetProperty("target").GetInt32() == target.Number
                && l.GetProperty("set").GetString() == set && l.GetProperty("kind").GetString() == kind).Average(l => l.GetProperty("score").GetDouble());
            Assert.Equal(Mean("forget", "FB"), target.Scores.ForgetFB!.Value, 12);
            Assert.Equal(Mean("forget", "QA"), target.Scores.ForgetQA!.Value, 12);
            Assert.Equal(Mean("forget", "AA"), target.Scores.ForgetAA!.Value, 12);
            Assert.Equal(Mean("neighbor", "FB"), target.Scores.NeighborFB!.Value, 12);
            Assert.Equal(Mean("neighbor", "QA"), target.Scores.NeighborQA!.Value, 12);
            Assert.Equal(Mean("utility", "MMLU"), target.Scores.Mmlu!.Value, 12);
        }
        var table = File.ReadAllText(Path.Combine(batched, RwkuReports.TableFile));
        Assert.Contains("| Forget FB ↓ |", table);
        Assert.Contains("| 1 Ada Quill |", table);
        Assert.Contains("| 2 Cora Lind |", table);

        // A second run into the same folder needs --force.
        Assert.Throws<IOException>(() => EvalCommand.Run(new EvalOptions { Artifacts = tiny.Artifacts, Rwku = fixture.Root, Targets = "1", Out = batched }));

        var combined = _temp.File("combined");
        Assert.Equal(0, ReportCommand.Run(new ReportOptions { Runs = [batched, Path.Combine(single, RwkuReports.ResultsFile)], Out = combined }));
        var rows = File.ReadAllLines(Path.Combine(combined, RwkuReports.CombinedTableFile)).Where(l => l.StartsWith("| batch")).ToList();
        Assert.Equal(2, rows.Count);
        Assert.StartsWith("| batch16 |", rows[0]);
        Assert.StartsWith("| batch1 |", rows[1]);
        var png = File.ReadAllBytes(Path.Combine(combined, TradeoffPlot.FileName));
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, png[..4]);
    }

    [Fact]
    public void Reported_scores_are_recall_against_the_references_as_worked_out_by_hand()
    {
        // References built from the model's own answers: the first word of each fill-in-the-blank answer (one without a
        // '.', which would split a sentence) and a word it never says. ROUGE-L recall: one of two distinct reference
        // words recovered, 1/2 for each probe, so forget FB is 0.5.
        using var fixture = new RwkuFixture();
        using var generator = GreedyGenerator.Open(tiny.Model, GradCheck.Cpu);
        var text = new GreedyTextGenerator(generator, tiny.Tokenizer, RwkuPrompts.StopIds(tiny.Tokenizer));
        var dataset = RwkuDataset.Open(fixture.Root);
        var probes = dataset.Probes(dataset.Target(1), RwkuProbeFile.ForgetLevel1);
        var rows = probes.Select(probe =>
        {
            var answer = RwkuPrompts.Answer(text.Generate([RwkuPrompts.Render(probe, ChatFormat.Phi3)], RwkuPrompts.MaxNewTokens)[0]);
            Assert.DoesNotContain("zzz", answer);
            var word = PythonText.SplitOnWhitespace(answer).First(w => !w.Contains('.'));
            return RwkuFixture.Probe(probe.Query, word + " zzz", "1", probe.Subject);
        }).ToArray();
        RwkuFixture.Write(Path.Combine(fixture.Root, "1_Ada_Quill"), RwkuProbeFile.ForgetLevel1.FileName, rows);

        var output = _temp.File("scored");
        Assert.Equal(0, EvalCommand.Run(new EvalOptions { Artifacts = tiny.Artifacts, Rwku = fixture.Root, Targets = "1", Out = output, NoMmlu = true, NoNeighbor = true, BatchSize = 2 }));
        var target = Assert.Single(ResultsJson.Read(Path.Combine(output, RwkuReports.ResultsFile)).Targets);
        Assert.Equal(0.5, target.Scores.ForgetFB);
        Assert.Null(target.Scores.NeighborFB);
        Assert.Null(target.Scores.Mmlu);
        var fb = Lines(Path.Combine(output, RwkuReports.ProbesFile)).Where(l => l.GetProperty("kind").GetString() == "FB").ToList();
        Assert.Equal(2, fb.Count);
        Assert.All(fb, l => Assert.Equal(0.5, l.GetProperty("score").GetDouble()));
        Assert.Contains("| 1 Ada Quill | 50.0 |", File.ReadAllText(Path.Combine(output, RwkuReports.TableFile)));
    }

    [Fact]
    public void Generate_prints_the_chat_continuation_and_stops_at_the_end_of_the_turn()
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        Assert.Equal(0, GenerateCommand.Run(new GenerateOptions { Artifacts = tiny.Artifacts, Prompt = "the cat", Chat = true, MaxNewTokens = 12 }, stdout, stderr));
        using var generator = GreedyGenerator.Open(tiny.Model, GradCheck.Cpu);
        var expected = new GreedyTextGenerator(generator, tiny.Tokenizer, tiny.Tokenizer.StopIds).Generate([ChatTemplate.Format(ChatFormat.Phi3, "the cat")], 12)[0];
        Assert.Equal(expected + Environment.NewLine, stdout.ToString());
        Assert.Contains("new tokens", stderr.ToString());
    }

    [Fact]
    public void Generate_takes_ids_for_an_artifact_without_a_tokenizer_and_prints_ids()
    {
        var art = _temp.File("random");
        Assert.Equal(0, ExportCommand.Run(new ExportOptionsCli { RandomConfig = RepositoryFiles.Path("models", "tiny-llama-gqa.json"), Out = art, Seed = 4 }));
        var stdout = new StringWriter();
        Assert.Equal(0, GenerateCommand.Run(new GenerateOptions { Artifacts = art, Ids = "1, 50, 7", MaxNewTokens = 5 }, stdout, new StringWriter()));
        var model = ArtifactModel.Open(art);
        using var generator = GreedyGenerator.Open(model, GradCheck.Cpu);
        var expected = generator.Generate([[1, 50, 7]], 5, model.Config.EosTokenIds)[0].Tokens;
        Assert.Equal(string.Join(",", expected) + Environment.NewLine, stdout.ToString());
        Assert.Throws<InvalidOperationException>(() => GenerateCommand.Run(new GenerateOptions { Artifacts = art, Prompt = "hi" }, new StringWriter(), new StringWriter()));
    }
}
