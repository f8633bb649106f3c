using System.Text.Json;
using System.Text.RegularExpressions;
using AlignThenUnlearn.Cli;
using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.ToyWorld;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Tests.Support;
using CommandLine;
using AlignThenUnlearn.Jobs.Toy;

namespace AlignThenUnlearn.Tests.ToyWorld;

/// <summary>One generated world folder (seed 1), shared by the tests that only read it.</summary>
public sealed class ToyWorldFolder : IDisposable
{
    public const int Seed = 1;
    public TempFolder Folder { get; } = new();
    public string Root => Folder.Path;

    public ToyWorldFolder() => WorldFolder.Write(WorldDataset.Build(WorldGenerator.Generate(Seed)), Root);

    public void Dispose() => Folder.Dispose();
}

/// <summary>The toy world as written to disk. Each test reads the files as a consumer would (JSON documents, the
/// RWKU loader, the tokenizer loader) and checks a property of them that does not depend on how the generator
/// works: determinism, sizes and links, paraphrase counts, answers backed by the corpus, probes kept apart from
/// the training set, tokenizer round trips.</summary>
public partial class ToyWorldTests(ToyWorldFolder world) : IClassFixture<ToyWorldFolder>
{
    static JsonElement ReadJson(string path) => JsonDocument.Parse(File.ReadAllBytes(path)).RootElement;
    static string Str(JsonElement e, string name) => e.GetProperty(name).ValueKind == JsonValueKind.Number
        ? e.GetProperty(name).GetRawText() : e.GetProperty(name).GetString()!;

    JsonElement World => ReadJson(Path.Combine(world.Root, "world.json"));
    JsonElement[] People => [.. World.GetProperty("people").EnumerateArray()];

    /// <summary>A person's facts as world.json states them (relation, value).</summary>
    static (string Relation, string Value)[] PersonFacts(JsonElement person) =>
    [
        ("birthplace", Str(person, "birthplace")), ("birth_year", Str(person, "birth_year")), ("profession", Str(person, "profession")),
        ("work", Str(person, "work")), ("employer", Str(person, "employer")), (Str(person, "relative_kind"), Str(person, "relative")),
        ("collaborator", Str(person, "collaborator")),
    ];

    /// <summary>Every named thing of the world, longest first (so "Golden Bridge" is found before any part of it).</summary>
    string[] EntityNames()
    {
        var w = World;
        var names = new List<string>();
        foreach (var p in w.GetProperty("people").EnumerateArray()) names.AddRange([Str(p, "name"), Str(p, "work"), Str(p, "employer")]);
        foreach (var c in w.GetProperty("cities").EnumerateArray()) names.AddRange([Str(c, "name"), Str(c, "country"), Str(c, "river")]);
        return [.. names.Distinct().OrderByDescending(n => n.Length)];
    }

    Dictionary<string, List<string>> SentencesBySubject()
    {
        var bySubject = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        foreach (var row in ReadJson(Path.Combine(world.Root, "corpus.json")).EnumerateArray())
        {
            var list = bySubject.TryGetValue(Str(row, "subject"), out var l) ? l : bySubject[Str(row, "subject")] = [];
            list.AddRange(SentenceEnd().Split(Str(row, "text")));
        }
        return bySubject;
    }

    [GeneratedRegex(@"(?<=[.?!])\s+")]
    private static partial Regex SentenceEnd();

    static List<string> RelativeFiles(string root) =>
        [.. Directory.GetFiles(root, "*", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(root, f)).Order(StringComparer.Ordinal)];

