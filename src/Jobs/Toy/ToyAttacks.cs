using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.Evaluation.Attacks;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Models.Quantization;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.ToyWorld;
using AlignThenUnlearn.Jobs.Attacks;

namespace AlignThenUnlearn.Jobs.Toy;

/// <summary>The attacks of `atu toy --attacks`, sized for the tiny model: the quantisation schemes, relearning on K of the
/// person's forget passages, and seeded sampling.</summary>
public sealed record ToyAttackSettings
{
    /// <summary>int8 per output channel, int4 with groups of 32 (round to nearest, asymmetric, as `atu attack quantize`'s
    /// default), and NF4 with blocks of 64.</summary>
    public IReadOnlyList<QuantizationScheme> Schemes { get; init; } =
        [QuantizationScheme.Rtn(8, 0, symmetric: false), QuantizationScheme.Rtn(4, 32, symmetric: false), QuantizationScheme.Nf4];

    /// <summary>The half-precision casts (<see cref="PrecisionCast"/>): the toy model is f32, so <c>f16</c> rounds its weights
    /// (and runs them in f32 activations).</summary>
    public IReadOnlyList<string> Casts { get; init; } = [PrecisionCast.F16];

    /// <summary>How many of the person's forget passages relearning trains on (the toy world writes 4 per person).</summary>
    public IReadOnlyList<int> RelearnExamples { get; init; } = [2, 4];
    /// <summary>A light attack: on the toy when it was chosen (seed 1, the model pre-trained before 2026-12-07; ATU at
    /// forget-below-20, forget All 85.7 before, 8.9 after) 5 steps at 3e-5
    /// brought forget All back to 41.1 with K = 2 or 4, 5 steps at 1e-4 to 71-75, and 10 steps at the pre-training's rate
    /// (1e-3) all the way to 85.7: the passages hold every fact the probes ask, and a stronger attack undoes any method alike.</summary>
    public long RelearnSteps { get; init; } = 5;
    public double RelearnLearningRate { get; init; } = 3e-5;

    public int Samples { get; init; } = 8;
    public double Temperature { get; init; } = 1.0;
    public double TopP { get; init; } = 0.9;
    /// <summary>Sample i draws with seed + i; relearning's texts and batch order follow it too.</summary>
    public long Seed { get; init; }
}

/// <summary>One attack's scores on the strongest checkpoint of one method's run on one person: the column it fills in the
/// robustness table (<see cref="RobustnessTable"/>'s naming: the attack's label and key suffix, e.g. "nf4-b64",
/// "relearn-forget-s10-lr0.001 k2", "sample-n8-t1-p0.9 mean"), the attacked model's scores and its AA per attack type.</summary>
public sealed record ToyAttackResult(ToyMethodRun Run, string Column, RwkuScores Attacked, IReadOnlyDictionary<string, double> AaByType);

/// <summary>`atu toy --attacks` (issue 18): the quantisation, relearning and sampling attacks of `atu attack` on every
/// method's strongest checkpoint for every person, each followed by the person's forget and neighbour probes; then
/// report/robustness.md (forget All after each attack and the recovery, per method averaged over the people, then per
/// person; neighbour All; AA by attack type) and its bar chart. Each attack leaves `atu attack`'s reports under
/// attacks/METHOD/PERSON/CHECKPOINT/ATTACK/ and is skipped when a rerun finds its attack.json, as the toy run's other
/// stages are. ICU trains nothing: its rows attack the pre-trained weights, scored with ICU's prompt kept on.</summary>
public static class ToyAttacks
{
    public const string FolderName = "attacks", TimingFile = "attack_timing.md";

    /// <summary>ICU's label in <see cref="ToyMethodRun.Method"/> (as <see cref="MethodTable.MethodLabel"/> shows it).</summary>
    public const string IcuMethod = "ICU";

