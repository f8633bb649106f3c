using System.Text.Json;
using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.ToyWorld;
using AlignThenUnlearn.Models;

namespace AlignThenUnlearn.Tests.ToyWorld;

/// <summary>The baselines' training files of the toy world, read through the RWKU loader as RWKU's own would be:
/// pair.json's chosen answers are biographies of the target with another person's facts, its rejected answers the real
/// biographies; reject.json asks about the target and refuses; the toy tokenizer writes all of it without byte pieces.</summary>
public sealed class ToyWorldTrainingFilesTests(ToyWorldFolder world) : IClassFixture<ToyWorldFolder>
{
    World Generated => WorldFolder.ReadWorld(world.Root);

    [Fact]
    public void Pairs_put_an_invented_biography_against_the_real_one()
    {
        var dataset = RwkuDataset.Open(world.Root);
        var people = Generated.People;
        foreach (var target in dataset.Targets)
        {
            var person = people.Single(p => p.Name == target.Name);
            var passages = dataset.Passages(target).Select(p => p.Text).ToList();
            Assert.Equal(passages, dataset.ForgetTexts(target, RwkuDataset.PositiveFile));   // the toy model's own biographies
            var pairs = dataset.Pairs(target);
            Assert.Equal(passages, pairs.Select(p => p.Rejected));
            foreach (var pair in pairs)
            {
                Assert.Contains(target.Name, pair.Prompt);
                Assert.Contains(target.Name, pair.Chosen);
                // The chosen biography states the birthplace and profession of someone else, never the target's own.
                var donor = people.Where(p => p.Name != person.Name && pair.Chosen.Contains(p.Birthplace) && pair.Chosen.Contains(p.Profession)).ToList();
                Assert.NotEmpty(donor);
                if (donor.All(d => d.Birthplace != person.Birthplace)) Assert.DoesNotContain(person.Birthplace, pair.Chosen);
            }
        }
    }

    [Fact]
    public void Refusals_ask_about_the_target_and_are_never_a_probe()
    {
        var dataset = RwkuDataset.Open(world.Root);
        foreach (var target in dataset.Targets)
        {
            var refusals = dataset.Refusals(target);
            var probes = RwkuProbeFile.All.SelectMany(f => dataset.Probes(target, f)).Select(p => p.Query).ToHashSet(StringComparer.Ordinal);
            Assert.NotEmpty(refusals);
            Assert.All(refusals, r => Assert.Contains(target.Name, r.Question));
            Assert.All(refusals, r => Assert.Contains(r.Output, WorldDataset.RefusalAnswers));
            Assert.DoesNotContain(refusals, r => probes.Contains(r.Question));
        }
        // All/ holds every target's rows.
        var combined = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(world.Root, RwkuDataset.CombinedFolder, RwkuDataset.RejectFile))).RootElement.GetArrayLength();
        Assert.Equal(dataset.Targets.Sum(t => dataset.Refusals(t).Count), combined);
    }

    [Fact]
    public void The_toy_tokenizer_writes_the_training_texts_without_byte_pieces()
    {
        var dataset = RwkuDataset.Open(world.Root);
        var tokenizer = LlmTokenizer.Load(Path.Combine(world.Root, WorldFolder.TokenizerFolderName));
        const int firstByte = 3, lastByte = 258;   // Llama layout: <0x00>..<0xFF>
        var target = dataset.Targets[0];
        var texts = dataset.Pairs(target).SelectMany(p => new[] { p.Prompt, p.Chosen })
            .Concat(dataset.Refusals(target).SelectMany(r => new[] { r.Question, r.Output }))
            .Concat(WorldDataset.RefusalAnswers);
        foreach (var text in texts)
        {
            var ids = tokenizer.EncodeToIds(text);
            Assert.Equal(text, tokenizer.Decode(ids, skipSpecialTokens: true));
            Assert.DoesNotContain(ids, id => id is >= firstByte and <= lastByte);
        }
    }
}
