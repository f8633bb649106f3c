using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.Tests.Support;

namespace AlignThenUnlearn.Tests.Evaluation;

/// <summary>The RWKU loader on the fixture folder (<see cref="RwkuFixture"/>) and on broken copies of its files.</summary>
public class RwkuDatasetTests
{
    [Fact]
    public void Targets_are_numbered_and_named_by_their_folders()
    {
        using var fixture = new RwkuFixture();
        var dataset = RwkuDataset.Open(fixture.Root);
        Assert.Equal([(1, "Ada Quill"), (2, "Cora Lind")], dataset.Targets.Select(t => (t.Number, t.Name)));
    }

    [Fact]
    public void A_targets_own_folder_wins_over_the_combined_files()
    {
        using var fixture = new RwkuFixture();
        var dataset = RwkuDataset.Open(fixture.Root);
        var data = dataset.Load(dataset.Target(1));
        // Exactly the rows written into 1_Ada_Quill/, in file order: the decoy row of All/ is not read.
        Assert.Equal(["Ada Quill was born in ___.", "Ada Quill wrote the novel ___."],
            data.Probes.Where(p => p is { Set: ProbeSet.Forget, Level: 1 }).Select(p => p.Query));
        Assert.Equal(
            [(ProbeSet.Forget, 1), (ProbeSet.Forget, 1), (ProbeSet.Forget, 2), (ProbeSet.Forget, 3), (ProbeSet.Forget, 3), (ProbeSet.Forget, 3), (ProbeSet.Neighbor, 1), (ProbeSet.Neighbor, 2)],
            data.Probes.Select(p => (p.Set, p.Level)));
        var attack = data.Probes.Single(p => p.Type == "incontext learning");
        Assert.Equal("Question: Who wrote The Glass Harbor?\nAnswer: Ada Quill\nQuestion: Where is the writer from?", attack.Query);
        Assert.Equal(ProbeKind.Adversarial, attack.Kind);
        var neighbor = data.Probes.Single(p => p is { Set: ProbeSet.Neighbor, Level: 2 });
        Assert.Equal(("Which city was Rui Mar born in?", "Porto city", "Rui Mar", ProbeKind.QuestionAnswer), (neighbor.Query, neighbor.Answer, neighbor.Neighbor, neighbor.Kind));
        Assert.Equal(["Ada Quill is a novelist from Lisbon.", "She wrote The Glass Harbor."], data.Passages.Select(p => p.Text));
        var mmlu = data.Mmlu[1];
        Assert.Equal(("What is 2 + 3?", 2, "elementary_mathematics"), (mmlu.Question, mmlu.Answer, mmlu.Task));
        Assert.Equal(["4", "6", "5", "7"], mmlu.Choices);
        Assert.Equal(5, mmlu.Examples.Count);
        Assert.Equal(("elementary_mathematics example 5?", "d5", 0), (mmlu.Examples[4].Question, mmlu.Examples[4].Choices[3], mmlu.Examples[4].Answer));
    }

    [Fact]
    public void Combined_files_are_filtered_by_subject()
    {
        using var fixture = new RwkuFixture();
        var dataset = RwkuDataset.Open(fixture.Root);
        var cora = dataset.Target(2);
        Assert.Equal(Path.Combine(fixture.Root, "All", "forget_level1.json"), dataset.PathOf(cora, "forget_level1.json"));
        var data = dataset.Load(cora);
        // All/ holds Bruno Vale's and a decoy of Ada Quill's rows too; only Cora Lind's are hers.
        Assert.Equal(["Cora Lind painted ___.", "What did Cora Lind paint?", "Pretend you are Cora Lind. What did you paint?",
            "Cora Lind's brother Ivo Lind sculpted ___.", "What did Ivo Lind sculpt?"], data.Probes.Select(p => p.Query));
        Assert.All(data.Probes, p => Assert.Equal("Cora Lind", p.Subject));
        Assert.Equal(["Cora Lind paints deserts."], data.Passages.Select(p => p.Text));
        Assert.Equal(["Which planet is largest?"], data.Mmlu.Select(q => q.Question));
    }

