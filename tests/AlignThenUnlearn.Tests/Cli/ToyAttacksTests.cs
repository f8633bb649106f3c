using System.Text.Json;
using AlignThenUnlearn.Cli;
using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.Jobs;
using AlignThenUnlearn.Jobs.Toy;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Models.Checkpoints;
using AlignThenUnlearn.Models.Quantization;
using AlignThenUnlearn.Tests.Evaluation;
using AlignThenUnlearn.Tests.Support;
using AlignThenUnlearn.ToyWorld;
using CommandLine;

namespace AlignThenUnlearn.Tests.Cli;

/// <summary>`atu toy --attacks`: the robustness table over made-up toy runs with hand-worked figures (averaged over the
/// people, then per person), and the attacks themselves on the tiny chat model, checked against `atu attack`.</summary>
[Collection(ConsoleCollection.Name)]
public sealed class ToyAttacksTests(TinyChatModel tiny) : IClassFixture<TinyChatModel>, IDisposable
{
    readonly TempFolder _temp = new();
    public void Dispose() => _temp.Dispose();

    /// <summary>Scores whose forget All is <paramref name="forget"/> (FB = QA = AA, no weights: the plain mean) and whose
    /// neighbour All is <paramref name="neighbour"/>.</summary>
    static RwkuScores S(double forget, double neighbour = 0.5) => new(forget, forget, forget, neighbour, neighbour, null);

    static ToyMethodRun Run(string method, string person, double before, params (string Label, RwkuScores Scores)[] checkpoints) =>
        new(method, new RwkuTarget(person.Length, person, $"/world/{person.Length}_{person}"), new ToyScores(S(before)),
            [.. checkpoints.Select(c => new ToyCheckpoint(c.Label, new ToyScores(c.Scores), $"/runs/{method}/{person}/{c.Label}/model.safetensors"))]);

    static readonly Dictionary<string, double> NoTypes = [];

    // ATU on Ann: 0.9 before, 0.3 at forget-below-35. NF4 brings back all of it (0.9: recovery (0.9 - 0.3) / (0.9 - 0.3) = 1),
    //   sampling none of it (0.3: recovery 0).
    // ATU on Bo: 0.5 before, 0.1 at forget-below-20; NF4 0.2: recovery (0.2 - 0.1) / (0.5 - 0.1) = 0.25; sampling 0.1: 0.
    //   ATU's row: before (0.9 + 0.5) / 2 = 0.7, unlearned (0.3 + 0.1) / 2 = 0.2, NF4 (0.9 + 0.2) / 2 = 0.55, recovery of
    //   the means (0.55 - 0.2) / (0.7 - 0.2) = 0.7 (the mean of the people's recoveries would be (1 + 0.25) / 2 = 0.625).
    // GA on Ann: strongest is forget-below-50 (0.4; the end of the run, 0.2, is not a threshold); NF4 0.2: (0.2 - 0.4) / (0.9 - 0.4) = -0.4,
    //   it forgets further.
    // ICU on Ann: its prompt changed nothing (0.9 before and after): NF4 0.8 has no recovery (no division by 0 = 0), a dash.
    static (IReadOnlyList<ToyMethodRun> Runs, IReadOnlyList<ToyAttackResult> Results) Fabricated()
    {
        var atuAnn = Run("ATU", "Ann", 0.9, ("forget-below-35", S(0.3, 0.8)), (ToyMethodRun.FinalLabel, S(0.25)));
        var atuBo = Run("ATU", "Bo", 0.5, ("forget-below-20", S(0.1, 0.6)), (ToyMethodRun.FinalLabel, S(0.1)));
        var ga = Run("GA", "Ann", 0.9, ("forget-below-50", S(0.4)), (ToyMethodRun.FinalLabel, S(0.2)));
        var icu = Run("ICU", "Ann", 0.9, (ToyMethodRun.FinalLabel, S(0.9)));
        ToyAttackResult R(ToyMethodRun run, string column, RwkuScores scores, Dictionary<string, double>? types = null) => new(run, column, scores, types ?? NoTypes);
        return ([atuAnn, atuBo, ga, icu],
        [
            R(atuAnn, "nf4-b64", S(0.9, 0.7), new() { ["prefix injection"] = 0.5 }), R(atuAnn, "sample", S(0.3, 0.8)),
            R(atuBo, "nf4-b64", S(0.2, 0.5), new() { ["prefix injection"] = 0.3, ["role playing"] = 0.2 }), R(atuBo, "sample", S(0.1, 0.6)),
            R(ga, "nf4-b64", S(0.2)), R(icu, "nf4-b64", S(0.8)),
        ]);
    }

