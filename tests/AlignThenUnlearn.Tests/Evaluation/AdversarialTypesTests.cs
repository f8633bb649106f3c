using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.Evaluation.Attacks;
using AlignThenUnlearn.Tests.Support;

namespace AlignThenUnlearn.Tests.Evaluation;

/// <summary>AA per RWKU attack type: per target the mean over its probes of the type, then the mean over targets.</summary>
public sealed class AdversarialTypesTests : IDisposable
{
    readonly TempFolder _temp = new();
    public void Dispose() => _temp.Dispose();

    static readonly RwkuTarget A = new(1, "A", "1_A"), B = new(2, "B", "2_B");

    static ProbeOutcome Outcome(RwkuTarget target, ProbeSet set, int level, string type, double score) =>
        new(target, new RwkuProbe(set, level, $"q {target.Number} {type} {score}", "r", type, target.Name), "p", score);

    static RunEvaluation Run()
    {
        ProbeOutcome[] a =
        [
            Outcome(A, ProbeSet.Forget, 3, "role playing", 0.2), Outcome(A, ProbeSet.Forget, 3, "role playing", 0.6),
            Outcome(A, ProbeSet.Forget, 3, "prefix injection", 1.0),
            Outcome(A, ProbeSet.Forget, 1, "", 0.9),   // FB: not AA
        ];
        ProbeOutcome[] b =
        [
            Outcome(B, ProbeSet.Forget, 3, "role playing", 0.1),
            Outcome(B, ProbeSet.Forget, 3, "", 0.5),
            Outcome(B, ProbeSet.Neighbor, 2, "", 0.7),   // neighbour: not AA
        ];
        TargetEvaluation Target(RwkuTarget t, ProbeOutcome[] outcomes)
        {
            var (scores, counts) = RwkuScores.FromOutcomes(outcomes, []);
            return new TargetEvaluation(new TargetScores(t.Number, t.Name, scores, counts), outcomes, []);
        }
        var targets = new[] { Target(A, a), Target(B, b) };
        return new RunEvaluation(new RunSummary("run", [.. targets.Select(t => t.Scores)]), targets);
    }

    [Fact]
    public void Each_type_averages_per_target_then_over_the_targets_that_have_it()
    {
        var byType = AdversarialTypes.Of(Run());
        // role playing: A (0.2 + 0.6) / 2 = 0.4, B 0.1; mean (0.4 + 0.1) / 2 = 0.25 (not (0.2 + 0.6 + 0.1) / 3 = 0.3).
        // prefix injection: A only, 1.0. untyped: B's typeless level-3 probe, 0.5.
        Assert.Equal(["prefix injection", "role playing", AdversarialTypes.Untyped], byType.Keys);
        Assert.Equal(1.0, byType["prefix injection"], 12);
        Assert.Equal(0.25, byType["role playing"], 12);
        Assert.Equal(0.5, byType[AdversarialTypes.Untyped], 12);
    }

    [Fact]
    public void The_run_report_lists_AA_per_type_in_percent()
    {
        RwkuReports.WriteRun(_temp.File("run"), Run());
        var lines = File.ReadAllLines(Path.Combine(_temp.File("run"), RwkuReports.TableFile));
        int head = Array.IndexOf(lines, "| Attack type | AA ↓ |");
        // The figures of the test above in percent, types in ordinal order.
        Assert.Equal(["| prefix injection | 100.0 |", "| role playing | 25.0 |", "| untyped | 50.0 |"], lines.Skip(head + 2));
        Assert.Equal("", ResultsTable.AdversarialByType(new Dictionary<string, double>()));   // no AA probes, no section
    }

    [Fact]
    public void The_probes_file_gives_the_same_breakdown()
    {
        var run = Run();
        var path = _temp.File(RwkuReports.ProbesFile);
        using (var writer = new StreamWriter(path)) ProbesJsonLines.Write(writer, "run", run.Targets);
        Assert.Equal(AdversarialTypes.Of(run), AdversarialTypes.OfProbesFile(path));
    }
}
