using System.Text.Json;

namespace AlignThenUnlearn.Evaluation;

/// <summary>Reads RWKU's JSON files (each a top-level array of row objects) into records, checking every field
/// the evaluation uses; a mismatch fails with the file, the row index and the field.</summary>
public static partial class RwkuJson
{
    public static List<RwkuProbe> ReadProbes(string path, RwkuProbeFile file) => ReadRows(path, (row, at) =>
    {
        var level = at.Level(row, "level");
        if (level != file.Level)
            throw at.Error("level", $"is {level} but {file.FileName} holds level-{file.Level} probes");
        var type = file.Kind == ProbeKind.Adversarial ? at.String(row, "type") : at.OptionalString(row, "type") ?? "";
        string? neighbor = file.Set == ProbeSet.Neighbor ? at.OptionalString(row, "neighbor") : null;
        var answer = at.String(row, "answer");
        // Checked here, before any answer is generated: recall against a reference without words is undefined.
        if (string.IsNullOrWhiteSpace(answer) || RougeL.Sentences(answer).Count == 0)
            throw at.Error("answer", $"is \"{answer}\", which has no words to score an answer against; a probe needs a reference answer");
        return new RwkuProbe(file.Set, level, at.String(row, "query"), answer, type, at.String(row, "subject"), neighbor);
    });

    public static List<RwkuPassage> ReadPassages(string path) =>
        ReadRows(path, (row, at) => new RwkuPassage(at.String(row, "text"), at.String(row, "subject")));

    /// <summary><c>pair.json</c> as LLaMA-Factory's ranking data reads it: <c>response</c> lists the chosen answer, then the
    /// rejected one (further entries are ignored, as there).</summary>
    public static List<RwkuPair> ReadPairs(string path) => ReadRows(path, (row, at) =>
    {
        var responses = at.Property(row, "response", JsonValueKind.Array);
        if (responses.GetArrayLength() < 2)
            throw at.Error("response", $"has {responses.GetArrayLength()} entries, expected two: the chosen answer, then the rejected one");
        string Response(int i) => responses[i].ValueKind == JsonValueKind.String ? responses[i].GetString()!
            : throw at.Error($"response[{i}]", $"is {Describe(responses[i])}, expected a string");
        return new RwkuPair(at.String(row, "prompt"), Response(0), Response(1), at.String(row, "subject"));
    });

    /// <summary><c>reject.json</c> in Alpaca form: <c>instruction</c> (the question), <c>input</c> (empty in RWKU; optional),
    /// <c>output</c> (the refusal).</summary>
    public static List<RwkuRefusal> ReadRefusals(string path) => ReadRows(path, (row, at) =>
        new RwkuRefusal(at.String(row, "instruction"), at.OptionalString(row, "input") ?? "", at.String(row, "output"), at.String(row, "subject")));

    /// <summary>The <c>text</c> of every row (RWKU's <c>positive*.json</c>: a model's own texts about one target).</summary>
    public static List<string> ReadTexts(string path) => ReadRows(path, (row, at) => at.String(row, "text"));

    public static List<MmluQuestion> ReadMmlu(string path) => ReadRows(path, (row, at) =>
    {
        var (choices, answer) = at.Choices(row, "");
        var examplesElement = at.Property(row, "examples", JsonValueKind.Array);
        var examples = new List<MmluExample>();
        int index = 0;
        foreach (var example in examplesElement.EnumerateArray())
        {
            var prefix = $"examples[{index}].";
            if (example.ValueKind != JsonValueKind.Object) throw at.Error($"examples[{index}]", $"is {Describe(example)}, expected an object");
            var (exampleChoices, exampleAnswer) = at.Choices(example, prefix);
            examples.Add(new MmluExample(at.String(example, "question", prefix), exampleChoices, exampleAnswer));
            index++;
        }
        return new MmluQuestion(at.String(row, "question"), choices, answer, at.String(row, "task"), examples, at.String(row, "subject"));
    });