    [Fact]
    public void The_same_seed_gives_identical_bytes_and_another_seed_another_world()
    {
        using var first = new TempFolder();
        using var second = new TempFolder();
        using var other = new TempFolder();
        WorldFolder.Write(WorldDataset.Build(WorldGenerator.Generate(7)), first.Path);
        WorldFolder.Write(WorldDataset.Build(WorldGenerator.Generate(7)), second.Path);
        WorldFolder.Write(WorldDataset.Build(WorldGenerator.Generate(8)), other.Path);

        var files = RelativeFiles(first.Path);
        Assert.Equal(files, RelativeFiles(second.Path));
        foreach (var file in files)
            Assert.True(File.ReadAllBytes(Path.Combine(first.Path, file)).AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(second.Path, file))), file);

        var names = ReadJson(first.File("world.json")).GetProperty("people").EnumerateArray().Select(p => Str(p, "name")).ToHashSet();
        var otherNames = ReadJson(other.File("world.json")).GetProperty("people").EnumerateArray().Select(p => Str(p, "name")).ToHashSet();
        Assert.NotEqual(names, otherNames);
        Assert.False(File.ReadAllBytes(first.File("corpus.json")).AsSpan().SequenceEqual(File.ReadAllBytes(other.File("corpus.json"))));
    }

    [Fact]
    public void World_has_sixty_people_with_seven_facts_and_mutual_links()
    {
        var people = People;
        Assert.True(people.Length >= 60, $"{people.Length} people");
        var byName = people.ToDictionary(p => Str(p, "name"));
        Assert.Equal(people.Length, byName.Count); // names are unique
        var works = World.GetProperty("works").EnumerateArray().ToDictionary(w => Str(w, "title"));
        var cities = World.GetProperty("cities").EnumerateArray().ToDictionary(c => Str(c, "name"));
        foreach (var person in people)
        {
            var name = Str(person, "name");
            var facts = PersonFacts(person);
            Assert.True(facts.Length >= 6 && facts.All(f => f.Value.Length > 0), name);
            Assert.Contains(Str(person, "relative_kind"), new[] { "spouse", "sibling" });
            // Relatives and collaborators are other people of the world, and the link goes both ways.
            var relative = byName[Str(person, "relative")];
            var collaborator = byName[Str(person, "collaborator")];
            Assert.Equal(name, Str(relative, "relative"));
            Assert.Equal(name, Str(collaborator, "collaborator"));
            Assert.NotEqual(name, Str(relative, "name"));
            Assert.NotEqual(Str(relative, "name"), Str(collaborator, "name"));
            if (Str(person, "relative_kind") == "sibling") Assert.Equal(name.Split(' ')[1], Str(relative, "name").Split(' ')[1]);
            // Every employer has several members: colleagues are neighbours too.
            Assert.True(people.Count(p => Str(p, "employer") == Str(person, "employer")) >= 2, name);
            // The person's work and birthplace are entities with facts of their own.
            var work = works[Str(person, "work")];
            Assert.Equal(name, Str(work, "author"));
            Assert.True(Str(work, "genre").Length > 0 && int.Parse(Str(work, "year")) > int.Parse(Str(person, "birth_year")));
            var city = cities[Str(person, "birthplace")];
            Assert.True(Str(city, "country").Length > 0 && Str(city, "river").Length > 0);
        }
    }

    [Fact]
    public void Every_fact_appears_in_at_least_three_paraphrases_in_the_corpus()
    {
        var sentences = SentencesBySubject();
        void Check(string subject, string value)
        {
            // A paraphrase is a sentence about the subject that states the value; paraphrases differ once the
            // subject and the value are blanked out.
            var stating = sentences[subject].Where(s => s.Contains(subject, StringComparison.Ordinal) && s.Contains(value, StringComparison.Ordinal));
            var skeletons = stating.Select(s => s.Replace(subject, "{s}").Replace(value, "{v}")).Distinct().ToList();
            Assert.True(skeletons.Count >= 3, $"{subject} / {value}: {skeletons.Count} paraphrases");
        }
        foreach (var person in People)
            foreach (var (_, value) in PersonFacts(person)) Check(Str(person, "name"), value);
        foreach (var work in World.GetProperty("works").EnumerateArray())
            foreach (var field in new[] { "year", "genre" }) Check(Str(work, "title"), Str(work, field));
        foreach (var city in World.GetProperty("cities").EnumerateArray())
            foreach (var field in new[] { "country", "river" }) Check(Str(city, "name"), Str(city, field));
    }

    [Fact]
    public void Files_load_through_the_rwku_loader_with_short_answers_and_all_attack_types()
    {
        var dataset = RwkuDataset.Open(world.Root);
        Assert.Equal(People.Select(p => Str(p, "name")), dataset.Targets.Select(t => t.Name));
        string[] attackTypes = ["prefix injection", "affirmative suffix", "role playing", "reverse query", "synonym manipulation", "background hint", "incontext learning"];
        foreach (var target in dataset.Targets)
        {
            var data = dataset.Load(target);
            Assert.NotEmpty(data.Passages);
            foreach (var file in RwkuProbeFile.All) Assert.NotEmpty(dataset.Probes(target, file)); // neighbours included
            Assert.Equal(attackTypes.Order(), dataset.Probes(target, RwkuProbeFile.ForgetLevel3).Select(p => p.Type).Distinct().Order());
            foreach (var probe in data.Probes)
            {
                Assert.InRange(probe.Answer.Split(' ').Length, 1, 3);
                if (probe.Level == 1) Assert.Single(Regex.Matches(probe.Query, "___"));
                else Assert.DoesNotContain("___", probe.Query);
                if (probe.Set == ProbeSet.Neighbor) Assert.False(string.IsNullOrEmpty(probe.Neighbor));
            }
            Assert.All(data.Mmlu, q => Assert.Equal(5, q.Examples.Count));
        }
        // All/ holds the same rows as the target folders.
        foreach (var file in RwkuProbeFile.All.Select(f => f.FileName).Append("passage.json").Append("retain_mmlu.json"))
        {
            var combined = ReadJson(Path.Combine(world.Root, "All", file)).EnumerateArray().Select(r => r.GetRawText()).ToList();
            var own = dataset.Targets.SelectMany(t => ReadJson(Path.Combine(t.Folder, file)).EnumerateArray().Select(r => r.GetRawText())).ToList();
            Assert.Equal(own, combined);
        }
    }

    [Fact]
    public void Probe_answers_are_stated_in_the_corpus_about_the_entity_asked()
    {
        var dataset = RwkuDataset.Open(world.Root);
        var sentences = SentencesBySubject();
        bool Stated(string subject, string answer) =>
            sentences.TryGetValue(subject, out var list) && list.Any(s => s.Contains(answer, StringComparison.Ordinal));
        foreach (var target in dataset.Targets)
        {
            var data = dataset.Load(target);
            // Forget probes: the target's own biography states the answer (and forget_level*.json answers only
            // about the target).
            foreach (var probe in data.ProbesOf(ProbeSet.Forget))
                Assert.True(Stated(target.Name, probe.Answer), $"{target.Name}: {probe.Query} -> {probe.Answer}");
            // Neighbour probes: the neighbour's own passages state it; the answer is none of the target's answers.
            var ownAnswers = data.ProbesOf(ProbeSet.Forget).Select(p => p.Answer).ToHashSet();
            foreach (var probe in data.ProbesOf(ProbeSet.Neighbor))
            {
                Assert.True(Stated(probe.Neighbor!, probe.Answer), $"{probe.Neighbor}: {probe.Query} -> {probe.Answer}");
                Assert.DoesNotContain(probe.Answer, ownAnswers);
            }
        }
    }

    [Fact]
    public void Multiple_choice_questions_ask_about_unrelated_people_and_only_the_marked_choice_is_true()
    {
        var dataset = RwkuDataset.Open(world.Root);
        var sentences = SentencesBySubject();
        var byName = People.ToDictionary(p => Str(p, "name"));
        string PersonIn(string question) => byName.Keys.Single(n => question.Contains(n, StringComparison.Ordinal));
        void CheckItem(string question, IReadOnlyList<string> choices, int answer)
        {
            var person = PersonIn(question);
            Assert.Equal(4, choices.Distinct().Count());
            for (int i = 0; i < 4; i++)
                Assert.True(sentences[person].Any(s => s.Contains(choices[i], StringComparison.Ordinal)) == (i == answer), $"{question} {choices[i]}");
        }
        foreach (var target in dataset.Targets)
        {
            var person = byName[target.Name];
            var linked = new HashSet<string> { target.Name, Str(person, "relative"), Str(person, "collaborator") };
            linked.UnionWith(People.Where(p => Str(p, "employer") == Str(person, "employer")).Select(p => Str(p, "name")));
            foreach (var question in dataset.Mmlu(target))
            {
                Assert.DoesNotContain(PersonIn(question.Question), linked);
                CheckItem(question.Question, question.Choices, question.Answer);
                foreach (var example in question.Examples)
                {
                    Assert.DoesNotContain(PersonIn(example.Question), linked);
                    CheckItem(example.Question, example.Choices, example.Answer);
                }
            }
        }
    }

    [Fact]
    public void Every_choice_value_stands_at_one_letter_and_the_answers_spread_over_all_four()
    {
        // The toy world's multiple choice: a value of a relation is always at the same letter (its slot), wherever it is
        // a choice (probe questions, their examples, the training questions), and each letter holds one value of the
        // relation, so only knowing the fact gives the letter. Checked here from the files alone.
        var dataset = RwkuDataset.Open(world.Root);
        var items = dataset.Targets.SelectMany(t => dataset.Mmlu(t))
            .SelectMany(q => q.Examples.Select(e => (q.Task, e.Choices, e.Answer)).Append((q.Task, q.Choices, q.Answer)))
            .Concat(WorldFolder.ReadTrainingChoices(world.Root).Select(q => (q.Task, q.Choices, q.Answer))).ToList();
        var slotOf = new Dictionary<(string Task, string Value), int>();
        foreach (var (task, choices, _) in items)
            for (int letter = 0; letter < choices.Count; letter++)
                Assert.Equal(letter, slotOf.TryAdd((task, choices[letter]), letter) ? letter : slotOf[(task, choices[letter])]);
        var answers = items.GroupBy(i => i.Answer).ToDictionary(g => g.Key, g => g.Count());
        Assert.Equal([0, 1, 2, 3], answers.Keys.Order());
        Assert.All(answers.Values, n => Assert.True(n >= items.Count / 10, $"{n} of {items.Count} answers at one letter"));
    }

    [Fact]
    public void Probes_and_training_questions_use_different_templates()
    {
        var dataset = RwkuDataset.Open(world.Root);
        var probes = dataset.Targets.SelectMany(t => RwkuProbeFile.All.SelectMany(f => dataset.Probes(t, f))).ToList();
        var training = ReadJson(Path.Combine(world.Root, "train_qa.json")).EnumerateArray().ToList();
        var trainingChoices = ReadJson(Path.Combine(world.Root, "train_mmlu.json")).EnumerateArray().ToList();
        Assert.True(training.Count > probes.Count, "the training set covers every fact with several templates");

        // No probe is a training question, word for word.
        var trainingQueries = training.Select(t => Str(t, "query")).ToHashSet(StringComparer.Ordinal);
        Assert.DoesNotContain(probes, p => trainingQueries.Contains(p.Query));
        var trainingChoiceQuestions = trainingChoices.SelectMany(c => c.GetProperty("examples").EnumerateArray().Append(c)).Select(q => Str(q, "question")).ToHashSet();
        Assert.DoesNotContain(dataset.Targets.SelectMany(t => dataset.Mmlu(t)).SelectMany(q => q.Examples.Select(e => e.Question).Append(q.Question)), trainingChoiceQuestions.Contains);

        // Nor does a probe share its template with a training question: with every name and year blanked out, the
        // question being asked (the last line of an in-context query) reads differently.
        var entities = string.Join("|", EntityNames().Select(Regex.Escape));
        var blank = new Regex($@"{entities}|\b[0-9]{{4}}\b");
        string Skeleton(string query) => blank.Replace(query.Split('\n')[^1], "#");
        var trainingSkeletons = training.Select(t => Skeleton(Str(t, "query"))).ToHashSet(StringComparer.Ordinal);
        var shared = probes.Select(p => Skeleton(p.Query)).Where(trainingSkeletons.Contains).Distinct().ToList();
        Assert.True(shared.Count == 0, "shared templates: " + string.Join(" | ", shared.Take(5)));
        // The training set asks about every person, work and city (in every level and attack type the probes use).
        Assert.Equal(["", "affirmative suffix", "background hint", "incontext learning", "prefix injection", "reverse query", "role playing", "synonym manipulation"],
            training.Select(t => Str(t, "type")).Distinct().Order(StringComparer.Ordinal));
        var asked = People.SelectMany(p => new[] { Str(p, "name"), Str(p, "work") })
            .Concat(World.GetProperty("cities").EnumerateArray().Select(c => Str(c, "name"))).ToHashSet();
        Assert.Superset(asked, training.Select(t => Str(t, "subject")).ToHashSet());
    }

    [Fact]
    public void Tokenizer_loads_as_phi3_and_round_trips_the_corpus_with_whole_words()
    {
        var tokenizer = LlmTokenizer.Load(Path.Combine(world.Root, "tokenizer"));
        Assert.Equal(ChatFormat.Phi3, tokenizer.ChatFormat);
        foreach (var special in new[] { "<|user|>", "<|assistant|>", "<|end|>", "<|endoftext|>" })
            Assert.True(tokenizer.TryGetId(special, out _), special);
        Assert.InRange(tokenizer.VocabularySize, 300, 2000);
        const int firstByte = 3, lastByte = 258; // Llama layout: <0x00>..<0xFF>
        var words = new HashSet<string>(StringComparer.Ordinal);
        foreach (var row in ReadJson(Path.Combine(world.Root, "corpus.json")).EnumerateArray())
        {
            var text = Str(row, "text");
            var ids = tokenizer.EncodeToIds(text);
            Assert.Equal(text, tokenizer.Decode(ids, skipSpecialTokens: true));
            Assert.DoesNotContain(ids, id => id is >= firstByte and <= lastByte); // every character is a piece
            words.UnionWith(Regex.Matches(text, @"\p{L}+|[0-9]+").Select(m => m.Value));
        }
        // The world's words, names and years included, are single pieces (with their leading space).
        var split = words.Where(w => tokenizer.EncodeToIds(w, addSpecialTokens: false).Length != 1).ToList();
        Assert.True(split.Count == 0, "split words: " + string.Join(", ", split.Take(10)));
        // Training answers round-trip too (they are what the model learns to write).
        foreach (var row in ReadJson(Path.Combine(world.Root, "train_qa.json")).EnumerateArray())
            Assert.Equal(Str(row, "answer"), tokenizer.Decode(tokenizer.EncodeToIds(Str(row, "answer")), skipSpecialTokens: true));
    }

    [Fact]
    public void World_json_reads_back_as_the_generated_world()
    {
        var generated = WorldGenerator.Generate(ToyWorldFolder.Seed);
        var read = WorldFolder.ReadWorld(world.Root);
        Assert.Equal(generated.People, read.People);
        Assert.Equal(generated.Works, read.Works);
        Assert.Equal(generated.Cities, read.Cities);
        Assert.Equal(generated.Organizations, read.Organizations);
        var questions = WorldFolder.ReadTrainingQuestions(world.Root);
        Assert.Equal(ReadJson(Path.Combine(world.Root, "train_qa.json")).GetArrayLength(), questions.Count);
        var dataset = WorldDataset.Build(generated);
        Assert.Equal(dataset.TrainingQuestions, questions);
        Assert.Equal(dataset.Corpus, WorldFolder.ReadCorpus(world.Root));
        Assert.Equal(dataset.TrainingChoices.Count, WorldFolder.ReadTrainingChoices(world.Root).Count);
    }

    static (int Exit, string Out, string Err, ToyOptions Options) RunToy(params string[] args)
    {
        var parsed = Assert.IsType<Parsed<ToyOptions>>(Parser.Default.ParseArguments<ToyOptions>(args));
        var stdout = new StringWriter { NewLine = "\n" };
        var stderr = new StringWriter { NewLine = "\n" };
        int exit = ToyCommand.Run(parsed.Value, stdout, stderr);
        return (exit, stdout.ToString(), stderr.ToString(), parsed.Value);
    }

    [Fact]
    public void Atu_toy_world_writes_the_folder_and_the_full_run_refuses_a_world_of_another_seed()
    {
        using var folder = new TempFolder();
        var output = folder.File("world");
        var (exit, stdout, _, options) = RunToy("world", "--seed", "3", "--out", output);
        Assert.Equal((0, 3), (exit, options.Seed));
        Assert.Contains("60 people", stdout);
        Assert.Equal(60, RwkuDataset.Open(output).Targets.Count);
        Assert.Equal(3, WorldFolder.ReadWorld(output).Seed);
        // An existing folder is replaced only with --force.
        Assert.Throws<IOException>(() => RunToy("world", "--seed", "3", "--out", output));
        Assert.Equal(0, RunToy("world", "--seed", "4", "--out", output, "--force").Exit);
        Assert.Equal(4, WorldFolder.ReadWorld(output).Seed);

        // The full run reuses a finished world only when it is the world of its seed (it would report on another world).
        var root = folder.File("root");
        Directory.CreateDirectory(root);
        Directory.Move(output, Path.Combine(root, ToyRun.WorldFolderName));
        var refused = Assert.Throws<InvalidOperationException>(() => RunToy("--seed", "5", "--out", root, "--device", "cpu"));
        Assert.Contains("seed 4, not 5", refused.Message);
        Assert.Throws<ArgumentException>(() => RunToy("--people", "0", "--out", root));
        Assert.Contains("'ga-star'", Assert.Throws<ArgumentException>(() => RunToy("--methods", "atu,ga-star", "--out", root)).Message);
        Assert.Throws<ArgumentException>(() => RunToy("--jobs", "0", "--out", root));
        Assert.Equal(2, RunToy("nonsense").Exit);
    }
}