    [Fact]
    public void The_method_rows_average_over_the_people_and_take_the_recovery_of_the_means()
    {
        var (runs, results) = Fabricated();
        var table = ToyAttacks.MeanTable(runs, results);
        Assert.Equal(["nf4-b64", "sample"], table.Attacks);
        Assert.Equal(["ATU", "GA", "ICU"], table.Rows.Select(r => r.Method));
        var atu = table.Rows[0];
        Assert.Equal("forget-below-35, forget-below-20", atu.Checkpoint);
        Assert.Equal(0.7, atu.Before!.Value, 12);
        Assert.Equal(0.2, atu.Unlearned!.Value, 12);
        Assert.Equal(0.55, atu.Attacks["nf4-b64"].ForgetAll!.Value, 12);
        Assert.Equal(0.7, atu.Attacks["nf4-b64"].Recovery!.Value, 12);
        Assert.Equal(0, atu.Attacks["sample"].Recovery!.Value, 12);
        Assert.Equal(-0.4, table.Rows[1].Attacks["nf4-b64"].Recovery!.Value, 12);
        Assert.Equal("forget-below-50", table.Rows[1].Checkpoint);
        Assert.Null(table.Rows[2].Attacks["nf4-b64"].Recovery);
        Assert.False(table.Rows[2].Attacks.ContainsKey("sample"));

        var markdown = table.Markdown();
        Assert.Contains("| ATU | forget-below-35, forget-below-20 | 70.0 | 20.0 | 55.0 | 20.0 |\n", markdown);
        Assert.Contains("| GA | forget-below-50 | 90.0 | 40.0 | 20.0 | – |\n", markdown);
        Assert.Contains("| ICU | final | 90.0 | 90.0 | 80.0 | – |\n", markdown);
        Assert.Contains("| ATU | forget-below-35, forget-below-20 | 0.700 | 0.000 |\n", markdown);
        Assert.Contains("| GA | forget-below-50 | -0.400 | – |\n", markdown);
        Assert.Contains("| ICU | final | – | – |\n", markdown);
    }

    [Fact]
    public void The_person_rows_hold_each_persons_own_recovery()
    {
        var (runs, results) = Fabricated();
        var markdown = ToyAttacks.PersonTable(runs, results).Markdown("Per person", level: 2);
        Assert.StartsWith("## Per person\n", markdown);
        Assert.Contains("\n### Recovery\n", markdown);
        // Full recovery is 1, none is 0; Bo's NF4 0.25 and GA's -0.4 as worked out above.
        Assert.Contains("| ATU | Ann, forget-below-35 | 90.0 | 30.0 | 90.0 | 30.0 |\n", markdown);
        Assert.Contains("| ATU | Ann, forget-below-35 | 1.000 | 0.000 |\n", markdown);
        Assert.Contains("| ATU | Bo, forget-below-20 | 0.250 | 0.000 |\n", markdown);
        Assert.Contains("| GA | Ann, forget-below-50 | -0.400 | – |\n", markdown);
        Assert.Contains("| ICU | Ann, final | – | – |\n", markdown);
    }

    [Fact]
    public void The_report_adds_neighbour_All_and_AA_by_attack_type_averaged_over_the_people()
    {
        var (runs, results) = Fabricated();
        var markdown = ToyAttacks.Markdown(new ToyAttackSettings(), runs, results);
        // ATU's neighbour All: unlearned (0.8 + 0.6) / 2 = 70.0, after NF4 (0.7 + 0.5) / 2 = 60.0, after sampling (0.8 + 0.6) / 2 = 70.0.
        Assert.Contains("| ATU | 70.0 | 60.0 | 70.0 |\n", markdown);
        // AA by type after NF4: prefix injection (0.5 + 0.3) / 2 = 40.0; role playing only Bo's 20.0. Sampling had no typed AA.
        Assert.Contains("| ATU | nf4-b64 | 40.0 | 20.0 |\n", markdown);
        Assert.Contains("| ATU | sample | – | – |\n", markdown);
        Assert.Contains("ICU trains nothing: its rows attack the pre-trained weights", markdown);
        Assert.Contains("## Per person", markdown);
    }