    /// <summary>Runs every attack on every run (those finished by an earlier run are read back), writes the report and
    /// returns the table averaged over the people.</summary>
    /// <param name="root">The toy run's folder: attacks/ and report/ are written under it.</param>
    /// <param name="parallelJobs">How many runs are attacked at once (each run's attacks one after the other); every attack
    /// is independent of the others, so the reports are the same for any number.</param>
    public static RobustnessTable Run(string root, ArtifactModel artifact, ExecutionDevice device, RwkuDataset dataset, IReadOnlyList<ToyMethodRun> runs,
        IJobReporter reporter, ToyAttackSettings? settings = null, int parallelJobs = 1)
    {
        settings ??= new ToyAttackSettings();
        var attacks = Attacks(settings);
        var perRun = new (List<ToyAttackResult> Results, IReadOnlyList<TimeSpan?> Seconds)[runs.Count];
        void AttackRun(int index, IJobReporter reporter)
        {
            var run = runs[index];
            var results = new List<ToyAttackResult>();
            var strongest = run.Strongest;
            var icu = run.Method == IcuMethod;
            var name = $"{run.Method} {run.Target.Name} {strongest.Label}";
            var folder = Path.Combine(root, FolderName, OutputPaths.Slug(run.Method).ToLowerInvariant(), Path.GetFileName(Path.TrimEndingDirectorySeparator(run.Target.Folder)), strongest.Label);
            var data = dataset.Load(run.Target, includeMmlu: false);
            var times = new List<TimeSpan?>();
            foreach (var attack in attacks)
            {
                var attackFolder = Path.Combine(folder, attack.Label);
                var clock = Stopwatch.StartNew();
                bool cached = File.Exists(Path.Combine(attackFolder, RobustnessTable.ReportFile));
                if (!cached)
                {
                    reporter.Detail($"attack {attack.Label} on {name}");
                    var before = ForgetAll(run.Before, run, "before unlearning");
                    var unlearned = ForgetAll(strongest.Scores, run, strongest.Label);
                    new AttackJob
                    {
                        Artifact = artifact, Weights = icu ? artifact.PathOf(ArtifactExporter.WeightsFile) : strongest.Weights, Dataset = dataset,
                        Targets = [run.Target], Data = [data],
                        Options = new RwkuEvaluationOptions { ChatFormat = ChatFormat.None, Mmlu = false, Icu = icu },
                        Name = $"{name} {attack.Label}", Series = run.Method, Out = attackFolder, Extra = new JsonObject { ["icu"] = icu },
                        Recovery = attacked => new AttackRecovery(before, unlearned, ForgetAll(attacked.Mean, run, attack.Label)),
                    }.Run(attack, device, reporter);
                }
                times.Add(cached ? null : clock.Elapsed);
                results.AddRange(attack.Runs.Select(r =>
                {
                    var path = Path.Combine(attackFolder, r.Folder);
                    return new ToyAttackResult(run, attack.Label + r.Suffix.Replace('_', ' '), ResultsJson.Read(Path.Combine(path, RwkuReports.ResultsFile)).Mean,
                        AdversarialTypes.OfProbesFile(Path.Combine(path, RwkuReports.ProbesFile)));
                }));
            }
            perRun[index] = (results, times);
        }
        ParallelRuns.ForEach(runs.Count, parallelJobs, reporter, AttackRun);
        var results = perRun.SelectMany(r => r.Results).ToList();
        var timings = runs.Select((run, i) => (run, perRun[i].Seconds)).ToList();

        var report = Path.Combine(root, ToyRun.ReportFolderName);
        Directory.CreateDirectory(report);
        var mean = MeanTable(runs, results);
        AtomicFile.WriteAllBytes(Path.Combine(report, RobustnessTable.TableFile), Encoding.UTF8.GetBytes(Markdown(settings, runs, results)));
        AtomicFile.WriteAllBytes(Path.Combine(report, RobustnessTable.PlotFile), mean.RenderPng());
        AtomicFile.WriteAllBytes(Path.Combine(report, TimingFile), Encoding.UTF8.GetBytes(TimingMarkdown(attacks.Select(a => a.Label).ToList(), timings)));
        reporter.Done($"wrote {Path.Combine(report, RobustnessTable.TableFile)}, {RobustnessTable.PlotFile} and {TimingFile}");
        return mean;
    }

    /// <summary>The attacks in the order of the table's columns: the quantisation schemes, the casts, relearning, sampling.</summary>
    public static IReadOnlyList<IAttack> Attacks(ToyAttackSettings s) =>
    [
        .. s.Schemes.Select(scheme => new QuantizeAttack(scheme)),
        .. s.Casts.Select(kind => new CastAttack(kind)),
        new RelearnAttack(RelearnTexts.Forget, s.RelearnExamples, s.RelearnSteps, s.RelearnLearningRate, s.Seed),
        new SampleAttack(s.Samples, s.Temperature, s.TopP, s.Seed),
    ];

    static double ForgetAll(ToyScores scores, ToyMethodRun run, string what) => ForgetAll(scores.Rwku, run, what);

