using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.ToyWorld;

namespace AlignThenUnlearn.Tests.ToyWorld;

/// <summary>The toy run's acceptance figures, from hand-made scores.</summary>
public sealed class ToyReportTests
{
    static RwkuScores S(double fb, double qa, double aa, double nfb, double nqa, double mmlu) => new(fb, qa, aa, nfb, nqa, mmlu);

    static readonly RwkuTarget Ada = new(1, "Ada Quill", "1_Ada_Quill");

    [Fact]
    public void The_strongest_checkpoint_is_the_lowest_threshold_crossed_else_the_end()
    {
        var person = new UnlearnedPerson(Ada, S(.9, .9, .6, .8, .8, .5),
        [
            ("forget-below-50", S(.4, .4, .4, .8, .8, .5)),
            ("forget-below-35", S(.3, .3, .0, .7, .7, .5)),
            ("final", S(.0, .0, .0, .6, .6, .5)),   // forgets more, but past the thresholds the paper reads
        ]);
        Assert.Equal("forget-below-35", person.Strongest.Label);
        Assert.Equal("final", new UnlearnedPerson(Ada, S(.9, .9, .6, .8, .8, .5), [("final", S(.7, .7, .6, .8, .8, .5))]).Strongest.Label);
    }

    [Fact]
    public void Acceptance_compares_the_strongest_checkpoint_with_before()
    {
        // Forget all before (.9 + .9 + .6) / 3 = .8; after (.3 + .3 + .0) / 3 = .2: ratio .25.
        // Neighbour before (.8 + .8) / 2 = .8; after (.6 + .6) / 2 = .6: kept .75 (the limit, still accepted).
        // Utility .50 -> .46: 4 points.
        var person = new UnlearnedPerson(Ada, S(.9, .9, .6, .8, .8, .50), [("final", S(.3, .3, .0, .6, .6, .46))]);
        var check = ToyAcceptance.Of(person);
        Assert.Equal(0.25, check.ForgetRatio, 12);
        Assert.Equal(0.75, check.NeighbourKept, 12);
        Assert.Equal(4, check.UtilityDropPoints, 9);
        Assert.True(check.Passes);

        var worse = new UnlearnedPerson(Ada, S(.9, .9, .6, .8, .8, .50), [("final", S(.3, .3, .0, .6, .6, .44))]);   // 6 points down
        Assert.False(ToyAcceptance.Of(worse).Passes);
        var forgotTooLittle = new UnlearnedPerson(Ada, S(.9, .9, .6, .8, .8, .50), [("final", S(.5, .5, .3, .8, .8, .50))]);   // .433 / .8 > .5
        Assert.False(ToyAcceptance.Of(forgotTooLittle).Passes);

        // The average over people decides, with the model's knowledge before (QA >= .8, AA >= .6 over every person).
        var before = new RunSummary("before", [new TargetScores(1, "Ada Quill", S(.9, .9, .6, .8, .8, .5), new RwkuCounts(1, 1, 1, 1, 1, 1))]);
        Assert.True(ToyReport.Accepted(before, [person, person, worse]));   // mean utility drop (4 + 4 + 6) / 3 < 5
        Assert.False(ToyReport.Accepted(before, [worse]));
        var ignorant = new RunSummary("before", [new TargetScores(1, "Ada Quill", S(.9, .7, .6, .8, .8, .5), new RwkuCounts(1, 1, 1, 1, 1, 1))]);
        Assert.False(ToyReport.Accepted(ignorant, [person]));
        Assert.Contains("| Ada Quill | final | 80.0 | 20.0 | 0.25 | 80.0 | 60.0 | 0.75 | 50.0 | 46.0 | 4.0 | yes |", ToyReport.Markdown(1, before, [person]));
    }
}
