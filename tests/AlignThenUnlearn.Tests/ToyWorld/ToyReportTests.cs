using AlignThenUnlearn.Cli;
using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.ToyWorld;
using AlignThenUnlearn.Jobs.Toy;

namespace AlignThenUnlearn.Tests.ToyWorld;

/// <summary>The toy run's report: retain set, means over people, the comparison line and the acceptance figures, from
/// hand-made scores.</summary>
public sealed class ToyReportTests
{
    static RwkuScores S(double fb, double qa, double aa, double nfb, double nqa, double mmlu) => new(fb, qa, aa, nfb, nqa, mmlu);
    static ToyScores T(double fb, double qa, double aa, double nfb, double nqa, double mmlu, double retain) => new(S(fb, qa, aa, nfb, nqa, mmlu), retain);

    static readonly RwkuTarget Ada = new(1, "Ada Quill", "1_Ada_Quill");
    static readonly RwkuTarget Bo = new(2, "Bo Lark", "2_Bo_Lark");

    static ToyCheckpoint C(string label, ToyScores scores) => new(label, scores, $"{label}/model.safetensors");

    // ---- the retain set ----

    static RwkuProbe Probe(ProbeSet set, int level, string subject, string? neighbor = null) => new(set, level, $"q{level}", "a", "", subject, neighbor);

    static RwkuTargetData Person(int number, string name, params RwkuProbe[] extra) =>
        new(new RwkuTarget(number, name, $"{number}_{name}"),
            [Probe(ProbeSet.Forget, 1, name), Probe(ProbeSet.Forget, 2, name), Probe(ProbeSet.Forget, 3, name), .. extra], [], []);

    [Fact]
    public void The_retain_people_are_everyone_but_the_target_and_the_neighbours_its_neighbour_probes_name()
    {
        // Ada's neighbour probes name Bo (a person) and a work; Cy and Di are unrelated. Bo's own probes name Ada, which
        // does not make Cy or Di neighbours of Ada.
        var ada = Person(1, "Ada", Probe(ProbeSet.Neighbor, 1, "Ada", "Bo"), Probe(ProbeSet.Neighbor, 2, "Ada", "The Red Book"));
        var bo = Person(2, "Bo", Probe(ProbeSet.Neighbor, 1, "Bo", "Ada"));
        var cy = Person(3, "Cy", Probe(ProbeSet.Neighbor, 1, "Cy", "Di"));
        var di = Person(4, "Di");
        var everyone = new[] { ada, bo, cy, di };

        Assert.Equal(["Cy", "Di"], ToyFigures.RetainPeople(ada, everyone).Select(p => p.Target.Name));
        Assert.Equal(["Ada", "Bo"], ToyFigures.RetainPeople(cy, everyone).Select(p => p.Target.Name));   // not Cy, not its neighbour Di
    }

    [Fact]
    public void A_retain_person_is_scored_on_its_FB_and_QA_probes_only()
    {
        var cy = Person(3, "Cy", Probe(ProbeSet.Neighbor, 1, "Cy", "Di")) with { Mmlu = [new MmluQuestion("q", ["a", "b"], 0, "t", [], "Cy")] };
        var retain = ToyFigures.RetainProbes(cy);
        Assert.Equal([(ProbeSet.Forget, 1), (ProbeSet.Forget, 2)], retain.Probes.Select(p => (p.Set, p.Level)));
        Assert.Empty(retain.Mmlu);
    }

    [Fact]
    public void Retain_QA_is_the_mean_over_every_retain_probe()
    {
        // Cy: FB .5 over 2 probes, QA 1.0 over 2; Di: FB 0 over 1, QA .5 over 3.
        // (.5*2 + 1*2 + 0*1 + .5*3) / (2 + 2 + 1 + 3) = 4.5 / 8 = .5625 (not the mean of the four means, .5).
        var people = new[]
        {
            new TargetScores(3, "Cy", S(.5, 1, 0, 0, 0, 0), new RwkuCounts(2, 2, 0, 0, 0, 0)),
            new TargetScores(4, "Di", S(0, .5, 0, 0, 0, 0), new RwkuCounts(1, 3, 0, 0, 0, 0)),
        };
        Assert.Equal(0.5625, ToyFigures.RetainQA(people)!.Value, 12);
        Assert.Null(ToyFigures.RetainQA([]));
    }

