using System.Text.Json;
using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.Tests.Support;

namespace AlignThenUnlearn.Tests.Evaluation;

/// <summary>The baselines' training files read as RWKU publishes them (rows shaped as RWKU's generation scripts write them,
/// extra fields such as <c>id</c> and <c>intro</c> included), and broken rows refused with file, row and field.</summary>
public sealed class RwkuTrainingDataTests : IDisposable
{
    const string Ada = "Ada Quill";
    readonly TempFolder _temp = new();
    public void Dispose() => _temp.Dispose();

    string Write(string file, params object[] rows)
    {
        var path = _temp.File(Path.Combine("1_Ada_Quill", file));
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, JsonSerializer.Serialize(rows));
        return path;
    }

    (RwkuDataset Dataset, RwkuTarget Target) Open()
    {
        var dataset = RwkuDataset.Open(_temp.Path);
        return (dataset, dataset.Target(1));
    }

    [Fact]
    public void Positive_pair_and_reject_files_are_read_with_their_published_fields()
    {
        Write("positive.json", new { id = "Ada Quill 0", text = "Ada Quill is a novelist.", subject = Ada, intro = "Ada Quill (born 1970)" });
        Write("positive_phi.json", new { id = "Ada Quill 0", text = "Ada Quill writes novels.", subject = Ada, intro = "" });
        Write("pair.json", new
        {
            id = "Ada Quill 0", prompt = "Ada Quill (born 1970) Please write a short biography of Ada Quill.",
            response = new[] { "Ada Quill is a chef from Oslo.", "Ada Quill is a novelist from Lisbon." }, subject = Ada, intro = "Ada Quill (born 1970)",
        });
        Write("reject.json",
            new { input = "", output = "I don't have that information.", subject = Ada, instruction = "Where was Ada Quill born?" },
            new { input = "Answer briefly.", output = "I'm not certain about that.", subject = Ada, instruction = "What did Ada Quill write?" });
        var (dataset, ada) = Open();

        Assert.Equal(["Ada Quill is a novelist."], dataset.ForgetTexts(ada, RwkuDataset.PositiveFile));
        Assert.Equal(["Ada Quill writes novels."], dataset.ForgetTexts(ada, "positive_phi.json"));
        var pair = Assert.Single(dataset.Pairs(ada));
        Assert.Equal(("Ada Quill is a chef from Oslo.", "Ada Quill is a novelist from Lisbon."), (pair.Chosen, pair.Rejected));   // chosen = invented
        var refusals = dataset.Refusals(ada);
        Assert.Equal(["Where was Ada Quill born?", "What did Ada Quill write?\nAnswer briefly."], refusals.Select(r => r.Question));
        Assert.Equal("I don't have that information.", refusals[0].Output);
    }

    [Fact]
    public void A_pair_with_one_response_is_refused_naming_file_row_and_field()
    {
        var path = Write("pair.json",
            new { prompt = "p", response = new[] { "a", "b" }, subject = Ada },
            new { prompt = "p", response = new[] { "only one" }, subject = Ada });
        var (dataset, ada) = Open();
        var e = Assert.Throws<DatasetFormatException>(() => dataset.Pairs(ada));
        Assert.Equal((path, 1, "response"), (e.File, e.Row, e.Field));
        Assert.Contains("expected two", e.Message);
    }

    [Fact]
    public void A_refusal_without_output_or_with_a_number_for_a_response_is_refused()
    {
        var reject = Write("reject.json", new { instruction = "q", input = "", subject = Ada });
        var pair = Write("pair.json", new { prompt = "p", response = new object[] { "a", 3 }, subject = Ada });
        var (dataset, ada) = Open();
        var missing = Assert.Throws<DatasetFormatException>(() => dataset.Refusals(ada));
        Assert.Equal((reject, 0, "output"), (missing.File, missing.Row, missing.Field));
        var number = Assert.Throws<DatasetFormatException>(() => dataset.Pairs(ada));
        Assert.Equal((pair, 0, "response[1]"), (number.File, number.Row, number.Field));
        Assert.Contains("expected a string", number.Message);
    }
}