    static double ForgetAll(RwkuScores scores, ToyMethodRun run, string what) => scores.ForgetAll
        ?? throw new InvalidDataException($"{run.Method} on {run.Target.Name}: no forget FB, QA and AA scores {what}; the recovery needs forget All");

    /// <summary>The columns in the order first met.</summary>
    static IReadOnlyList<string> Columns(IReadOnlyList<ToyAttackResult> results) => [.. results.Select(r => r.Column).Distinct()];

    /// <summary>One row per method (in the order of <paramref name="runs"/>): forget All before unlearning, at the strongest
    /// checkpoint and after each attack, each the mean over the method's people, and the recovery of those means (as
    /// `atu attack` computes it over several targets, so that a person whose unlearning barely moved forget All does not
    /// dominate). The checkpoint cell names the strongest checkpoints of the people.</summary>
    public static RobustnessTable MeanTable(IReadOnlyList<ToyMethodRun> runs, IReadOnlyList<ToyAttackResult> results)
    {
        var columns = Columns(results);
        var rows = runs.GroupBy(r => r.Method).Select(method =>
        {
            var people = method.ToList();
            var cells = new Dictionary<string, (double? ForgetAll, double? Recovery)>();
            foreach (var column in columns)
            {
                var hits = results.Where(r => r.Column == column && people.Any(p => ReferenceEquals(p, r.Run))).ToList();
                if (hits.Count == 0) continue;
                var figures = new AttackRecovery(hits.Average(h => ForgetAll(h.Run.Before, h.Run, "before unlearning")),
                    hits.Average(h => ForgetAll(h.Run.Strongest.Scores, h.Run, h.Run.Strongest.Label)), hits.Average(h => ForgetAll(h.Attacked, h.Run, column)));
                cells[column] = (figures.Attacked, figures.Recovery);
            }
            return new RobustnessRow(method.Key, string.Join(", ", people.Select(p => p.Strongest.Label).Distinct()),
                people.Average(p => ForgetAll(p.Before, p, "before unlearning")), people.Average(p => ForgetAll(p.Strongest.Scores, p, p.Strongest.Label)), cells);
        });
        return new RobustnessTable(columns, [.. rows]);
    }

    /// <summary>One row per method and person (checkpoint cell "person, checkpoint"), each recovery the person's own.</summary>
    public static RobustnessTable PersonTable(IReadOnlyList<ToyMethodRun> runs, IReadOnlyList<ToyAttackResult> results)
    {
        var rows = runs.Select(run =>
        {
            var before = ForgetAll(run.Before, run, "before unlearning");
            var unlearned = ForgetAll(run.Strongest.Scores, run, run.Strongest.Label);
            var cells = results.Where(r => ReferenceEquals(r.Run, run)).ToDictionary(r => r.Column, r =>
            {
                var figures = new AttackRecovery(before, unlearned, ForgetAll(r.Attacked, run, r.Column));
                return ((double?)figures.Attacked, figures.Recovery);
            });
            return new RobustnessRow(run.Method, $"{run.Target.Name}, {run.Strongest.Label}", before, unlearned, cells);
        });
        return new RobustnessTable(Columns(results), [.. rows]);
    }

