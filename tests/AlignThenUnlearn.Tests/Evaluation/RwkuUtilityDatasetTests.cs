using AlignThenUnlearn.Evaluation;

namespace AlignThenUnlearn.Tests.Evaluation;

/// <summary>Reading RWKU's utility and MIA files: rows by subject from the target's folder or All/, answer fields as
/// RWKU's metrics see them, and errors that name the file, row and field.</summary>
public sealed class RwkuUtilityDatasetTests : IDisposable
{
    readonly RwkuFixture _fixture = new();
    public RwkuUtilityDatasetTests() => RwkuUtilityFixture.AddTo(_fixture);
    public void Dispose() => _fixture.Dispose();

    [Fact]
    public void Own_folder_and_combined_rows()
    {
        var dataset = RwkuDataset.Open(_fixture.Root);
        var ada = dataset.LoadUtility(dataset.Target(1), RwkuTasks.All);
        Assert.Equal(2, ada.Bbh.Count);
        Assert.Equal(["T", "r", "u", "e"], ada.Bbh[0].References); // a string answer, iterated as Python does
        Assert.Equal("(A)", ada.Bbh[1].Answer);
        Assert.Equal(2, ada.TruthfulQa.Count);
        Assert.Equal(["Nothing in particular happens.", "Nothing bad."], ada.TruthfulQa[0].Mc2.True);
        Assert.Equal(["You will get arthritis.", "Your hands break."], ada.TruthfulQa[0].Mc2.False);
        Assert.Equal(["Nothing in particular happens."], ada.TruthfulQa[0].Mc1.True);
        Assert.Equal(["Jupiter", "planet Jupiter"], ada.TriviaQa[0].Answers);
        Assert.Equal(2, ada.Fluency.Count);
        Assert.Equal(2, ada.Mia.Count(t => t.Set == MiaSet.Forget));
        Assert.Equal(3, ada.Mia.Count(t => t.Set == MiaSet.Retain));

        var cora = dataset.LoadUtility(dataset.Target(2), RwkuTasks.All);
        Assert.Equal(["True"], Assert.Single(cora.Bbh).References); // a list answer stays a list
        Assert.Single(cora.TruthfulQa);
        Assert.Equal("Paris", Assert.Single(Assert.Single(cora.TriviaQa).Answers));
        Assert.Single(cora.Fluency);
        Assert.Equal(["Cora Lind paints deserts in oil.", "Bread is baked in ovens."], cora.Mia.Select(t => t.Text));

        // Tasks not asked for are not read.
        var onlyBbh = dataset.LoadUtility(dataset.Target(2), RwkuTasks.Bbh);
        Assert.Empty(onlyBbh.Mia);
        Assert.Empty(onlyBbh.TriviaQa);
    }

    [Fact]
    public void Bad_rows_name_file_row_and_field()
    {
        var ada = Path.Combine(_fixture.Root, "1_Ada_Quill");
        var dataset = RwkuDataset.Open(_fixture.Root);
        var target = dataset.Target(1);

        RwkuFixture.Write(ada, "truthful.json", new object[]
        {
            RwkuUtilityFixture.Truthful("Q?", ["yes"], ["no"], RwkuFixture.Ada),
            new { question = "Q2?", mc1_targets = new { choices = new[] { "a", "b" }, labels = new[] { 1, 2 } }, mc2_targets = new { choices = new[] { "a" }, labels = new[] { 1, 0 } }, subject = RwkuFixture.Ada },
        });
        var e = Assert.Throws<DatasetFormatException>(() => dataset.TruthfulQa(target));
        Assert.EndsWith("truthful.json", e.File);
        Assert.Equal(1, e.Row);
        Assert.Equal("mc1_targets.labels[1]", e.Field);

        RwkuFixture.Write(ada, "truthful.json", new[] { new { question = "Q?", mc1_targets = new { choices = new[] { "a", "b" }, labels = new[] { 1, 1 } }, mc2_targets = new { choices = new[] { "a", "b" }, labels = new[] { 1, 0 } }, subject = RwkuFixture.Ada } });
        e = Assert.Throws<DatasetFormatException>(() => dataset.TruthfulQa(target));
        Assert.Equal("mc1_targets.labels", e.Field);
        Assert.Contains("one false", e.Message);

        RwkuFixture.Write(ada, "triviaqa.json", new[] { new { question = "Q?", answers = Array.Empty<string>(), subject = RwkuFixture.Ada } });
        e = Assert.Throws<DatasetFormatException>(() => dataset.TriviaQa(target));
        Assert.Equal("answers", e.Field);

        RwkuFixture.Write(ada, "retain_bbh.json", new[] { new { task = "t", question = "Q?", answer = "x", subject = RwkuFixture.Ada } });
        e = Assert.Throws<DatasetFormatException>(() => dataset.Bbh(target));
        Assert.Equal("cot", e.Field);
        Assert.Contains("missing", e.Message);

        RwkuFixture.Write(ada, "fluency.json", new[] { RwkuUtilityFixture.Fluency("Write.", RwkuFixture.Cora) });
        e = Assert.Throws<DatasetFormatException>(() => dataset.Fluency(target));
        Assert.Equal("subject", e.Field); // a row of another target in Ada's own folder

        // Without the own file the rows come from All/ (none are Ada's); without either the file is missing.
        File.Delete(Path.Combine(ada, "retain_mia.json"));
        Assert.Empty(dataset.Mia(target, MiaSet.Retain));
        File.Delete(Path.Combine(_fixture.Root, "All", "retain_mia.json"));
        var missing = Assert.Throws<FileNotFoundException>(() => dataset.Mia(target, MiaSet.Retain));
        Assert.Contains("retain_mia.json", missing.Message);
    }

    [Theory]
    [InlineData("forget,neighbor,mmlu", RwkuTasks.Forget | RwkuTasks.Neighbor | RwkuTasks.Mmlu)]
    [InlineData(" BBH , mia ", RwkuTasks.Bbh | RwkuTasks.Mia)]
    [InlineData("all", RwkuTasks.All)]
    [InlineData("neighbour,truthfulqa,triviaqa,fluency", RwkuTasks.Neighbor | RwkuTasks.TruthfulQa | RwkuTasks.TriviaQa | RwkuTasks.Fluency)]
    public void Task_lists(string list, RwkuTasks expected) => Assert.Equal(expected, RwkuTaskNames.Parse(list));

    [Fact]
    public void Unknown_tasks_are_refused()
    {
        Assert.Contains("'gsm8k'", Assert.Throws<ArgumentException>(() => RwkuTaskNames.Parse("bbh,gsm8k")).Message);
        Assert.Throws<ArgumentException>(() => RwkuTaskNames.Parse(" , "));
        Assert.Equal("forget,bbh,mia", RwkuTaskNames.Format(RwkuTasks.Mia | RwkuTasks.Forget | RwkuTasks.Bbh));
    }
}
