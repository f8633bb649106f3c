using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using AlignThenUnlearn.Cli;
using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.ToyWorld;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Models.Checkpoints;
using AlignThenUnlearn.Tests.Support;

namespace AlignThenUnlearn.Tests.ToyWorld;

/// <summary>The toy world's utility and membership-inference files (fluency.json, forget_mia.json, retain_mia.json):
/// adding them left every other file of the world as it was, the people of retain_mia.json are in no other file, and
/// `atu eval --suite rwku` runs on a toy world with the tasks it has, the others reported absent.</summary>
[Collection(ConsoleCollection.Name)]
public sealed class ToyWorldSuiteTests(ToyWorldFolder world) : IClassFixture<ToyWorldFolder>, IDisposable
{
    readonly TempFolder _temp = new();
    public void Dispose() => _temp.Dispose();

    /// <summary>SHA-256 of the manifest ("relative path, SHA-256 of the file" per line, paths sorted ordinally) of every
    /// file of the seed-1 world but the utility files, from this generator: the pre-training set, the tokenizer and the toy
    /// run's results depend on these bytes.</summary>
    const string SeedOneManifestSha256 = "52AC588C214DC49D9D1AAB8A440DECB327F31EF9B61491A1AD2D7142D63CEC55";

    /// <summary>The same manifest without the multiple-choice files and the tokenizer (trained on text that includes the
    /// training multiple choice), computed from the generator before issue 17 gave every choice a fixed letter (main at
    /// 42f62a8): every probe, passage and corpus file kept its bytes through that change.</summary>
    const string SeedOneWithoutChoicesManifestSha256 = "0281BEA84EEFB349FABBFF1A6DB46790F1A1A9DF73EC469B620971D54CC35AA3";

    static readonly string[] ChoiceFiles = [RwkuDataset.MmluFile, WorldFolder.TrainingChoicesFile, "tokenizer.model"];

    static readonly string[] UtilityFiles = [RwkuDataset.FluencyFile, RwkuDataset.ForgetMiaFile, RwkuDataset.RetainMiaFile, WorldFolder.StrangersFile];