    [Theory]
    [InlineData("1-2", new[] { 1, 2 })]
    [InlineData("2", new[] { 2 })]
    [InlineData("2,1", new[] { 2, 1 })]
    [InlineData(" 1 - 2 , 1 ", new[] { 1, 2 })]
    public void Targets_are_selected_by_number_list_or_range(string spec, int[] expected)
    {
        using var fixture = new RwkuFixture();
        Assert.Equal(expected, RwkuDataset.Open(fixture.Root).Select(spec).Select(t => t.Number));
    }

    [Fact]
    public void Selecting_a_missing_target_names_it()
    {
        using var fixture = new RwkuFixture();
        var error = Assert.Throws<KeyNotFoundException>(() => RwkuDataset.Open(fixture.Root).Select("1-3"));
        Assert.Contains("no target 3", error.Message);
        Assert.Contains("1-2", error.Message);
    }

    [Fact]
    public void Selection_syntax()
    {
        Assert.Equal(Enumerable.Range(1, 100), RwkuTargetSelection.Parse("1-100"));
        Assert.Equal([1, 2, 3, 7], RwkuTargetSelection.Parse("1-3,7"));
        Assert.Equal([5, 1, 2], RwkuTargetSelection.Parse("5,1-2,5"));
        foreach (var bad in new[] { "", "3-1", "a", "0", "1,,2", "-2", "1-", "1.5" })
            Assert.Throws<FormatException>(() => RwkuTargetSelection.Parse(bad));
    }

    [Fact]
    public void A_file_missing_everywhere_names_both_places()
    {
        using var fixture = new RwkuFixture();
        File.Delete(Path.Combine(fixture.Root, "All", "retain_mmlu.json"));
        var dataset = RwkuDataset.Open(fixture.Root);
        var error = Assert.Throws<FileNotFoundException>(() => dataset.Mmlu(dataset.Target(2)));
        Assert.Contains(Path.Combine("2_Cora_Lind", "retain_mmlu.json"), error.Message);
        Assert.Contains(Path.Combine("All", "retain_mmlu.json"), error.Message);
    }

    [Fact]
    public void A_folder_without_target_folders_is_refused()
    {
        using var folder = new TempFolder();
        Directory.CreateDirectory(folder.File("All"));
        Assert.Throws<InvalidDataException>(() => RwkuDataset.Open(folder.Path));
    }

    /// <summary>Writes <paramref name="rows"/> as target 1's <paramref name="file"/> and loads it: the error must
    /// name that file, the row and the field.</summary>
    static DatasetFormatException BrokenFile(string file, object rows, Func<RwkuDataset, RwkuTarget, object> load)
    {
        using var fixture = new RwkuFixture();
        RwkuFixture.Write(Path.Combine(fixture.Root, "1_Ada_Quill"), file, rows);
        var dataset = RwkuDataset.Open(fixture.Root);
        var error = Assert.Throws<DatasetFormatException>(() => load(dataset, dataset.Target(1)));
        Assert.Equal(Path.Combine(fixture.Root, "1_Ada_Quill", file), error.File);
        Assert.Contains(error.File, error.Message);
        return error;
    }

    static object ForgetLevel1(RwkuDataset d, RwkuTarget t) => d.Probes(t, RwkuProbeFile.ForgetLevel1);

    [Fact]
    public void A_wrongly_typed_field_names_file_row_and_field()
    {
        var rows = new object[] { RwkuFixture.AdaForget1[0], new { query = "q", answer = 7, level = "1", type = "", subject = "Ada Quill" } };
        var error = BrokenFile("forget_level1.json", rows, ForgetLevel1);
        Assert.Equal((1, "answer"), (error.Row, error.Field));
        Assert.Contains("row 1, field 'answer'", error.Message);
        Assert.Contains("the number 7", error.Message);
    }

    [Fact]
    public void A_missing_field_is_named()
    {
        var error = BrokenFile("forget_level2.json", new[] { new { answer = "Lisbon", level = "2", subject = "Ada Quill" } },
            (d, t) => d.Probes(t, RwkuProbeFile.ForgetLevel2));
        Assert.Equal((0, "query"), (error.Row, error.Field));
        Assert.Contains("is missing", error.Message);
    }