    [Fact]
    public void The_MIA_AUC_counts_the_pairs_in_which_the_forget_text_has_the_lower_loss()
    {
        // Forget losses 1, 2 against strangers' 2, 3: (1<2) 1, (1<3) 1, (2=2) .5, (2<3) 1 -> 3.5 of 4 pairs.
        Assert.Equal(0.875, ToyFigures.MiaAuc([1, 2], [2, 3])!.Value, 12);
        Assert.Equal(0, ToyFigures.MiaAuc([5], [2, 3])!.Value, 12);   // every forget text less familiar than every stranger's
        Assert.Null(ToyFigures.MiaAuc([], [2]));
        // A NaN loss would lose every comparison (AUC 0, "forgotten"): refused.
        Assert.Throws<InvalidDataException>(() => ToyFigures.MiaAuc([double.NaN], [2, 3]));
        Assert.Throws<InvalidDataException>(() => ToyFigures.MiaAuc([1], [double.PositiveInfinity]));
    }

    // ---- checkpoints, means, acceptance ----

    [Fact]
    public void The_strongest_checkpoint_is_the_lowest_threshold_crossed_else_the_end()
    {
        var before = T(.9, .9, .6, .8, .8, .5, .9);
        var run = new ToyMethodRun("ATU", Ada, before,
        [
            C("forget-below-50", T(.4, .4, .4, .8, .8, .5, .9)),
            C("forget-below-35", T(.3, .3, .0, .7, .7, .5, .9)),
            C("final", T(.0, .0, .0, .6, .6, .5, .9)),   // forgets more, but past the thresholds the paper reads
        ]);
        Assert.Equal("forget-below-35", run.Strongest.Label);
        Assert.Equal("final", new ToyMethodRun("ATU", Ada, before, [C("final", T(.7, .7, .6, .8, .8, .5, .9))]).Strongest.Label);
    }

