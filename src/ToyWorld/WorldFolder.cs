using AlignThenUnlearn.Evaluation;
using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;
using AlignThenUnlearn.Models;

namespace AlignThenUnlearn.ToyWorld;

/// <summary>A toy world on disk, laid out like RWKU so that <see cref="RwkuDataset"/> reads it:
/// <list type="bullet">
/// <item><c>&lt;n&gt;_&lt;Name&gt;/</c> per person: <c>forget_level1..3.json</c>, <c>neighbor_level1..2.json</c>,
/// <c>passage.json</c>, <c>retain_mmlu.json</c>, RWKU's utility files that make sense in the toy world: <c>fluency.json</c>
/// (instructions to write about unrelated people), <c>forget_mia.json</c> (the target's biographies, which the model was
/// trained on) and <c>retain_mia.json</c> (biographies in the same style of people the model never saw), and the
/// baselines' training files: <c>positive.json</c> (the biographies the
/// toy model was trained on are its own), <c>pair.json</c> (invented against real biographies), <c>reject.json</c> (refusals);
/// <c>All/</c>: the same files for all people together;</item>
/// <item><c>corpus.json</c>: every passage (people, works, cities) in passage.json's schema, the pre-training text;</item>
/// <item><c>train_qa.json</c>: training question-answer pairs in the probes' schema (mixed levels);
/// <c>train_mmlu.json</c>: training multiple-choice questions in retain_mmlu.json's schema;</item>
/// <item><c>world.json</c>: the ground truth; <c>strangers.json</c>: the people of retain_mia.json, in no other file;
/// <c>tokenizer/</c>: the toy model's tokenizer.</item>
/// </list>
/// The same dataset always gives the same bytes.</summary>
public static class WorldFolder
{
    public const string WorldFile = "world.json";
    public const string StrangersFile = "strangers.json";
    public const string CorpusFile = "corpus.json";
    public const string TrainingQuestionsFile = "train_qa.json";
    public const string TrainingChoicesFile = "train_mmlu.json";
    public const string TokenizerFolderName = "tokenizer";

    static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        NewLine = "\n",
        // Apostrophes and the like stay readable; the files are data, never embedded in HTML.
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    /// <summary>The RWKU folder name of a person: <c>&lt;n&gt;_&lt;Name with underscores&gt;</c>.</summary>
    public static string TargetFolderName(Person person) =>
        $"{person.Number.ToString(CultureInfo.InvariantCulture)}_{person.Name.Replace(' ', '_')}";

    /// <summary>Writes the dataset and its tokenizer into <paramref name="directory"/> (created if needed).</summary>
    public static void Write(WorldDataset data, string directory)
    {
        Directory.CreateDirectory(directory);
        foreach (var target in data.Targets)
            WriteRwkuFiles(Path.Combine(directory, TargetFolderName(target.Person)), [target]);
        WriteRwkuFiles(Path.Combine(directory, RwkuDataset.CombinedFolder), data.Targets);
        WriteJson(Path.Combine(directory, CorpusFile), data.Corpus.Select(PassageRow.Of));
        WriteJson(Path.Combine(directory, TrainingQuestionsFile), data.TrainingQuestions.Select(ProbeRow.Of));
        WriteJson(Path.Combine(directory, TrainingChoicesFile), data.TrainingChoices.Select(ChoiceRow.Of));
        WriteJson(Path.Combine(directory, WorldFile), data.World);
        WriteJson(Path.Combine(directory, StrangersFile), data.Strangers);
        WorldTokenizer.Write(data, Path.Combine(directory, TokenizerFolderName));
    }

