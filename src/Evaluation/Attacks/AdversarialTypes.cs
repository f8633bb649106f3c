using System.Text.Json;

namespace AlignThenUnlearn.Evaluation.Attacks;

/// <summary>AA broken down by RWKU's adversarial attack type (the <c>type</c> of each forget_level3 probe: prefix
/// injection, role playing, in-context learning ...), averaged as AA is: per target the mean recall of its probes of
/// the type, then the mean over the targets that have probes of it.</summary>
public static class AdversarialTypes
{
    /// <summary>The name a level-3 probe without a type is counted under.</summary>
    public const string Untyped = "untyped";

    /// <summary>Per type (ordinal order), from (target, type, recall) of forget level-3 probes.</summary>
    public static IReadOnlyDictionary<string, double> Of(IEnumerable<(int Target, string Type, double Score)> probes) =>
        new SortedDictionary<string, double>(probes
            .GroupBy(p => p.Type.Length == 0 ? Untyped : p.Type, StringComparer.Ordinal)
            .ToDictionary(type => type.Key, type => type.GroupBy(p => p.Target).Select(target => target.Average(p => p.Score)).Average()),
            StringComparer.Ordinal);

    public static IReadOnlyDictionary<string, double> Of(RunEvaluation run) =>
        Of(run.Targets.SelectMany(t => t.Probes)
            .Where(o => o.Probe.Set == ProbeSet.Forget && o.Probe.Kind == ProbeKind.Adversarial)
            .Select(o => (o.Target.Number, o.Probe.Type, o.Score)));

    /// <summary>From a run's probes.jsonl (<see cref="ProbesJsonLines"/>): its forget AA lines.</summary>
    public static IReadOnlyDictionary<string, double> OfProbesFile(string path)
    {
        var probes = new List<(int, string, double)>();
        int number = 0;
        foreach (var line in File.ReadLines(path))
        {
            number++;
            if (line.Length == 0) continue;
            using var json = JsonDocument.Parse(line);
            var row = json.RootElement;
            if (!row.TryGetProperty("set", out var set) || set.GetString() != "forget" || !row.TryGetProperty("kind", out var kind) || kind.GetString() != ProbeKind.Adversarial.ShortName()) continue;
            if (!row.TryGetProperty("target", out var target) || !row.TryGetProperty("score", out var score))
                throw new InvalidDataException($"'{path}' line {number}: an AA probe without 'target' or 'score'");
            probes.Add((target.GetInt32(), row.TryGetProperty("type", out var type) ? type.GetString() ?? "" : "", score.GetDouble()));
        }
        return Of(probes);
    }
}