    [Fact]
    public void Table_1_averages_each_method_and_checkpoint_over_the_people_that_reached_it()
    {
        var runs = new[]
        {
            new ToyMethodRun("GA (F)", Ada, T(.9, .9, .6, .8, .8, .5, .9), [C("final", T(.0, .0, .0, .4, .4, .5, .8)), C("forget-below-50", T(.4, .4, .4, .8, .8, .5, .9))]),
            new ToyMethodRun("GA (F)", Bo, T(.7, .7, .4, .6, .6, .5, .7), [C("final", T(.2, .2, .2, .6, .6, .3, .5))]),
            new ToyMethodRun("ICU", Ada, T(.9, .9, .6, .8, .8, .5, .9), [C("final", T(.8, .8, .6, .5, .5, .5, .9))]),
        };
        var rows = ToyReport.MeanRows(runs);
        // Before: one row per person (Ada's once though two methods ran on her): FB (.9 + .7) / 2 = .8, retain (.9 + .7) / 2 = .8.
        // GA: forget-below-50 first (thresholds from the highest down, then the end) with Ada alone; final over both:
        // FB (0 + .2) / 2 = .1, MC (.5 + .3) / 2 = .4, retain (.8 + .5) / 2 = .65; strongest: Ada's forget-below-50 and
        // Bo's final: FB (.4 + .2) / 2 = .3, retain (.9 + .5) / 2 = .7.
        Assert.Equal(["Before (n=2)", "GA (F) forget-below-50 (n=1)", "GA (F) final (n=2)", "GA (F) strongest (n=2)", "ICU final (n=1)", "ICU strongest (n=1)"],
            rows.Select(r => r.Label));
        Assert.Equal(0.8, rows[0].Scores.Rwku.ForgetFB!.Value, 12);
        Assert.Equal(0.8, rows[0].Scores.RetainQA!.Value, 12);
        Assert.Equal(0.4, rows[1].Scores.Rwku.ForgetFB!.Value, 12);
        Assert.Equal(0.1, rows[2].Scores.Rwku.ForgetFB!.Value, 12);
        Assert.Equal(0.4, rows[2].Scores.Rwku.Mmlu!.Value, 12);
        Assert.Equal(0.65, rows[2].Scores.RetainQA!.Value, 12);
        Assert.Equal(0.3, rows[3].Scores.Rwku.ForgetFB!.Value, 12);
        Assert.Equal(0.7, rows[3].Scores.RetainQA!.Value, 12);
        Assert.Equal(["GA (F)", "GA (F)", "GA (F)", "ICU", "ICU"], rows.Skip(1).Select(r => r.Method));

        // The plot: the model before, then one series per method, its checkpoints without "strongest".
        var plot = ToyReport.PlotRuns(runs);
        Assert.Equal([("Before", "Before"), ("<50", "GA (F)"), ("final", "GA (F)"), ("final", "ICU")], plot.Select(r => (r.Name, r.Series)));
        Assert.Equal(0.1, plot[2].Mean.ForgetFB!.Value, 12);
        // Two thresholds crossed at one evaluation (the same scores) are one point; the end, with other scores, is another.
        var once = T(.2, .2, .2, .8, .8, .5, .9);
        var atu = new ToyMethodRun("ATU", Ada, T(.9, .9, .6, .8, .8, .5, .9), [C("forget-below-50", once), C("forget-below-35", once), C("final", T(.3, .3, .3, .8, .8, .5, .9))]);
        Assert.Equal(["Before", "<50, <35", "final"], ToyReport.PlotRuns([atu]).Select(r => r.Name));

        var markdown = ToyReport.Markdown(1, new RunSummary("before", [new TargetScores(1, "Ada Quill", S(.9, .9, .6, .8, .8, .5), new RwkuCounts(1, 1, 1, 1, 1, 1))]), runs);
        // GA final: forget All (.1 + .1 + .1) / 3 = .1; neighbour All (.5 + .5) / 2 = .5; MC .4; retain .65.
        Assert.Contains("| GA (F) final (n=2) | 10.0 | 10.0 | 10.0 | 10.0 | 50.0 | 50.0 | 50.0 | 40.0 | 65.0 | – | – |", markdown);
        Assert.Contains("### 2 Bo Lark", markdown);
        // A row must fill every extra column.
        Assert.Throws<ArgumentException>(() => ResultsTable.Markdown("Method", ToyReport.ExtraColumns, [("short", S(0, 0, 0, 0, 0, 0), [0.5])]));
    }

    [Fact]
    public void Acceptance_compares_the_strongest_checkpoint_with_before()
    {
        // Forget all before (.9 + .9 + .6) / 3 = .8; after (.3 + .3 + .0) / 3 = .2: ratio .25.
        // Neighbour before (.8 + .8) / 2 = .8; after (.6 + .6) / 2 = .6: kept .75 (the limit, still accepted).
        // Retain .80 -> .72: kept .9 (the limit). Utility .50 -> .46: 4 points.
        var before = T(.9, .9, .6, .8, .8, .50, .80);
        var run = new ToyMethodRun("ATU", Ada, before, [C("final", T(.3, .3, .0, .6, .6, .46, .72))]);
        var check = ToyAcceptance.Of(run);
        Assert.Equal(0.25, check.ForgetRatio, 12);
        Assert.Equal(0.75, check.NeighbourKept, 12);
        Assert.Equal(0.9, check.RetainKept, 12);
        Assert.Equal(4, check.UtilityDropPoints, 9);
        Assert.True(check.Passes);

        Assert.False(ToyAcceptance.Of(run with { Checkpoints = [C("final", T(.3, .3, .0, .6, .6, .44, .72))] }).Passes);   // 6 points down
        Assert.False(ToyAcceptance.Of(run with { Checkpoints = [C("final", T(.5, .5, .3, .8, .8, .50, .80))] }).Passes);   // .433 / .8 > .5
        Assert.False(ToyAcceptance.Of(run with { Checkpoints = [C("final", T(.3, .3, .0, .6, .6, .50, .71))] }).Passes);   // retain .71 / .8 < .9

        // The mean over people: (4 + 4 + 6) / 3 points < 5 passes although one person alone fails.
        var worse = run with { Target = Bo, Checkpoints = [C("final", T(.3, .3, .0, .6, .6, .44, .72))] };
        Assert.True(ToyAcceptance.Average("ATU", [check, check, ToyAcceptance.Of(worse)]).Passes);
    }

