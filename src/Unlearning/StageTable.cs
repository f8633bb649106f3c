using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace AlignThenUnlearn.Unlearning;

/// <summary>One row of the stage table: what a stage did and what the probes said after its unlearning steps (scores in
/// percent; null when the run scores no probes). Losses and the cosine are means over the phase's steps. <see cref="Utility"/>
/// holds the figures of the preset's stage_tasks (column name to value, as results.md shows them; null when none are asked);
/// <see cref="Probes"/> the averages' parts (<see cref="Trajectory"/>'s names: forget_fb, forget_qa, forget_aa, neighbour_fb, neighbour_qa).</summary>
public sealed record StageRecord(int Stage, double Tau, double UnlearnLoss, double RealignLoss, double MeanCosineToTarget,
    double? ForgetAverage, double? NeighbourAverage, string? Checkpoint = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyDictionary<string, double>? Utility = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyDictionary<string, double>? Probes = null);

/// <summary>Names the checkpoints at which the forget average first drops below each threshold (the paper's
/// Table 1 rows: 50, 35 and 20 percent, absolute).</summary>
public sealed class ThresholdCheckpoints(IEnumerable<double> thresholds)
{
    readonly double[] _thresholds = thresholds.OrderDescending().ToArray();
    readonly Dictionary<double, int> _crossed = [];

    /// <summary>Threshold to the stage at which it was first crossed.</summary>
    public IReadOnlyDictionary<double, int> Crossed => _crossed;

    public static string NameOf(double threshold) => $"forget-below-{threshold.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>Records a stage's forget average and returns the thresholds it crosses for the first time.</summary>
    public IReadOnlyList<double> Observe(int stage, double forgetAverage)
    {
        var crossed = _thresholds.Where(t => forgetAverage < t && !_crossed.ContainsKey(t)).ToList();
        foreach (var t in crossed) _crossed[t] = stage;
        return crossed;
    }
}

/// <summary>The stage table as JSON and Markdown.</summary>
public static class StageTable
{
    static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower, WriteIndented = true };

    public static string ToJson(IReadOnlyList<StageRecord> rows) => JsonSerializer.Serialize(rows, Json);

    public static IReadOnlyList<StageRecord> FromJson(string json) => JsonSerializer.Deserialize<List<StageRecord>>(json, Json) ?? [];

    /// <summary>The utility figures' names in the rows' order of first appearance (a column each).</summary>
    public static IReadOnlyList<string> UtilityColumns(IReadOnlyList<StageRecord> rows) =>
        [.. rows.SelectMany(r => r.Utility?.Keys ?? []).Distinct()];

    public static string ToMarkdown(IReadOnlyList<StageRecord> rows)
    {
        var utility = UtilityColumns(rows);
        var md = new StringBuilder();
        md.AppendLine("| stage | tau | unlearn loss | realign loss | mean cos to target | forget avg | neighbour avg | " + string.Concat(utility.Select(u => u + " | ")) + "checkpoint |");
        md.AppendLine("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | " + string.Concat(utility.Select(_ => "---: | ")) + "--- |");
        foreach (var r in rows)
            md.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"| {r.Stage} | {r.Tau:0.###} | {r.UnlearnLoss:0.0000} | {r.RealignLoss:0.0000} | {r.MeanCosineToTarget:0.000} | {r.ForgetAverage?.ToString("0.0", CultureInfo.InvariantCulture)} | {r.NeighbourAverage?.ToString("0.0", CultureInfo.InvariantCulture)} | ")
                + string.Concat(utility.Select(u => (r.Utility?.TryGetValue(u, out var v) == true ? v.ToString("0.0", CultureInfo.InvariantCulture) : "") + " | "))
                + $"{r.Checkpoint ?? ""} |");
        return md.ToString();
    }
}
