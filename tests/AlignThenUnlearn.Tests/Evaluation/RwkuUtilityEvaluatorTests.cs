using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Runtime;

namespace AlignThenUnlearn.Tests.Evaluation;

/// <summary>The utility/MIA evaluator on the fixture's data with a fake model whose answers and log-probabilities are
/// fixed, so every score can be worked out by hand.</summary>
public sealed class RwkuUtilityEvaluatorTests : IDisposable
{
    readonly RwkuFixture _fixture = new();
    public RwkuUtilityEvaluatorTests() => RwkuUtilityFixture.AddTo(_fixture);
    public void Dispose() => _fixture.Dispose();

    /// <summary>Answers by the first key the prompt contains; records each call's budget.</summary>
    sealed class FakeGenerator(params (string Key, string Output)[] answers) : ITextGenerator
    {
        public List<(string Prompt, int MaxNewTokens)> Calls { get; } = [];

        public IReadOnlyList<string> Generate(IReadOnlyList<string> prompts, int maxNewTokens)
        {
            Calls.AddRange(prompts.Select(p => (p, maxNewTokens)));
            return [.. prompts.Select(p => answers.First(a => p.Contains(a.Key, StringComparison.Ordinal)).Output)];
        }
    }

    /// <summary>One token per character; a token's log-probability is -2 for an upper-case letter and -1 otherwise;
    /// mu -2 and sigma 4 everywhere.</summary>
    sealed class CharacterScorer : ITokenScorer
    {
        public static double LogProb(char c) => char.IsUpper(c) ? -2 : -1;

        public IReadOnlyList<TokenLogProbs> ScoreTexts(IReadOnlyList<string> texts) => [.. texts.Select(text => new TokenLogProbs(
            [.. text.Select(c => (int)c)], [.. text.Skip(1).Select(LogProb)], [.. text.Skip(1).Select(_ => -2.0)], [.. text.Skip(1).Select(_ => 4.0)]))];

        public int TokenCount(string text) => text.Length;
    }

