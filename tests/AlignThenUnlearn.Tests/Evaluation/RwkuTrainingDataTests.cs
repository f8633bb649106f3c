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

    [Fact]
    public void Phi3_presets_train_dpo_and_rt_on_rwkus_phi3_files()
    {
        Write("pair.json", new { prompt = "about Ada", response = new[] { "llama chosen", "llama rejected" }, subject = Ada });
        Write("pair_phi.json", new { prompt = "about Ada", response = new[] { "phi chosen", "phi rejected" }, subject = Ada });
        Write("reject.json", new { instruction = "Who is Ada?", input = "", output = "llama refusal", subject = Ada });
        Write("reject_phi.json", new { instruction = "Who is Ada?", input = "", output = "phi refusal", subject = Ada });
        var (dataset, ada) = Open();
        using var model = new TinyChatModel();
        string Answers(string name)
        {
            var preset = AlignThenUnlearn.Unlearning.MethodPreset.Load(name);
            return string.Join(" | ", preset.TrainedMethod.Examples(preset, new RwkuTargetTexts(dataset, ada),
                new AlignThenUnlearn.Unlearning.ExampleTokenizer(model.Tokenizer, preset.Cutoff, ada.Number))
            .SelectMany(e => e).Select(s => model.Tokenizer.Decode(s.Tokens.Skip(s.FirstLabel), skipSpecialTokens: true)));
        }
        Assert.Equal("phi chosen | phi rejected", Answers("rwku-phi3-dpo"));
        Assert.Equal("llama chosen | llama rejected", Answers("rwku-llama3-dpo"));
        Assert.Equal("phi refusal", Answers("rwku-phi3-rt-lora"));
        Assert.Equal("llama refusal", Answers("rwku-llama3-rt"));
    }

    [Fact]
    public void Train_layers_is_pythons_range_with_the_end_excluded()
    {
        // RWKU's workflows: for i in range(int(a), int(b)): layers.{i}. trainable, so "0-4" trains layers 0..3.
        var preset = AlignThenUnlearn.Unlearning.MethodPreset.Load("rwku-llama3-ga") with { TrainLayers = [0, 4] };
        Assert.Equal(new AlignThenUnlearn.Models.LayerRange(0, 3), preset.Layers);
        Assert.Equal(["model.layers.3.mlp.up_proj.weight"], preset.Layers!.Select(["model.layers.3.mlp.up_proj.weight", "model.layers.4.mlp.up_proj.weight"]));
        var file = _temp.File("one-layer.json");
        File.WriteAllText(file, """{ "method": "ga", "learning_rate": 1e-5, "train_layers": [2, 2] }""");
        Assert.Contains("range(a, b)", Assert.Throws<InvalidDataException>(() => AlignThenUnlearn.Unlearning.MethodPreset.Load(file)).Message);   // range(2, 2) is empty
    }
}