    static List<T> ReadRows<T>(string path, Func<JsonElement, RowReader, T> read)
    {
        JsonDocument document;
        try
        {
            var bytes = File.ReadAllBytes(path);
            if (FirstInvalidUtf8(bytes) is int offset)
                throw new DatasetFormatException(path, null, null, $"is not UTF-8 text: the byte 0x{bytes[offset]:X2} at byte offset {offset} begins no valid UTF-8 character");
            document = JsonDocument.Parse(bytes);
        }
        catch (JsonException e)
        {
            throw new DatasetFormatException(path, null, null, $"is not valid JSON ({e.Message})", e);
        }
        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Array)
                throw new DatasetFormatException(path, null, null, $"holds {Describe(document.RootElement)}; expected a JSON array of rows");
            var rows = new List<T>();
            int index = 0;
            foreach (var row in document.RootElement.EnumerateArray())
            {
                var at = new RowReader(path, index);
                if (row.ValueKind != JsonValueKind.Object) throw new DatasetFormatException(path, index, null, $"is {Describe(row)}; expected an object");
                rows.Add(read(row, at));
                index++;
            }
            return rows;
        }
    }

    /// <summary>The offset of the first byte that is not part of a valid UTF-8 sequence, or null.</summary>
    static int? FirstInvalidUtf8(ReadOnlySpan<byte> bytes)
    {
        var chars = new char[4096];
        int done = 0;
        while (done < bytes.Length)
        {
            var status = System.Text.Unicode.Utf8.ToUtf16(bytes[done..], chars, out int read, out _, replaceInvalidSequences: false);
            done += read;
            if (status is System.Buffers.OperationStatus.InvalidData or System.Buffers.OperationStatus.NeedMoreData) return done;
        }
        return null;
    }

    static string Describe(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => $"the number {value.GetRawText()}",
        JsonValueKind.True or JsonValueKind.False => $"the boolean {value.GetRawText()}",
        JsonValueKind.Null => "null",
        _ => value.ValueKind.ToString(),
    };

    /// <summary>Field access for one row, failing with the file, row and field.</summary>
    sealed partial class RowReader(string path, int row)
    {
        public DatasetFormatException Error(string field, string problem) => new(path, row, field, problem);

        public JsonElement Property(JsonElement obj, string name, JsonValueKind kind, string prefix = "")
        {
            if (!obj.TryGetProperty(name, out var value)) throw Error(prefix + name, "is missing");
            if (value.ValueKind != kind) throw Error(prefix + name, $"is {Describe(value)}, expected {Expected(kind)}");
            return value;
        }

        public string String(JsonElement obj, string name, string prefix = "") => Property(obj, name, JsonValueKind.String, prefix).GetString()!;

        public string? OptionalString(JsonElement obj, string name)
        {
            if (!obj.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null) return null;
            if (value.ValueKind != JsonValueKind.String) throw Error(name, $"is {Describe(value)}, expected a string");
            return value.GetString();
        }

        /// <summary>RWKU writes levels as strings ("1"); a plain number is accepted too.</summary>
        public int Level(JsonElement obj, string name)
        {
            if (!obj.TryGetProperty(name, out var value)) throw Error(name, "is missing");
            if (value.ValueKind == JsonValueKind.String && int.TryParse(value.GetString(), System.Globalization.NumberStyles.None, null, out var fromText)) return fromText;
            if (value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out var number)) return number;
            throw Error(name, $"is {Describe(value)}{(value.ValueKind == JsonValueKind.String ? $" \"{value.GetString()}\"" : "")}, expected a level such as \"1\"");
        }

        /// <summary>The four <c>choices</c> and the <c>answer</c> index into them.</summary>
        public (IReadOnlyList<string> Choices, int Answer) Choices(JsonElement obj, string prefix)
        {
            var array = Property(obj, "choices", JsonValueKind.Array, prefix);
            if (array.GetArrayLength() != 4) throw Error(prefix + "choices", $"has {array.GetArrayLength()} entries, expected 4 (A-D)");
            var choices = new List<string>();
            int index = 0;
            foreach (var choice in array.EnumerateArray())
            {
                if (choice.ValueKind != JsonValueKind.String) throw Error($"{prefix}choices[{index}]", $"is {Describe(choice)}, expected a string");
                choices.Add(choice.GetString()!);
                index++;
            }
            var answer = Property(obj, "answer", JsonValueKind.Number, prefix);
            if (!answer.TryGetInt32(out var answerIndex) || answerIndex is < 0 or > 3)
                throw Error(prefix + "answer", $"is {answer.GetRawText()}, expected the index 0-3 of the right choice");
            return (choices, answerIndex);
        }

        static string Expected(JsonValueKind kind) => kind switch
        {
            JsonValueKind.String => "a string",
            JsonValueKind.Array => "an array",
            JsonValueKind.Object => "an object",
            JsonValueKind.Number => "a number",
            _ => kind.ToString(),
        };
    }
}