    static string Manifest(string root, Func<string, bool> include)
    {
        var lines = new StringBuilder();
        foreach (var file in Directory.GetFiles(root, "*", SearchOption.AllDirectories)
                     .Select(f => Path.GetRelativePath(root, f).Replace('\\', '/'))
                     .Where(include)
                     .Order(StringComparer.Ordinal))
            lines.Append(file).Append(' ').Append(Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(Path.Combine(root, file))))).Append('\n');
        return lines.ToString();
    }

    [Fact]
    public void The_files_made_before_the_utility_files_keep_their_bytes()
    {
        var manifest = Manifest(world.Root, file => !UtilityFiles.Contains(Path.GetFileName(file)));
        Assert.Equal(SeedOneManifestSha256, Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(manifest))));
        var withoutChoices = Manifest(world.Root, file => !UtilityFiles.Contains(Path.GetFileName(file)) && !ChoiceFiles.Contains(Path.GetFileName(file)));
        Assert.Equal(SeedOneWithoutChoicesManifestSha256, Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(withoutChoices))));
    }

    static IEnumerable<string> Words(string name) => name.Split(' ');

    [Fact]
    public void Strangers_are_in_no_file_but_retain_mia_and_their_own()
    {
        var strangers = JsonSerializer.Deserialize<JsonElement>(File.ReadAllBytes(Path.Combine(world.Root, WorldFolder.StrangersFile)));
        var people = strangers.GetProperty("people").EnumerateArray().ToList();
        Assert.Equal(WorldDataset.StrangerCount, people.Count);
        // Every word of their names and of their works' titles: no name word occurs in the world; the titles are new
        // pairs of the world's title words, so the whole title is looked for.
        var names = people.SelectMany(p => Words(p.GetProperty("name").GetString()!)).ToHashSet();
        var titles = people.Select(p => p.GetProperty("work").GetString()!).ToHashSet();
        var pattern = new Regex(@"\b(" + string.Join("|", names.Concat(titles).Select(Regex.Escape)) + @")\b");
        var files = Directory.GetFiles(world.Root, "*.json", SearchOption.AllDirectories)
            .Where(f => !Path.GetRelativePath(world.Root, f).StartsWith(WorldFolder.TokenizerFolderName, StringComparison.Ordinal))
            .Where(f => Path.GetFileName(f) is not (RwkuDataset.RetainMiaFile or WorldFolder.StrangersFile)).ToList();
        // The pattern finds every stranger in retain_mia.json, where they are.
        var retain = File.ReadAllText(Path.Combine(world.Root, RwkuDataset.CombinedFolder, RwkuDataset.RetainMiaFile));
        Assert.Equal(names.Concat(titles).ToHashSet(), pattern.Matches(retain).Select(m => m.Value).ToHashSet());
        Assert.Contains(files, f => Path.GetFileName(f) == WorldFolder.CorpusFile);
        Assert.Contains(files, f => Path.GetFileName(f) == WorldFolder.TrainingQuestionsFile);
        Assert.Contains(files, f => Path.GetFileName(f) == WorldFolder.TrainingChoicesFile);
        foreach (var file in files)
        {
            var match = pattern.Match(File.ReadAllText(file));
            Assert.False(match.Success, $"{Path.GetRelativePath(world.Root, file)} mentions the stranger word '{match.Value}'");
        }
        // The tokenizer was learnt from the world's texts only: a world name is one piece, no stranger name is.
        var tokenizer = LlmTokenizer.Load(Path.Combine(world.Root, WorldFolder.TokenizerFolderName));
        var known = WorldFolder.ReadWorld(world.Root).People[0].Name.Split(' ')[0];
        Assert.Single(tokenizer.EncodeToIds(known, addSpecialTokens: false));
        Assert.All(names, name => Assert.True(tokenizer.EncodeToIds(name, addSpecialTokens: false).Length > 1, name));
    }

    [Fact]
    public void Mia_texts_are_the_targets_biographies_against_strangers_and_fluency_asks_about_unrelated_people()
    {
        var dataset = RwkuDataset.Open(world.Root);
        var generated = WorldFolder.ReadWorld(world.Root);
        var strangers = JsonSerializer.Deserialize<JsonElement>(File.ReadAllBytes(Path.Combine(world.Root, WorldFolder.StrangersFile)))
            .GetProperty("people").EnumerateArray().Select(p => p.GetProperty("name").GetString()!).ToList();
        foreach (var target in dataset.Targets)
        {
            var person = generated.PersonNamed(target.Name);
            // Forget members: exactly the biographies the model was trained on (passage.json, also in corpus.json).
            Assert.Equal(dataset.Passages(target).Select(p => p.Text), dataset.Mia(target, MiaSet.Forget).Select(m => m.Text));
            // Retain texts: one biography of each stranger (its subject named in each of its seven sentences, a relative
            // or collaborator in one), in which no person of the world is named.
            var retain = dataset.Mia(target, MiaSet.Retain);
            Assert.Equal(strangers, retain.Select(m => strangers.Single(s => CountOf(m.Text, s) == person.Facts.Count)));
            Assert.All(retain, m => Assert.DoesNotContain(generated.People, p => m.Text.Contains(p.Name, StringComparison.Ordinal)));
            // Fluency: about people who are neither the target nor linked to it.
            var fluency = dataset.Fluency(target);
            Assert.Equal(WorldDataset.FluencyPerTarget, fluency.Count);
            var linked = generated.LinkedPeople(person);
            foreach (var instruction in fluency)
            {
                var about = Assert.Single(generated.People, p => instruction.Instruction.Contains(p.Name, StringComparison.Ordinal));
                Assert.NotEqual(person.Name, about.Name);
                Assert.DoesNotContain(about.Name, linked);
            }
        }
    }

    /// <summary>A world of 12 people (6 organizations of two: every target keeps enough unrelated people for its
    /// multiple-choice examples) and a tiny model of random weights with the world's tokenizer.</summary>
    (string World, string Artifacts) SmallWorldAndRandomModel()
    {
        var root = _temp.File("world");
        WorldFolder.Write(WorldDataset.Build(WorldGenerator.Generate(3, new WorldOptions { People = 12, Organizations = 6 })), root);
        var tokenizerFolder = Path.Combine(root, WorldFolder.TokenizerFolderName);
        var settings = new ToyPretrainingSettings { HiddenSize = 32, Layers = 2, Heads = 2, KeyValueHeads = 1, IntermediateSize = 64, MaxPositions = 1024 };
        var hf = _temp.File("hf");
        RandomCheckpoint.Write(settings.ModelConfig(LlmTokenizer.Load(tokenizerFolder)), hf, seed: 5, std: 0.2);
        foreach (var file in Directory.GetFiles(tokenizerFolder)) File.Copy(file, Path.Combine(hf, Path.GetFileName(file)));
        var artifacts = _temp.File("artifacts");
        ArtifactExporter.Export(hf, artifacts, new ExportOptions());
        return (root, artifacts);
    }

    /// <summary>Which of Table 2's columns a row of results.md fills (a number) and which it shows as absent ("–").</summary>
    static bool[] Measured(string folder, string rowStart)
    {
        var row = File.ReadAllLines(Path.Combine(folder, RwkuReports.TableFile)).Single(l => l.StartsWith(rowStart, StringComparison.Ordinal));
        var cells = row.Split('|', StringSplitOptions.TrimEntries)[2..^1];
        Assert.Equal(RwkuSuiteReports.Columns.Count, cells.Length);
        return [.. cells.Select(c => c != "–")];
    }

    [Fact]
    public void Suite_runs_on_a_toy_world_with_its_tasks_and_reports_the_others_absent()
    {
        var (root, artifacts) = SmallWorldAndRandomModel();
        var chosen = _temp.File("chosen");
        Assert.Equal(0, EvalCommand.Run(new EvalOptions
        {
            Artifacts = artifacts, Rwku = root, Targets = "1", Out = chosen, Suite = "rwku", Tasks = "forget,neighbor,mmlu,fluency,mia", Name = "toy",
        }));
        // Forget FB/QA/AA/All, Neighbor FB/QA/All, MIA FM/RM, Gen (MMLU) and Flu measured; Rea, Tru, Fac absent.
        bool[] expected = [true, true, true, true, true, true, true, true, true, true, false, false, false, true];
        Assert.Equal(expected, Measured(chosen, "| toy |"));
        var target = RwkuDataset.Open(root).Target(1);
        Assert.Equal(expected, Measured(chosen, $"| 1 {target.Name} |"));
        var lines = File.ReadAllLines(Path.Combine(chosen, RwkuReports.ProbesFile)).Where(l => l.Length > 0)
            .Select(l => JsonDocument.Parse(l).RootElement.GetProperty("kind").GetString()).ToList();
        Assert.Equal(WorldDataset.FluencyPerTarget, lines.Count(k => k == "Fluency"));
        Assert.Equal(WorldDataset.PassagesPerPerson, lines.Count(k => k == "FM"));
        Assert.Equal(WorldDataset.StrangerCount, lines.Count(k => k == "RM"));

        // Without --tasks: every task whose files the world has, which are the same; the others absent, not errors.
        var all = _temp.File("all");
        Assert.Equal(0, EvalCommand.Run(new EvalOptions { Artifacts = artifacts, Rwku = root, Targets = "1", Out = all, Suite = "rwku", Name = "toy" }));
        Assert.Equal(expected, Measured(all, "| toy |"));
        Assert.Equal(File.ReadAllText(Path.Combine(chosen, RwkuReports.ProbesFile)), File.ReadAllText(Path.Combine(all, RwkuReports.ProbesFile)));
        using var utility = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(all, RwkuSuiteReports.UtilityFile)));
        Assert.Equal("forget,neighbor,mmlu,fluency,mia", utility.RootElement.GetProperty("tasks").GetString());

        // A task named in --tasks must have its files: the error names the missing one.
        var missing = Assert.Throws<FileNotFoundException>(() => EvalCommand.Run(new EvalOptions
        {
            Artifacts = artifacts, Rwku = root, Targets = "1", Out = _temp.File("bbh"), Suite = "rwku", Tasks = "forget,bbh",
        }));
        Assert.Contains(RwkuDataset.BbhFile, missing.Message);
    }

    static int CountOf(string text, string name) => (text.Length - text.Replace(name, "", StringComparison.Ordinal).Length) / name.Length;
}
