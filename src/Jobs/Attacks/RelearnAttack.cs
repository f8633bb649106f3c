using System.Globalization;
using System.Text.Json.Nodes;
using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.Evaluation.Attacks;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Models.Checkpoints;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Unlearning;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Jobs.Attacks;

/// <summary>`relearn`: for each K, the weights fine-tuned on K texts (<see cref="RelearnTexts"/>, <see cref="Relearning"/>)
/// with next-token loss and AdamW, then scored as the quantisation attack scores; attack.json holds every K's figures
/// (keys suffixed _k&lt;K&gt;) and the loss before and after fine-tuning.</summary>
public sealed class RelearnAttack : IAttack
{
    public const string Name = "relearn";

    /// <summary>The most optimizer steps a relearning attack takes: a relearning attack is a short fine-tune (RWKU-style
    /// attacks use tens of steps); a huge count is a typo that would hold the machine for days.</summary>
    public const long MaxSteps = 100_000;

    /// <summary>The longest text (in tokens, from its start) relearning trains on, or the model's maximum if smaller.</summary>
    public const int MaxTokens = 512;

    readonly string _data;
    readonly IReadOnlyList<int> _counts;
    readonly long _steps, _seed;
    readonly double _learningRate;

    public RelearnAttack(string data, IReadOnlyList<int> counts, long steps, double learningRate, long seed)
    {
        if (!RelearnTexts.Kinds.Contains(data)) throw new ArgumentException($"--data {data}: expected {string.Join(", ", RelearnTexts.Kinds)}");
        if (steps is < 1 or > MaxSteps) throw new ArgumentException($"--steps {steps}: expected 1 to {MaxSteps}");
        if (!(learningRate > 0) || !double.IsFinite(learningRate)) throw new ArgumentException($"--lr {learningRate}: expected a positive number");
        (_data, _counts, _steps, _learningRate, _seed) = (data, counts, steps, learningRate, seed);
        Label = LabelOf(data, steps, learningRate);
        Runs = [.. counts.Select(k => ($"_k{k}", FolderOf(k)))];
    }

    public string Kind => Name;
    public string Label { get; }
    public IReadOnlyList<(string Suffix, string Folder)> Runs { get; }

    public JsonObject Settings() => new()
    {
        ["attack"] = Name, ["data"] = _data, ["examples"] = new JsonArray([.. _counts.Select(k => JsonValue.Create(k))]),
        ["steps"] = _steps, ["lr"] = _learningRate, ["seed"] = _seed,
    };

    /// <summary>The column name: relearn-forget-s20-lr1E-05.</summary>
    public static string LabelOf(string data, long steps, double learningRate) => FormattableString.Invariant($"relearn-{data}-s{steps}-lr{learningRate:G3}");

    /// <summary>The folder below the attack's output where relearning on <paramref name="k"/> texts writes its reports.</summary>
    public static string FolderOf(int k) => $"k{k.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>The values of --examples: distinct counts of 0 or more, in the order given.</summary>
    public static IReadOnlyList<int> ExampleCounts(string examples)
    {
        var counts = examples.Split(',', StringSplitOptions.TrimEntries).Select(part =>
            int.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out var k) ? k
            : throw new ArgumentException($"--examples {examples}: '{part}' is no count of texts (expected e.g. 0,4,16)")).ToList();
        if (counts.Distinct().Count() != counts.Count) throw new ArgumentException($"--examples {examples}: a count is repeated");
        return counts;
    }

    /// <summary>The texts of every K, drawn before any training so that a K the data cannot give is refused first.</summary>
    public IReadOnlyDictionary<int, IReadOnlyList<string>> Texts(RwkuDataset dataset, IReadOnlyList<RwkuTarget> targets)
    {
        var pool = RelearnTexts.Pool(dataset, targets, _data, _seed);
        return _counts.ToDictionary(k => k, k => RelearnTexts.Take(pool, _data, k));
    }

    public IReadOnlyList<RunEvaluation> Score(AttackContext c)
    {
        var texts = Texts(c.Dataset, c.Targets);
        var scored = new List<RunEvaluation>();
        foreach (var k in _counts)
        {
            var relearned = c.StagedFile($"k{k}.safetensors");
            var losses = WriteRelearned(c.Artifact, c.Device, c.WeightsFile, texts[k], _steps, _learningRate, _seed, relearned);
            if (losses.Count > 0)
            {
                c.Record[$"loss_first_k{k}"] = losses[0];
                c.Record[$"loss_last_k{k}"] = losses[^1];
                c.Reporter.Done($"relearned on {k} {_data} texts, {_steps} steps: loss {losses[0]:0.###} -> {losses[^1]:0.###}");
            }
            scored.Add(c.Score(relearned, FolderOf(k), $"{c.Name} k{k}"));
            File.Delete(relearned);
        }
        return scored;
    }

    /// <summary><paramref name="source"/> fine-tuned on <paramref name="texts"/> (<see cref="Relearning"/>; each text's first
    /// <see cref="MaxTokens"/> tokens), written to <paramref name="output"/> in the artifact's dtype, as eval reads
    /// weights. Returns the loss of every step.</summary>
    public static IReadOnlyList<double> WriteRelearned(ArtifactModel artifact, ExecutionDevice device, string source, IReadOnlyList<string> texts,
        long steps, double learningRate, long seed, string output)
    {
        var tokenizer = artifact.Tokenizer ?? throw new InvalidOperationException($"'{artifact.Folder}' has no tokenizer files; relearning trains on text");
        int maxTokens = Math.Min(MaxTokens, artifact.Config.MaxPositionEmbeddings);
        var runType = artifact.Manifest.Dtype == "f16" ? DataType.Float16 : DataType.Float;
        var sequences = texts.Select(t => tokenizer.EncodeToIds(t).Take(maxTokens).ToArray()).ToList();
        var trained = output + ".f32.tmp";
        try
        {
            var losses = Relearning.Run(device, artifact.Config, source, sequences, steps, learningRate, seed, trained);
            using (var checkpoint = SafetensorsCheckpoint.Open(trained))
                ArtifactExporter.WriteWeights(checkpoint, DecoderBuilder.Parameters(artifact.Config, runType), output, runType);
            return losses;
        }
        finally { File.Delete(trained); }
    }
}