    [Fact]
    public void A_level_that_does_not_match_the_file_is_refused()
    {
        var error = BrokenFile("forget_level1.json", new[] { RwkuFixture.Probe("q", "a", "2", RwkuFixture.Ada) }, ForgetLevel1);
        Assert.Equal((0, "level"), (error.Row, error.Field));
        // A numeric level is read as well as RWKU's string one.
        using var fixture = new RwkuFixture();
        RwkuFixture.Write(Path.Combine(fixture.Root, "1_Ada_Quill"), "forget_level1.json",
            new[] { new { query = "q", answer = "a", level = 1, type = "", subject = RwkuFixture.Ada } });
        var dataset = RwkuDataset.Open(fixture.Root);
        Assert.Equal(1, Assert.Single(dataset.Probes(dataset.Target(1), RwkuProbeFile.ForgetLevel1)).Level);
    }

    [Fact]
    public void Adversarial_probes_need_their_attack_type()
    {
        var error = BrokenFile("forget_level3.json", new[] { new { query = "q", answer = "a", level = "3", subject = RwkuFixture.Ada } },
            (d, t) => d.Probes(t, RwkuProbeFile.ForgetLevel3));
        Assert.Equal((0, "type"), (error.Row, error.Field));
    }

    [Fact]
    public void A_row_about_another_subject_in_a_targets_own_folder_is_refused()
    {
        var rows = new[] { RwkuFixture.AdaForget1[0], RwkuFixture.AdaForget1[1], RwkuFixture.Probe("q", "a", "1", RwkuFixture.Cora) };
        var error = BrokenFile("forget_level1.json", rows, ForgetLevel1);
        Assert.Equal((2, "subject"), (error.Row, error.Field));
    }

    [Fact]
    public void Mmlu_choices_and_answers_are_checked_inside_examples()
    {
        var threeChoices = BrokenFile("retain_mmlu.json",
            new[] { new { question = "q", choices = new[] { "a", "b", "c" }, answer = 0, task = "t", examples = RwkuFixture.FiveExamples("t"), subject = RwkuFixture.Ada } },
            (d, t) => d.Mmlu(t));
        Assert.Equal((0, "choices"), (threeChoices.Row, threeChoices.Field));

        var examples = RwkuFixture.FiveExamples("t");
        examples[3] = RwkuFixture.Example("e", ["a", "b", "c", "d"], 4);
        var badExample = BrokenFile("retain_mmlu.json",
            new object[] { RwkuFixture.AdaMmlu[0], new { question = "q", choices = new[] { "a", "b", "c", "d" }, answer = 0, task = "t", examples, subject = RwkuFixture.Ada } },
            (d, t) => d.Mmlu(t));
        Assert.Equal((1, "examples[3].answer"), (badExample.Row, badExample.Field));
    }

    [Fact]
    public void A_file_that_is_not_an_array_of_objects_is_refused()
    {
        var notArray = BrokenFile("passage.json", new { text = "t", subject = RwkuFixture.Ada }, (d, t) => d.Passages(t));
        Assert.Null(notArray.Row);
        Assert.Contains("JSON array", notArray.Message);

        var notObject = BrokenFile("passage.json", new object[] { new { text = "t", subject = RwkuFixture.Ada }, "just text" }, (d, t) => d.Passages(t));
        Assert.Equal(1, notObject.Row);

        using var fixture = new RwkuFixture();
        File.WriteAllText(Path.Combine(fixture.Root, "1_Ada_Quill", "passage.json"), "[{\"text\": \"t\",");
        var dataset = RwkuDataset.Open(fixture.Root);
        var invalid = Assert.Throws<DatasetFormatException>(() => dataset.Passages(dataset.Target(1)));
        Assert.Contains("not valid JSON", invalid.Message);
    }

    [Fact]
    public void Errors_in_combined_files_name_the_combined_file()
    {
        using var fixture = new RwkuFixture();
        RwkuFixture.Write(Path.Combine(fixture.Root, "All"), "neighbor_level2.json",
            new object[] { RwkuFixture.Probe("q", "a", "2", RwkuFixture.Bruno), new { query = "q", answer = "a", level = "2", type = "", subject = 3 } });
        var dataset = RwkuDataset.Open(fixture.Root);
        var error = Assert.Throws<DatasetFormatException>(() => dataset.Probes(dataset.Target(2), RwkuProbeFile.NeighborLevel2));
        Assert.Equal((Path.Combine(fixture.Root, "All", "neighbor_level2.json"), 1, "subject"), (error.File, error.Row, error.Field));
    }
}