    static void WriteRwkuFiles(string folder, IReadOnlyList<TargetData> targets)
    {
        Directory.CreateDirectory(folder);
        var probes = targets.SelectMany(t => t.Probes).ToList();
        foreach (var file in RwkuProbeFile.All)
            WriteJson(Path.Combine(folder, file.FileName), probes.Where(p => p.Set == file.Set && p.Level == file.Level).Select(ProbeRow.Of));
        WriteJson(Path.Combine(folder, RwkuDataset.PassageFile), targets.SelectMany(t => t.Passages).Select(PassageRow.Of));
        WriteJson(Path.Combine(folder, RwkuDataset.MmluFile), targets.SelectMany(t => t.Mmlu).Select(ChoiceRow.Of));
        WriteJson(Path.Combine(folder, RwkuDataset.PositiveFile), targets.SelectMany(t => t.Passages).Select(PassageRow.Of));
        WriteJson(Path.Combine(folder, RwkuDataset.PairFile), targets.SelectMany(t => t.Pairs).Select(p => new PairRow(p.Prompt, [p.Chosen, p.Rejected], p.Subject)));
        WriteJson(Path.Combine(folder, RwkuDataset.RejectFile), targets.SelectMany(t => t.Refusals).Select(r => new RefusalRow(r.Instruction, r.Input, r.Output, r.Subject)));
        WriteJson(Path.Combine(folder, RwkuDataset.FluencyFile), targets.SelectMany(t => t.Fluency));
        foreach (var (set, file) in new[] { (MiaSet.Forget, RwkuDataset.ForgetMiaFile), (MiaSet.Retain, RwkuDataset.RetainMiaFile) })
            WriteJson(Path.Combine(folder, file), targets.SelectMany(t => t.Mia).Where(m => m.Set == set).Select(m => new PassageRow(m.Text, m.Subject)));
    }

    public static World ReadWorld(string directory) =>
        JsonSerializer.Deserialize<World>(File.ReadAllBytes(Path.Combine(directory, WorldFile)), Json)
        ?? throw new InvalidDataException($"'{Path.Combine(directory, WorldFile)}' holds no world.");

    public static IReadOnlyList<RwkuPassage> ReadCorpus(string directory) => RwkuJson.ReadPassages(Path.Combine(directory, CorpusFile));

    public static IReadOnlyList<MmluQuestion> ReadTrainingChoices(string directory) => RwkuJson.ReadMmlu(Path.Combine(directory, TrainingChoicesFile));

    public static IReadOnlyList<TrainingQuestion> ReadTrainingQuestions(string directory)
    {
        var path = Path.Combine(directory, TrainingQuestionsFile);
        var rows = JsonSerializer.Deserialize<List<ProbeRow>>(File.ReadAllBytes(path), Json)
            ?? throw new InvalidDataException($"'{path}' holds no rows.");
        return [.. rows.Select((row, i) => new TrainingQuestion(
            int.TryParse(row.Level, NumberStyles.None, CultureInfo.InvariantCulture, out var level) && level is >= 1 and <= 3
                ? level : throw new DatasetFormatException(path, i, "level", $"is \"{row.Level}\", expected \"1\", \"2\" or \"3\""),
            row.Query, row.Answer, row.Type, row.Subject))];
    }

    static void WriteJson<T>(string path, T value)
    {
        using var stream = File.Create(path);
        JsonSerializer.Serialize(stream, value, Json);
        stream.WriteByte((byte)'\n');
    }

    /// <summary>RWKU's probe row; levels are strings as RWKU writes them.</summary>
    sealed record ProbeRow(string Query, string Answer, string Level, string Type, string Subject, string? Neighbor = null)
    {
        public static ProbeRow Of(RwkuProbe p) => new(p.Query, p.Answer, LevelText(p.Level), p.Type, p.Subject, p.Neighbor);
        public static ProbeRow Of(TrainingQuestion q) => new(q.Query, q.Answer, LevelText(q.Level), q.Type, q.Subject);
        static string LevelText(int level) => level.ToString(CultureInfo.InvariantCulture);
    }

    sealed record PassageRow(string Text, string Subject)
    {
        public static PassageRow Of(RwkuPassage p) => new(p.Text, p.Subject);
    }

    /// <summary>LLaMA-Factory's ranking row: <c>response</c> is [chosen, rejected].</summary>
    sealed record PairRow(string Prompt, IReadOnlyList<string> Response, string Subject);

    /// <summary>LLaMA-Factory's Alpaca row.</summary>
    sealed record RefusalRow(string Instruction, string Input, string Output, string Subject);

    sealed record ExampleRow(string Question, IReadOnlyList<string> Choices, int Answer);

    sealed record ChoiceRow(string Question, IReadOnlyList<string> Choices, int Answer, string Task, IReadOnlyList<ExampleRow> Examples, string Subject)
    {
        public static ChoiceRow Of(MmluQuestion q) =>
            new(q.Question, q.Choices, q.Answer, q.Task, [.. q.Examples.Select(e => new ExampleRow(e.Question, e.Choices, e.Answer))], q.Subject);
    }
}