    [Fact]
    public void A_figure_that_was_not_measured_fails_the_acceptance_instead_of_reading_as_zero()
    {
        // Before: forget (.9 + .9 + .6) / 3 = .8. A checkpoint whose forget probes were not scored (null) would have
        // forget 0 / .8 = 0 if null read as zero: "perfect forgetting". It must fail, alone and in the mean over people.
        var before = T(.9, .9, .6, .8, .8, .50, .80);
        var unscored = new ToyScores(new RwkuScores(null, null, null, .8, .8, .5), .8);
        var run = new ToyMethodRun("ATU", Ada, before, [C("final", unscored)]);
        var check = ToyAcceptance.Of(run);
        Assert.True(double.IsNaN(check.ForgetAfter));
        Assert.False(check.Passes);
        var good = ToyAcceptance.Of(run with { Checkpoints = [C("final", T(.3, .3, .0, .8, .8, .5, .8))] });
        Assert.True(good.Passes);
        Assert.False(ToyAcceptance.Average("ATU", [good, check]).Passes);
        // No multiple-choice figure after: not "0 points down".
        Assert.False(ToyAcceptance.Of(run with { Checkpoints = [C("final", new ToyScores(new RwkuScores(.3, .3, .0, .8, .8, null), .8))] }).Passes);
    }

    static RunSummary Before(double qa, double aa, double mc) =>
        new("before", [new TargetScores(1, "Ada Quill", S(.9, qa, aa, .8, .8, mc), new RwkuCounts(1, 1, 1, 1, 1, 1))]);

    [Fact]
    public void Check_requires_the_model_before_and_ATU_only()
    {
        var before = T(.9, .9, .6, .8, .8, .6, .9);
        var passing = new ToyMethodRun("ATU", Ada, before, [C("final", T(.3, .3, .0, .6, .6, .6, .9))]);
        var failing = new ToyMethodRun("GA (F)", Ada, before, [C("final", T(.9, .9, .6, .2, .2, .1, .1))]);
        var knows = Before(qa: .9, aa: .6, mc: .6);
        Assert.True(ToyReport.Accepted(knows, [passing, failing]));   // a baseline failing does not fail the check
        Assert.False(ToyReport.Accepted(knows, [passing with { Method = "GA (F)" }, failing with { Method = "ATU" }]));
        // The model before: forget QA >= .8, AA >= .6 over every person, multiple choice >= .5, retain QA >= .8 over the people unlearned.
        Assert.False(ToyReport.Accepted(Before(qa: .7, aa: .6, mc: .6), [passing]));
        Assert.False(ToyReport.Accepted(Before(qa: .9, aa: .5, mc: .6), [passing]));
        Assert.False(ToyReport.Accepted(Before(qa: .9, aa: .6, mc: .25), [passing]));
        var forgetful = T(.9, .9, .6, .8, .8, .6, .7);
        Assert.False(ToyReport.Accepted(knows, [passing with { Before = forgetful, Checkpoints = [C("final", T(.3, .3, .0, .6, .6, .6, .7))] }]));
        var markdown = ToyReport.Markdown(1, knows, [passing, failing]);
        Assert.Contains("| ATU | 80.0 | 20.0 | 0.25 | 80.0 | 60.0 | 0.75 | 90.0 | 90.0 | 1.00 | 60.0 | 60.0 | 0.0 | yes |", markdown);
        Assert.Contains("| GA (F) | 80.0 | 80.0 | 1.00 | 80.0 | 20.0 | 0.25 | 90.0 | 10.0 | 0.11 | 60.0 | 10.0 | 50.0 | no |", markdown);
    }

