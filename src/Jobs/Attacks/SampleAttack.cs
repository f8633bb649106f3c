using System.Text.Json.Nodes;
using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.Evaluation.Attacks;
using AlignThenUnlearn.Runtime;

namespace AlignThenUnlearn.Jobs.Attacks;

/// <summary>`sample`: RWKU's probes answered n times each by seeded temperature/top-p sampling (answer i with seed + i);
/// the first run holds the best-of-n scores (each probe's highest recall, its answer in probes.jsonl), the second
/// (mean/) the mean-of-n.</summary>
public sealed class SampleAttack : IAttack
{
    public const string Name = "sample";
    readonly Sampling _sampling;
    readonly int _samples;

    public SampleAttack(int samples, double temperature, double topP, long seed)
    {
        if (samples < 1) throw new ArgumentException($"--samples {samples}: expected 1 or more");
        NumericOptions.RequireSampling(temperature, topP);   // NaN too (it passed the old range test and crashed on attack.json)
        (_samples, _sampling) = (samples, new Sampling(temperature, topP, seed));
        Label = LabelOf(samples, temperature, topP);
    }

    public string Kind => Name;
    public string Label { get; }
    public IReadOnlyList<(string Suffix, string Folder)> Runs { get; } = [("", ""), ("_mean", "mean")];

    public JsonObject Settings() => new()
    {
        ["attack"] = Name, ["n"] = _samples, ["temperature"] = _sampling.Temperature, ["top_p"] = _sampling.TopP, ["seed"] = _sampling.Seed,
    };

    /// <summary>The column name: sample-n16-t1-p0.9.</summary>
    public static string LabelOf(int samples, double temperature, double topP) => FormattableString.Invariant($"sample-n{samples}-t{temperature:0.###}-p{topP:0.###}");

    public IReadOnlyList<RunEvaluation> Score(AttackContext c)
    {
        var samples = RwkuScoring.EvaluateSampled(c.Artifact, c.Device, c.Weights, c.Data, c.Options, c.Name, _sampling, _samples,
            done => c.Reporter.Info($"sample {done}/{_samples} scored"));
        var (best, mean) = SampledAnswers.Combine(samples, c.Name, c.Series);
        return [best, mean];
    }
}