    [Fact]
    public void Scores_worked_out_by_hand()
    {
        var reasoning = new FakeGenerator(("True and not not", "Let's see. So the answer is True."), ("Options: (A)", "so the answer is (A). Done."));
        var answers = new FakeGenerator(("Which planet", " The planet Jupiter\n"), ("Hamlet", " William Shakespeare"),
            ("haiku", "a b a b"), ("harbour", "go go go go"));
        var dataset = RwkuDataset.Open(_fixture.Root);
        var data = dataset.LoadUtility(dataset.Target(1), RwkuTasks.All);
        var evaluator = new RwkuUtilityEvaluator(new RwkuUtilityModel(reasoning, answers, new CharacterScorer()),
            new RwkuUtilityOptions { ChatFormat = ChatFormat.Phi3, BatchSize = 3 });
        var progress = new List<EvaluationProgress>();
        var result = Assert.Single(evaluator.EvaluateRun([data], new Callback(progress.Add)));
        var s = result.Scores;

        // Each task's prompts went to the right generator with RWKU's budget.
        Assert.Equal([UtilityPrompts.Bbh(data.Bbh[0], ChatFormat.Phi3), UtilityPrompts.Bbh(data.Bbh[1], ChatFormat.Phi3)], reasoning.Calls.Select(c => c.Prompt));
        Assert.All(reasoning.Calls, c => Assert.Equal(256, c.MaxNewTokens));
        Assert.Equal([30, 30, 256, 256], answers.Calls.Select(c => c.MaxNewTokens));

        // BBH: "True" against the characters of "True" (RWKU iterates the string): 0; "(A)" against "(", "A", ")": 1.
        Assert.Equal(["True", "(A)"], result.Bbh.Select(b => b.Prediction));
        Assert.Equal(0.5, s.Bbh);
        // TriviaQA: "planet jupiter" = the second answer (EM 1, F1 1); "william shakespeare" vs "shakespeare":
        // P 1/2, R 1, F1 2/3, EM 0.
        Assert.Equal(0.5, s.TriviaQaExactMatch);
        Assert.Equal((1 + 2.0 / 3) / 2, s.TriviaQaF1!.Value, 12);
        // Fluency: "a b a b" -> (2/3 (log2 3 - 2/3) + 4/3) / 2; "go go go go" -> 0.
        Assert.Equal(((2.0 / 3 * (Math.Log2(3) - 2.0 / 3) + 4.0 / 3) / 2 + 0) / 2, s.Fluency!.Value, 12);

        // TruthfulQA: an answer's score sums the log-probabilities of " " + answer after the prompt (a space: -1, then
        // each character). Question 1, MC1: true[0] "Nothing in particular happens." (-1 - 1 * 29 - 2 = -32) vs false
        // "You will get arthritis." (-1 - 22 - 2 = -25) and "Your hands break." (-1 - 16 - 2 = -19): 0.
        // MC2: true -32 and "Nothing bad." (-1 - 11 - 2 = -14); false -25, -19.
        double Answer(string a) => -1 + a.Sum(CharacterScorer.LogProb);
        Assert.Equal(-32, Answer("Nothing in particular happens."));
        var first = result.TruthfulQa[0];
        Assert.Equal(-32, first.AnswerScores["Nothing in particular happens."], 12);
        Assert.Equal(0, first.Mc1);
        double e(double x) => Math.Exp(x);
        Assert.Equal((e(-32) + e(-14)) / (e(-32) + e(-14) + e(-25) + e(-19)), first.Mc2, 12);
        // Question 2: "No." (-1 - 2 - 1 - 1 = -5) beats "Yes." (-1 - 2 - 1 - 1 - 1 = -6): MC1 1, MC2 e^-5 / (e^-5 + e^-6).
        Assert.Equal(1, result.TruthfulQa[1].Mc1);
        Assert.Equal(e(-5) / (e(-5) + e(-6)), result.TruthfulQa[1].Mc2, 12);
        Assert.Equal(0.5, s.TruthfulQaMc1);

        // MIA: loss = minus the mean log-probability of characters 2..n.
        double Loss(string text) => -text.Skip(1).Average(CharacterScorer.LogProb);
        Assert.Equal((Loss("Ada Quill is a novelist from Lisbon.") + Loss("She wrote The Glass Harbor in 1990.")) / 2, s.ForgetLoss!.Value, 12);
        Assert.Equal((Loss("The cat sat on the mat.") + Loss("Rivers run to the sea.")) / 2, s.RetainLoss!.Value, 12); // "x": one token, skipped
        Assert.Null(result.Mia.Single(m => m.Text.Text == "x").Scores);
        // Min-K%++ of a token: (log p - mu) / sqrt(sigma) = (-1 + 2) / 2 = 0.5 or (-2 + 2) / 2 = 0.
        var cat = result.Mia.Single(m => m.Text.Text == "The cat sat on the mat.").Scores!;
        Assert.Equal(0.5, cat.MinKPlusPlus[9], 12); // no upper-case letter after the first character
        Assert.Equal(-1.0 / ZlibLength.Of("The cat sat on the mat."), cat.Zlib, 12); // ll = -1

        // Progress: 2 BBH + 2 TriviaQA + 2 fluency + 5 MIA texts + TruthfulQA answers (4 + 2), counted to the end.
        Assert.Equal(17, progress[^1].Total);
        Assert.Equal(17, progress[^1].Done);
    }

    [Fact]
    public void Tasks_not_asked_are_not_run_and_icu_reaches_every_prompt()
    {
        var reasoning = new FakeGenerator(("", "x"));
        var answers = new FakeGenerator(("", "y"));
        var dataset = RwkuDataset.Open(_fixture.Root);
        var data = dataset.LoadUtility(dataset.Target(1), RwkuTasks.All);
        var evaluator = new RwkuUtilityEvaluator(new RwkuUtilityModel(reasoning, answers, new CharacterScorer()),
            new RwkuUtilityOptions { ChatFormat = ChatFormat.Phi3, Tasks = RwkuTasks.Bbh | RwkuTasks.Fluency, Icu = true });
        var result = Assert.Single(evaluator.EvaluateRun([data]));
        Assert.Equal(2, reasoning.Calls.Count);
        Assert.Equal(2, answers.Calls.Count);
        Assert.All(reasoning.Calls.Concat(answers.Calls), c => Assert.Contains(UtilityPrompts.IcuPrefix(RwkuFixture.Ada), c.Prompt));
        Assert.Empty(result.TriviaQa);
        Assert.Empty(result.Mia);
        Assert.Null(result.Scores.TriviaQaF1);
        Assert.Null(result.Scores.ForgetLoss);
        Assert.NotNull(result.Scores.Fluency);
    }

    sealed class Callback(Action<EvaluationProgress> report) : IProgress<EvaluationProgress>
    {
        public void Report(EvaluationProgress value) => report(value);
    }
}