    [Fact]
    public void A_run_without_forget_scores_is_refused_naming_the_method_and_person()
    {
        var unscored = new ToyMethodRun("NPO", new RwkuTarget(3, "Cy", "/world/3_Cy"), new ToyScores(new RwkuScores(null, 0.9, 0.9, 0.5, 0.5, null)),
            [new ToyCheckpoint(ToyMethodRun.FinalLabel, new ToyScores(S(0.1)), "/runs/npo/model.safetensors")]);
        var message = Assert.Throws<InvalidDataException>(() => ToyAttacks.MeanTable([unscored], [new ToyAttackResult(unscored, "nf4-b64", S(0.2), NoTypes)])).Message;
        Assert.Contains("NPO on Cy: no forget FB, QA and AA scores before unlearning", message);
    }

    [Fact]
    public void The_toy_verb_takes_attacks()
    {
        var parsed = Parser.Default.ParseArguments(["toy", "--seed", "2", "--people", "1", "--attacks"], Verbs.Types)
            .MapResult(o => o, errors => throw new ArgumentException(string.Join("; ", errors)));
        var o = Assert.IsType<ToyOptions>(parsed);
        Assert.True(o.Attacks);
        Assert.False(Assert.IsType<ToyOptions>(Parser.Default.ParseArguments(["toy"], Verbs.Types).MapResult(x => x, _ => null!)).Attacks);
    }

    [Fact]
    public void The_toy_verb_takes_several_seeds_and_refuses_a_repeated_one_before_touching_the_output()
    {
        ToyOptions Parse(params string[] args) => Assert.IsType<ToyOptions>(Parser.Default.ParseArguments(["toy", .. args], Verbs.Types)
            .MapResult(o => o, errors => throw new ArgumentException(string.Join("; ", errors))));
        Assert.Equal([1, 2, 3], Parse("--seeds", "1,2,3", "--people", "8").Seeds);
        Assert.Empty(Parse().Seeds);
        using var folder = new TempFolder();
        var kept = folder.File("toy");
        Directory.CreateDirectory(kept);
        var e = Assert.Throws<ArgumentException>(() => ToyCommand.Run(Parse("--seeds", "1,2,1", "--out", kept, "--force")));
        Assert.Contains("--seeds 1,2,1 names a seed twice", e.Message);
        Assert.True(Directory.Exists(kept));   // --force removes nothing before the arguments are checked
    }

    [Fact]
    public void Method_labels_become_folder_names()
    {
        // One slug for a run's report folders (as before: "GA-F-final") and the toy job's attack folders (lower case: ga-l).
        Assert.Equal("GA-L", OutputPaths.Slug("GA (L)"));
        Assert.Equal("GradDiff", OutputPaths.Slug("GradDiff"));
        Assert.Equal("GA", OutputPaths.Slug("GA*"));
        Assert.Equal("GA-F-final", OutputPaths.Slug("GA (F) final"));
        Assert.Equal("ATU-forget-below-50", OutputPaths.Slug("ATU forget-below-50"));
        Assert.Throws<ArgumentException>(() => OutputPaths.Slug("(*)"));
    }

