using System.Text.Json;

namespace AlignThenUnlearn.Evaluation;

/// <summary>Readers of RWKU's utility and membership-inference files.</summary>
public static partial class RwkuJson
{
    public static List<BbhQuestion> ReadBbh(string path) => ReadRows(path, (row, at) =>
    {
        var (answer, references) = at.Answers(row, "answer");
        return new BbhQuestion(at.String(row, "task"), at.String(row, "cot"), at.String(row, "question"), answer, references, at.String(row, "subject"));
    });

    public static List<TruthfulQaQuestion> ReadTruthfulQa(string path) => ReadRows(path, (row, at) =>
        new TruthfulQaQuestion(at.String(row, "question"), at.Targets(row, "mc1_targets"), at.Targets(row, "mc2_targets"), at.String(row, "subject")));

    public static List<TriviaQaQuestion> ReadTriviaQa(string path) => ReadRows(path, (row, at) =>
        new TriviaQaQuestion(at.String(row, "question"), at.Answers(row, "answers").References, at.String(row, "subject")));

    public static List<FluencyInstruction> ReadFluency(string path) => ReadRows(path, (row, at) =>
        new FluencyInstruction(at.String(row, "instruction"), at.String(row, "subject")));

    public static List<MiaText> ReadMia(string path, MiaSet set) => ReadRows(path, (row, at) =>
        new MiaText(set, at.String(row, "text"), at.String(row, "subject")));

    sealed partial class RowReader
    {
        /// <summary>An answer field: a non-empty list of strings, or one string (which RWKU's metrics iterate character by
        /// character, see <see cref="SquadScores.ReferencesOfString"/>); the text shown and the references scored.</summary>
        public (string Shown, IReadOnlyList<string> References) Answers(JsonElement row, string name)
        {
            if (!row.TryGetProperty(name, out var value)) throw Error(name, "is missing");
            if (value.ValueKind == JsonValueKind.String)
            {
                var text = value.GetString()!;
                if (text.Length == 0) throw Error(name, "is empty; expected the answer");
                return (text, SquadScores.ReferencesOfString(text));
            }
            if (value.ValueKind != JsonValueKind.Array) throw Error(name, $"is {Describe(value)}, expected a string or a list of strings");
            var answers = Strings(value, name);
            if (answers.Count == 0) throw Error(name, "is an empty list; expected at least one answer");
            return (string.Join(" | ", answers), answers);
        }

        /// <summary><c>{"choices": [...], "labels": [0/1 ...]}</c> of equal lengths with at least one true and one false
        /// answer (MC1 and MC2 compare the two groups).</summary>
        public TruthfulQaTargets Targets(JsonElement row, string name)
        {
            var targets = Property(row, name, JsonValueKind.Object);
            var choices = Strings(Property(targets, "choices", JsonValueKind.Array, name + "."), name + ".choices");
            var labelArray = Property(targets, "labels", JsonValueKind.Array, name + ".");
            var labels = new List<int>();
            foreach (var label in labelArray.EnumerateArray())
            {
                if (label.ValueKind != JsonValueKind.Number || !label.TryGetInt32(out var value) || value is not (0 or 1))
                    throw Error($"{name}.labels[{labels.Count}]", $"is {Describe(label)}, expected 0 or 1");
                labels.Add(value);
            }
            if (labels.Count != choices.Count) throw Error(name + ".labels", $"has {labels.Count} entries but choices has {choices.Count}");
            if (!labels.Contains(1) || !labels.Contains(0)) throw Error(name + ".labels", "needs at least one true (1) and one false (0) answer");
            return new TruthfulQaTargets(choices, labels);
        }

        List<string> Strings(JsonElement array, string name)
        {
            var strings = new List<string>();
            foreach (var item in array.EnumerateArray())
            {
                if (item.ValueKind != JsonValueKind.String) throw Error($"{name}[{strings.Count}]", $"is {Describe(item)}, expected a string");
                strings.Add(item.GetString()!);
            }
            return strings;
        }
    }
}