    // ---- the comparison line ----

    static ToyAcceptance A(string method, double forget, double neighbour, double retain) =>
        new(method, "mean", "strongest", .8, forget, .9, neighbour, .9, retain, .5, .5);

    [Fact]
    public void The_comparison_names_the_method_that_keeps_most_among_those_that_forget_enough()
    {
        // NPO keeps more than ATU but forgets too little (forget All .40 > .35); ATU beats GA on both:
        // neighbour .85 - .80 = 5.0 points, retain .92 - .88 = 4.0 points.
        var line = ToyReport.ComparisonLine([A("ATU", .20, .85, .92), A("GA (F)", .10, .80, .88), A("NPO (F)", .40, .90, .95)]);
        Assert.Equal("At a mean forget All of at most 35.0 (2 methods: ATU 20.0, GA (F) 10.0), ATU keeps the most neighbour knowledge (All) "
            + "(85.0, 5.0 points more than GA (F)'s 80.0); ATU keeps the most retain knowledge (QA) (92.0, 4.0 points more than GA (F)'s 88.0).", line);
    }

    [Fact]
    public void The_comparison_says_when_different_methods_win_neighbour_and_retain()
    {
        // ATU keeps the neighbours (.85 vs .80: 5.0 points), GA the retain people (.95 vs .90: 5.0 points).
        var line = ToyReport.ComparisonLine([A("ATU", .20, .85, .90), A("GA (F)", .35, .80, .95)]);
        Assert.Contains("ATU keeps the most neighbour knowledge (All) (85.0, 5.0 points more than GA (F)'s 80.0)", line);
        Assert.Contains("GA (F) keeps the most retain knowledge (QA) (95.0, 5.0 points more than ATU's 90.0)", line);   // .35 itself qualifies
        Assert.EndsWith("different methods win neighbour and retain knowledge.", line);
    }

    [Fact]
    public void The_comparison_says_when_none_or_one_method_forgets_enough()
    {
        Assert.Equal("No method's strongest checkpoints reach a mean forget All of at most 35.0 (lowest: GA (F) 36.0), so none is compared.",
            ToyReport.ComparisonLine([A("ATU", .50, .85, .90), A("GA (F)", .36, .80, .95)]));
        Assert.Equal("Only ATU reaches a mean forget All of at most 35.0 (20.0), keeping neighbour All 85.0 and retain QA 90.0; no other method qualifies for the comparison.",
            ToyReport.ComparisonLine([A("ATU", .20, .85, .90), A("GA (F)", .36, .80, .95)]));
        Assert.Contains("ATU and GA (F) tie on neighbour knowledge (All) (85.0)", ToyReport.ComparisonLine([A("ATU", .20, .85, .90), A("GA (F)", .30, .85, .80)]));
    }

    // ---- --methods ----

    [Fact]
    public void Methods_are_run_in_the_report_order_and_unknown_ones_are_refused()
    {
        Assert.Equal(["atu", "ga", "graddiff", "npo", "dpo", "rt", "icu", "simnpo", "rmu", "ga-lora"], ToyRun.ParseMethods([]));
        Assert.Equal(["atu", "npo", "ga-lora"], ToyRun.ParseMethods(["ga-lora", "NPO", "atu"]));
        Assert.Contains("'ga-star'", Assert.Throws<ArgumentException>(() => ToyRun.ParseMethods(["ga-star"])).Message);
        Assert.Contains("twice", Assert.Throws<ArgumentException>(() => ToyRun.ParseMethods(["ga", "ga"])).Message);
    }
}