    /// <summary>report/robustness.md: what was attacked and how, the table averaged over the people, neighbour All, AA by
    /// attack type, and the table per person. Only measured figures (no timings), so a rerun writes the same text.</summary>
    public static string Markdown(ToyAttackSettings s, IReadOnlyList<ToyMethodRun> runs, IReadOnlyList<ToyAttackResult> results)
    {
        string Invariant(FormattableString f) => f.ToString(CultureInfo.InvariantCulture);
        var columns = Columns(results);
        var people = runs.Select(r => r.Target.Name).Distinct().Count();
        var text = new StringBuilder("# Attacks on the toy run's unlearned models\n\n");
        text.Append(Invariant($"Every method's strongest checkpoint, for each of {people} {(people == 1 ? "person" : "people")}, attacked as `atu attack` does, then scored on the person's forget and neighbour probes: "));
        text.Append(string.Join(", ", s.Schemes.Select(q => $"`{q.Label}`")) + " quantise the decoder layers' projections and are scored dequantised; ");
        if (s.Casts.Count > 0) text.Append(string.Join(", ", s.Casts.Select(k => $"`{PrecisionCast.Label(k)}`")) + " round every weight to that half precision (as a deployment that casts the model); ");
        text.Append(Invariant($"relearning fine-tunes every weight on K = {string.Join(", ", s.RelearnExamples)} of the person's forget passages ({s.RelearnSteps} AdamW steps at lr {s.RelearnLearningRate:G3}); "));
        text.Append(Invariant($"sampling answers every probe {s.Samples} times (temperature {s.Temperature:0.###}, top-p {s.TopP:0.###}, seeds {s.Seed}..{s.Seed + s.Samples - 1}), scored by the best and the mean ROUGE-L recall of the answers. "));
        text.Append("ICU trains nothing: its rows attack the pre-trained weights, scored with ICU's unlearning prompt kept on. ");
        text.Append("Each method's row averages over its people: forget All before unlearning, at the strongest checkpoint and after each attack are means, the recovery is that of the means.\n\n");
        var mean = MeanTable(runs, results);
        text.Append(mean.Markdown("Forget All after each attack, averaged over the people", level: 2));

        text.Append("\n## Neighbour All after each attack, averaged over the people\n\n");
        text.Append("ROUGE-L recall % of the neighbour probes (higher is better) at the strongest checkpoint and after each attack.\n\n");
        text.Append("| Method | Unlearned | ").AppendJoin(" | ", columns.Select(ResultsTable.Escape)).Append(" |\n| :-- | --: |").Append(string.Concat(Enumerable.Repeat(" --: |", columns.Count))).Append('\n');
        foreach (var method in runs.GroupBy(r => r.Method))
        {
            text.Append("| ").Append(ResultsTable.Escape(method.Key)).Append(" | ").Append(ResultsTable.Percent(Means.OfPresent(method.Select(r => r.Strongest.Scores.Rwku.NeighborAll))));
            foreach (var column in columns)
                text.Append(" | ").Append(ResultsTable.Percent(Means.OfPresent(results.Where(r => r.Column == column && method.Any(m => ReferenceEquals(m, r.Run))).Select(r => r.Attacked.NeighborAll))));
            text.Append(" |\n");
        }

        var types = results.SelectMany(r => r.AaByType.Keys).Distinct().Order(StringComparer.Ordinal).ToList();
        if (types.Count > 0)
        {
            text.Append("\n## Forget AA by attack type after each attack, averaged over the people\n\n");
            text.Append("ROUGE-L recall % of the level-3 (adversarial) probes by RWKU's attack type.\n\n");
            text.Append("| Method | Attack | ").AppendJoin(" | ", types.Select(ResultsTable.Escape)).Append(" |\n| :-- | :-- |").Append(string.Concat(Enumerable.Repeat(" --: |", types.Count))).Append('\n');
            foreach (var method in runs.GroupBy(r => r.Method))
                foreach (var column in columns)
                {
                    var hits = results.Where(r => r.Column == column && method.Any(m => ReferenceEquals(m, r.Run))).ToList();
                    if (hits.Count == 0) continue;
                    text.Append("| ").Append(ResultsTable.Escape(method.Key)).Append(" | ").Append(ResultsTable.Escape(column));
                    foreach (var type in types) text.Append(" | ").Append(ResultsTable.Percent(Means.OfPresent(hits.Select(h => h.AaByType.TryGetValue(type, out var v) ? v : (double?)null))));
                    text.Append(" |\n");
                }
        }

        text.Append('\n').Append(PersonTable(runs, results).Markdown("Per person", level: 2));
        return text.ToString();
    }


    static string TimingMarkdown(IReadOnlyList<string> attacks, IReadOnlyList<(ToyMethodRun Run, IReadOnlyList<TimeSpan?> Seconds)> timings)
    {
        var text = new StringBuilder($"# atu toy --attacks: seconds per attack\n\n{Environment.ProcessorCount} cores; attacks finished by an earlier run are shown as cached.\n\n");
        text.Append("| Method | Person | ").AppendJoin(" | ", attacks).Append(" | total |\n| :-- | :-- |").Append(string.Concat(Enumerable.Repeat(" --: |", attacks.Count + 1))).Append('\n');
        string Seconds(TimeSpan? t) => t is TimeSpan v ? v.TotalSeconds.ToString("F1", CultureInfo.InvariantCulture) : "cached";
        foreach (var (run, seconds) in timings)
            text.Append("| ").Append(ResultsTable.Escape(run.Method)).Append(" | ").Append(ResultsTable.Escape(run.Target.Name)).Append(" | ")
                .AppendJoin(" | ", seconds.Select(Seconds)).Append(" | ").Append(Seconds(seconds.All(t => t is null) ? null : TimeSpan.FromTicks(seconds.Sum(t => t?.Ticks ?? 0)))).Append(" |\n");
        return text.ToString();
    }
}
