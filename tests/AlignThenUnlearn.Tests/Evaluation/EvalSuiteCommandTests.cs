using System.Text.Json;
using AlignThenUnlearn.Cli;
using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Tests.Support;

namespace AlignThenUnlearn.Tests.Evaluation;

/// <summary>`atu eval --suite rwku` end to end on the tiny Phi-3-shaped model and the RWKU-layout fixture with its
/// utility and MIA files: every report is written, the table has Table 2's columns, batching changes nothing, and the
/// reported answers and log-probabilities agree with the model run on each item alone (the log-probabilities
/// recomputed from next-token logits of every prefix).</summary>
[Collection(ConsoleCollection.Name)]
public sealed class EvalSuiteCommandTests(TinyChatModel tiny) : IClassFixture<TinyChatModel>, IDisposable
{
    readonly TempFolder _temp = new();
    public void Dispose() => _temp.Dispose();

    static List<JsonElement> Lines(string path) =>
        [.. File.ReadAllLines(path).Where(l => l.Length > 0).Select(l => JsonDocument.Parse(l).RootElement)];

    static string Kind(JsonElement line) => line.GetProperty("kind").GetString()!;

    [Fact]
    public void Suite_writes_every_column_and_its_items_are_the_models()
    {
        using var fixture = new RwkuFixture();
        RwkuUtilityFixture.AddTo(fixture);
        string batched = _temp.File("batched"), single = _temp.File("single");
        Assert.Equal(0, EvalCommand.Run(new EvalOptions { Artifacts = tiny.Artifacts, Rwku = fixture.Root, Targets = "1-2", Out = batched, Suite = "rwku", Name = "b16" }));
        Assert.Equal(0, EvalCommand.Run(new EvalOptions { Artifacts = tiny.Artifacts, Rwku = fixture.Root, Targets = "1-2", Out = single, Suite = "rwku", BatchSize = 1, Name = "b1" }));
        foreach (var file in new[] { RwkuReports.ResultsFile, RwkuSuiteReports.UtilityFile, RwkuReports.TableFile, RwkuReports.ProbesFile })
            Assert.True(File.Exists(Path.Combine(batched, file)), file);

        var table = File.ReadAllText(Path.Combine(batched, RwkuReports.TableFile));
        Assert.Contains("| Run | " + string.Join(" | ", RwkuSuiteReports.Columns) + " |", table);
        var row = table.Split('\n').Single(l => l.StartsWith("| b16 |"));
        Assert.DoesNotContain("–", row); // every column measured
        Assert.Contains("| 1 Ada Quill |", table);
        Assert.Contains("| 2 Cora Lind |", table);

        var lines = Lines(Path.Combine(batched, RwkuReports.ProbesFile));
        var others = Lines(Path.Combine(single, RwkuReports.ProbesFile));
        Assert.Equal(lines.Count, others.Count);
        // Target 1: 2 BBH, 2 TruthfulQA, 2 TriviaQA, 2 fluency, 2 + 3 MIA texts; target 2: 1 of each, 1 + 1 MIA texts.
        Assert.Equal(3, lines.Count(l => Kind(l) == "BBH"));
        Assert.Equal(3, lines.Count(l => Kind(l) == "TruthfulQA"));
        Assert.Equal(3, lines.Count(l => Kind(l) == "TriviaQA"));
        Assert.Equal(3, lines.Count(l => Kind(l) == "Fluency"));
        Assert.Equal(3, lines.Count(l => Kind(l) == "FM"));
        Assert.Equal(4, lines.Count(l => Kind(l) == "RM"));
        // Batching changes neither an answer nor a score (log-probabilities up to float rounding).
        for (int i = 0; i < lines.Count; i++)
        {
            Assert.Equal(lines[i].GetProperty("query").GetString(), others[i].GetProperty("query").GetString());
            if (lines[i].TryGetProperty("prediction", out var prediction)) Assert.Equal(prediction.GetString(), others[i].GetProperty("prediction").GetString());
            if (lines[i].GetProperty("score").ValueKind == JsonValueKind.Number)
                Assert.Equal(lines[i].GetProperty("score").GetDouble(), others[i].GetProperty("score").GetDouble(), 4);
        }

        var dataset = RwkuDataset.Open(fixture.Root);
        using var generator = GreedyGenerator.Open(tiny.Model, GradCheck.Cpu);
        var reasoning = new GreedyTextGenerator(generator, tiny.Tokenizer, RwkuPrompts.StopIds(tiny.Tokenizer, UtilityPrompts.BbhTerminators));
        var answering = new GreedyTextGenerator(generator, tiny.Tokenizer, RwkuPrompts.StopIds(tiny.Tokenizer, UtilityPrompts.AnswerTerminators));
        var ada = dataset.LoadUtility(dataset.Target(1), RwkuTasks.All);

        // BBH and TriviaQA: the model's answer to the prompt alone.
        var bbh = lines.First(l => Kind(l) == "BBH");
        var question = ada.Bbh.Single(q => q.Question == bbh.GetProperty("query").GetString());
        var output = reasoning.Generate([UtilityPrompts.Bbh(question, ChatFormat.Phi3)], UtilityPrompts.BbhMaxNewTokens)[0];
        Assert.Equal(output, bbh.GetProperty("output").GetString());
        Assert.Equal(BbhAnswer.Extract(output), bbh.GetProperty("prediction").GetString());
        var trivia = lines.First(l => Kind(l) == "TriviaQA");
        var triviaQuestion = ada.TriviaQa.Single(q => q.Question == trivia.GetProperty("query").GetString());
        var triviaOutput = answering.Generate([UtilityPrompts.TriviaQa(triviaQuestion, ChatFormat.Phi3)], UtilityPrompts.TriviaQaMaxNewTokens)[0];
        Assert.Equal(triviaOutput, trivia.GetProperty("prediction").GetString());
        Assert.Equal(SquadScores.BestF1(triviaOutput, triviaQuestion.Answers), trivia.GetProperty("score").GetDouble(), 12);

        // Log-probabilities from the logits of every prefix: log softmax at the next token.
        double LogProbAfter(int[] prefix, int token)
        {
            var logits = generator.NextTokenLogits([prefix])[0];
            double max = logits.Max(), sum = logits.Sum(l => Math.Exp(l - max));
            return logits[token] - max - Math.Log(sum);
        }
        // MIA: the loss of a forget text is minus the mean of its tokens' log-probabilities.
        var mia = lines.First(l => Kind(l) == "FM" && l.GetProperty("target").GetInt32() == 1);
        var ids = tiny.Tokenizer.EncodeToIds(mia.GetProperty("query").GetString()!);
        var expectedLoss = -Enumerable.Range(1, ids.Length - 1).Average(i => LogProbAfter(ids[..i], ids[i]));
        Assert.Equal(expectedLoss, mia.GetProperty("score").GetDouble(), 4);
        // TruthfulQA: an answer's score sums the log-probabilities of the tokens after the prompt's.
        var truthful = lines.First(l => Kind(l) == "TruthfulQA");
        var truthfulQuestion = ada.TruthfulQa.Single(q => q.Question == truthful.GetProperty("query").GetString());
        var prompt = UtilityPrompts.TruthfulQa(truthfulQuestion, ChatFormat.Phi3);
        var answer = truthfulQuestion.Mc2.True.First();
        var promptIds = tiny.Tokenizer.EncodeToIds(prompt);
        var whole = tiny.Tokenizer.EncodeToIds(UtilityPrompts.TruthfulQaCompletion(prompt, answer));
        var expectedSum = Enumerable.Range(promptIds.Length, whole.Length - promptIds.Length).Sum(i => LogProbAfter(whole[..i], whole[i]));
        Assert.Equal(expectedSum, truthful.GetProperty("logprobs").GetProperty(answer).GetDouble(), 3);

        // The utility file's means are the means of the lines.
        using var utility = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(batched, RwkuSuiteReports.UtilityFile)));
        var adaScores = utility.RootElement.GetProperty("targets")[0].GetProperty("scores");
        double MeanOf(string kind) => lines.Where(l => Kind(l) == kind && l.GetProperty("target").GetInt32() == 1 && l.GetProperty("score").ValueKind == JsonValueKind.Number)
            .Average(l => l.GetProperty("score").GetDouble());
        Assert.Equal(MeanOf("BBH"), adaScores.GetProperty("bbh_em").GetDouble(), 12);
        Assert.Equal(MeanOf("TriviaQA"), adaScores.GetProperty("triviaqa_f1").GetDouble(), 12);
        Assert.Equal(MeanOf("Fluency"), adaScores.GetProperty("fluency_entropy").GetDouble(), 12);
        Assert.Equal(MeanOf("FM"), adaScores.GetProperty("mia_forget_loss").GetDouble(), 12);
        Assert.Equal(MeanOf("RM"), adaScores.GetProperty("mia_retain_loss").GetDouble(), 12);

        // results.json is the one atu report reads.
        Assert.Equal("b16", ResultsJson.Read(Path.Combine(batched, RwkuReports.ResultsFile)).Name);
    }

    [Fact]
    public void Tasks_choose_what_runs()
    {
        using var fixture = new RwkuFixture();
        RwkuUtilityFixture.AddTo(fixture);
        var output = _temp.File("some");
        Assert.Equal(0, EvalCommand.Run(new EvalOptions { Artifacts = tiny.Artifacts, Rwku = fixture.Root, Targets = "2", Out = output, Suite = "rwku", Tasks = "forget,mia" }));
        var kinds = Lines(Path.Combine(output, RwkuReports.ProbesFile)).Select(Kind).Distinct().Order().ToList();
        Assert.Equal(["AA", "FB", "FM", "QA", "RM"], kinds);
        var row = File.ReadAllLines(Path.Combine(output, RwkuReports.TableFile)).Single(l => l.StartsWith("| 2 Cora Lind |"));
        var cells = row.Split('|', StringSplitOptions.TrimEntries)[2..^1];
        Assert.Equal(RwkuSuiteReports.Columns.Count, cells.Length);
        // Forget FB..All and MIA FM/RM measured; neighbour and utility columns not.
        Assert.Equal([true, true, true, true, false, false, false, true, true, false, false, false, false, false], cells.Select(c => c != "–"));

        Assert.Throws<ArgumentException>(() => EvalCommand.Run(new EvalOptions { Artifacts = tiny.Artifacts, Rwku = fixture.Root, Out = _temp.File("x"), Suite = "rwku", Tasks = "bbh,gsm8k" }));
        Assert.Throws<ArgumentException>(() => EvalCommand.Run(new EvalOptions { Artifacts = tiny.Artifacts, Rwku = fixture.Root, Out = _temp.File("y"), Suite = "tofu" }));
        Assert.Contains("--suite rwku", Assert.Throws<ArgumentException>(() => EvalCommand.Run(new EvalOptions { Artifacts = tiny.Artifacts, Rwku = fixture.Root, Out = _temp.File("z"), Tasks = "bbh" })).Message);
    }
}