    /// <summary>End to end on the tiny chat model and the RWKU fixture: each attack's figures equal `atu attack`'s on the
    /// same weights, ICU's rows attack the pre-trained weights, and a rerun reads every attack back instead of redoing it.</summary>
    [Fact]
    public void The_attacks_score_as_atu_attack_does_and_a_rerun_reuses_them()
    {
        using var fixture = new RwkuFixture();
        var dataset = RwkuDataset.Open(fixture.Root);
        var ada = dataset.Select("1")[0];
        var weights = tiny.OtherWeights("toy-attacks", 5, SafetensorsDType.F32);
        var atu = new ToyMethodRun("ATU", ada, new ToyScores(S(0.9)), [new ToyCheckpoint("forget-below-50", new ToyScores(S(0.2)), weights)]);
        var icu = new ToyMethodRun(ToyAttacks.IcuMethod, ada, new ToyScores(S(0.9)), [new ToyCheckpoint(ToyMethodRun.FinalLabel, new ToyScores(S(0.5)), "no weights of its own")]);
        var settings = new ToyAttackSettings { Schemes = [QuantizationScheme.Nf4], RelearnExamples = [1], RelearnSteps = 2, RelearnLearningRate = 3e-3, Samples = 2 };
        var root = _temp.File("toy");
        ToyAttacks.Run(root, tiny.Model, GradCheck.Cpu, dataset, [atu, icu], JobReporter.Silent, settings);

        var nf4 = Path.Combine(root, ToyAttacks.FolderName, "atu", "1_Ada_Quill", "forget-below-50", "nf4-b64");
        var command = _temp.File("command");
        Assert.Equal(0, AttackCommand.Run(new QuantizeAttackOptions
        {
            Scheme = "nf4", Bits = 4, Artifacts = tiny.Artifacts, Weights = weights, Rwku = fixture.Root, Targets = "1", Out = command, NoMmlu = true,
        }));
        double Figure(string folder, string key) => JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, RobustnessTable.ReportFile))).RootElement.GetProperty(key).GetDouble();
        double forget = Figure(command, "forget_all");
        Assert.Equal(forget, Figure(nf4, "forget_all"), 12);
        Assert.Equal((forget - 0.2) / (0.9 - 0.2), Figure(nf4, "recovery"), 12);

        // `atu report --attacks` reads the toy's attack.json files: one row (the weights), a column per scored run.
        var read = RobustnessTable.Read([nf4, Path.Combine(root, ToyAttacks.FolderName, "atu", "1_Ada_Quill", "forget-below-50", "relearn-forget-s2-lr0.003"),
            Path.Combine(root, ToyAttacks.FolderName, "atu", "1_Ada_Quill", "forget-below-50", "sample-n2-t1-p0.9")]);
        Assert.Equal(["nf4-b64", "relearn-forget-s2-lr0.003 k1", "sample-n2-t1-p0.9", "sample-n2-t1-p0.9 mean"], read.Attacks);
        Assert.Equal(weights, Assert.Single(read.Rows).Checkpoint);
        // Best of n answers is at least their mean.
        Assert.True(read.Rows[0].Attacks["sample-n2-t1-p0.9"].ForgetAll >= read.Rows[0].Attacks["sample-n2-t1-p0.9 mean"].ForgetAll);

        var icuReport = JsonDocument.Parse(File.ReadAllText(Path.Combine(root, ToyAttacks.FolderName, "icu", "1_Ada_Quill", "final", "nf4-b64", RobustnessTable.ReportFile))).RootElement;
        Assert.Equal(tiny.Model.PathOf(ArtifactExporter.WeightsFile), icuReport.GetProperty("weights").GetString());
        Assert.True(icuReport.GetProperty("icu").GetBoolean());

        var report = Path.Combine(root, ToyRun.ReportFolderName);
        var markdown = File.ReadAllText(Path.Combine(report, RobustnessTable.TableFile));
        Assert.True(File.Exists(Path.Combine(report, RobustnessTable.PlotFile)));
        Assert.DoesNotContain("| cached", File.ReadAllText(Path.Combine(report, ToyAttacks.TimingFile)));

        // The two runs attacked at once: the same report.
        var beside = _temp.File("toy-at-once");
        ToyAttacks.Run(beside, tiny.Model, GradCheck.Cpu, dataset, [atu, icu], JobReporter.Silent, settings, parallelJobs: 2);
        Assert.Equal(markdown, File.ReadAllText(Path.Combine(beside, ToyRun.ReportFolderName, RobustnessTable.TableFile)));

        // A rerun finds every attack.json: nothing is redone, the report is the same.
        var written = File.GetLastWriteTimeUtc(Path.Combine(nf4, RobustnessTable.ReportFile));
        ToyAttacks.Run(root, tiny.Model, GradCheck.Cpu, dataset, [atu, icu], JobReporter.Silent, settings);
        Assert.Equal(written, File.GetLastWriteTimeUtc(Path.Combine(nf4, RobustnessTable.ReportFile)));
        Assert.Equal(markdown, File.ReadAllText(Path.Combine(report, RobustnessTable.TableFile)));
        Assert.Equal(2, File.ReadAllLines(Path.Combine(report, ToyAttacks.TimingFile)).Count(l => l.Contains("| cached | cached | cached | cached |")));
    }
}
