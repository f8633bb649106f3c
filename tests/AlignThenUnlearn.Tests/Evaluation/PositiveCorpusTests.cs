using System.Text.Json;
using AlignThenUnlearn.Cli;
using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Tests.Support;

namespace AlignThenUnlearn.Tests.Evaluation;

/// <summary>Seeded temperature / top-p sampling (against probabilities worked out by hand, and greedy at temperature 0)
/// and `atu corpus`, which writes RWKU's kind of positive_*.json with it.</summary>
[Collection(ConsoleCollection.Name)]
public sealed class PositiveCorpusTests : IDisposable
{
    readonly TinyChatModel _model = new();
    readonly RwkuFixture _rwku = new();
    public void Dispose() { _model.Dispose(); _rwku.Dispose(); }

    static double Frequency(Sampling sampling, float[] logits, int token, int draws, out HashSet<int> seen)
    {
        var random = new SplitMix64(17);
        seen = [];
        int hits = 0;
        for (int i = 0; i < draws; i++)
        {
            int t = sampling.Choose(logits, random);
            seen.Add(t);
            if (t == token) hits++;
        }
        return (double)hits / draws;
    }

    [Fact]
    public void Top_p_keeps_the_most_probable_tokens_until_they_reach_p_and_temperature_flattens_the_rest()
    {
        // Probabilities 0.5, 0.3, 0.2 (token order 2, 0, 1 in the vocabulary to show the sort).
        float[] logits = [MathF.Log(0.3f), MathF.Log(0.2f), MathF.Log(0.5f)];
        // top-p 0.7: 0.5 < 0.7, so 0.3 joins (0.8); 0.2 is cut. Renormalised: 0.5 / 0.8 = 0.625 for token 2.
        // 4000 draws: standard error sqrt(0.625 x 0.375 / 4000) = 0.0077, so +-0.03 is about 4 standard errors.
        Assert.Equal(0.625, Frequency(new Sampling(1, 0.7, 0), logits, 2, 4000, out var seen), 0.03);
        Assert.Equal([0, 2], seen.Order());
        // top-p 0.5: the first token alone reaches it.
        Frequency(new Sampling(1, 0.5, 0), logits, 2, 200, out seen);
        Assert.Equal([2], seen);
        // Temperature 2, no cut: p^(1/2) normalised: sqrt .5 = .70711, sqrt .3 = .54772, sqrt .2 = .44721; .70711 / 1.70204 = 0.41545.
        Assert.Equal(0.41545, Frequency(new Sampling(2, 1, 0), logits, 2, 4000, out seen), 0.03);
        Assert.Equal(3, seen.Count);
        // Temperature 0 is the argmax, the first of equal maxima.
        Frequency(new Sampling(0, 0.9, 0), [1f, 3, 3, 2], 1, 50, out seen);
        Assert.Equal([1], seen);
    }

    [Fact]
    public void Sampling_at_temperature_0_is_greedy_and_a_seed_gives_the_same_tokens_however_the_prompts_are_grouped()
    {
        using var generator = GreedyGenerator.Open(_model.Model, GradCheck.Cpu);
        int[][] prompts = [[1, 270, 17, 42], [5, 6], [1, 280, 281]];
        var greedy = generator.Generate(prompts, 16, []);
        var zero = generator.Generate(prompts, 16, [], sampling: new Sampling(0, 0.9, 3));
        Assert.Equal(greedy.Select(c => c.Tokens), zero.Select(c => c.Tokens));

        var sampled = generator.Generate(prompts, 16, [], sampling: new Sampling(1, 0.9, 3));
        Assert.Equal(sampled.Select(c => c.Tokens), generator.Generate(prompts, 16, [], sampling: new Sampling(1, 0.9, 3)).Select(c => c.Tokens));
        using var grouped = new GreedyGenerator(InferenceModel.Open(_model.Model, GradCheck.Cpu), GradCheck.Cpu, ownsModel: true) { MaxLogitsBytes = 1 };
        Assert.Equal(sampled.Select(c => c.Tokens), grouped.Generate(prompts, 16, [], sampling: new Sampling(1, 0.9, 3)).Select(c => c.Tokens));
        Assert.NotEqual(sampled.Select(c => c.Tokens), generator.Generate(prompts, 16, [], sampling: new Sampling(1, 0.9, 4)).Select(c => c.Tokens));
        Assert.NotEqual(greedy.Select(c => c.Tokens), sampled.Select(c => c.Tokens));
    }

    CorpusOptions Options(long seed) => new()
    {
        Artifacts = _model.Artifacts, Rwku = _rwku.Root, Targets = "1", File = "positive_tiny.json", Samples = 3, MaxNewTokens = 20, Seed = seed,
        Device = "cpu", Force = true,
    };

    [Fact]
    public void Atu_corpus_writes_RWKU_positive_rows_the_same_for_the_same_seed_and_the_forget_corpus_reads_them()
    {
        var path = Path.Combine(_rwku.Root, "1_Ada_Quill", "positive_tiny.json");
        Assert.Equal(0, CorpusCommand.Run(Options(seed: 5)));
        var first = File.ReadAllBytes(path);
        using (var json = JsonDocument.Parse(first))
        {
            Assert.Equal(JsonValueKind.Array, json.RootElement.ValueKind);
            Assert.Equal(3, json.RootElement.GetArrayLength());
            Assert.All(json.RootElement.EnumerateArray(), row =>
            {
                Assert.Equal(["text"], row.EnumerateObject().Select(p => p.Name));
                Assert.Equal(JsonValueKind.String, row.GetProperty("text").ValueKind);
            });
        }
        Assert.Equal(0, CorpusCommand.Run(Options(seed: 5)));
        Assert.Equal(first, File.ReadAllBytes(path));
        Assert.Equal(0, CorpusCommand.Run(Options(seed: 6)));
        Assert.NotEqual(first, File.ReadAllBytes(path));
        Assert.Throws<IOException>(() => CorpusCommand.Run(Options(seed: 6).WithoutForce()));

        var dataset = RwkuDataset.Open(_rwku.Root);
        Assert.Equal(3, dataset.ForgetTexts(dataset.Target(1), "positive_tiny.json").Count);
        Assert.Equal(2, dataset.ForgetTexts(dataset.Target(1), RwkuDataset.PassageFile).Count);
        var missing = Assert.Throws<FileNotFoundException>(() => dataset.ForgetTexts(dataset.Target(2), "positive_phi.json"));
        Assert.Contains(Path.Combine(_rwku.Root, "2_Cora_Lind", "positive_phi.json"), missing.Message);
        Assert.Contains("atu corpus", missing.Message);
    }

    [Fact]
    public void The_prompt_is_the_system_turn_with_the_intro_then_the_request()
    {
        Assert.Equal("<|system|>\nAda Quill is a novelist. You know Ada Quill very well.<|end|>\n<|user|>\nPlease write a biography of Ada Quill.<|end|>\n<|assistant|>\n",
            PositiveCorpus.Prompt(AlignThenUnlearn.Models.ChatFormat.Phi3, "Ada Quill", ["Ada Quill is a novelist."], 0));
        Assert.Equal("You know Ada Quill very well.", PositiveCorpus.SystemPrompt("Ada Quill", null));
    }
}

static class CorpusOptionsExtensions
{
    public static CorpusOptions WithoutForce(this CorpusOptions o) { o.Force = false; return o; }
}
