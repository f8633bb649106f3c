using System.Text.Json.Nodes;
using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.Evaluation.Attacks;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Models.Checkpoints;
using AlignThenUnlearn.Models.Quantization;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Unlearning;
using CommandLine;
using Spectre.Console;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Cli;

/// <summary><c>atu attack KIND</c>: an attack on an unlearned model followed by `atu eval`'s ordinary evaluation (every
/// option of `atu eval` applies; the attack kind is a positional value because CommandLineParser does not nest verbs).</summary>
[Verb("attack", HelpText = "Attack an unlearned model and score it on RWKU as `atu eval` does: `atu attack quantize` quantises the decoder layers' linear weights (RTN int8/int4 or NF4) and dequantises them back; `atu attack sample` answers every probe --n times by seeded temperature/top-p sampling and scores the best and the mean recall; `atu attack relearn` fine-tunes on K texts (--data forget|neighbour|unrelated, --examples K,K2,...) with next-token loss and AdamW, then scores each; `atu attack cast` rounds the weights to f16 or bf16 (--to), as a deployment that casts the model holds them. Writes eval's reports and attack.json (forget All after the attack; recovery with --before and --unlearned).")]
public sealed class AttackOptions : EvalOptions
{
    [Value(0, MetaName = "attack", Required = true, HelpText = "quantize, sample, relearn or cast.")]
    public string Attack { get; set; } = "";

    [Option("to", Default = PrecisionCast.F16, HelpText = "cast: f16 (an f16 file: an f16 artifact runs it in f16 throughout) or bf16 (the weights rounded to bf16, run in f32).")]
    public string CastTo { get; set; } = PrecisionCast.F16;

    [Option("bits", Default = 4, HelpText = "quantize: 8 or 4 (rtn), 4 (nf4).")]
    public int Bits { get; set; } = 4;

    [Option("scheme", Default = "rtn", HelpText = "quantize: rtn (round to nearest, a scale and zero point per group) or nf4 (bitsandbytes' NormalFloat4, absmax per block of 64).")]
    public string Scheme { get; set; } = "rtn";

    [Option("group-size", HelpText = "quantize, rtn: values of a row sharing one scale (e.g. 32, 64, 128); 0: one per output channel. Default: 0 for 8 bits, 128 for 4 bits. nf4: 64 only.")]
    public int? GroupSize { get; set; }

    [Option("symmetric", HelpText = "quantize, rtn: symmetric groups (absmax / (2^(bits-1) - 1), zero point 2^(bits-1)) instead of asymmetric ones (min/max with a zero point).")]
    public bool Symmetric { get; set; }

    [Option('n', "samples", Default = 16, HelpText = "sample: answers per probe (-n 16; CommandLineParser takes no one-letter long name).")]
    public int Samples { get; set; } = 16;

    [Option("temperature", Default = 1.0, HelpText = "sample: logits divided by this (0: greedy).")]
    public double Temperature { get; set; } = 1.0;

    [Option("top-p", Default = 1.0, HelpText = "sample: keep the most probable tokens whose probabilities first reach this together (nucleus sampling).")]
    public double TopP { get; set; } = 1.0;

    [Option("data", Default = RelearnTexts.Forget, HelpText = "relearn: forget (the attacked targets' passage.json), neighbour (their neighbor_level1 probes as sentences, the blank filled with the answer) or unrelated (the passage.json texts of every other target in --rwku).")]
    public string Data { get; set; } = RelearnTexts.Forget;

    [Option("examples", Default = "4", HelpText = "relearn: texts to fine-tune on, one or several comma-separated (e.g. 0,4,16); each K is a separate attack on the given weights, reports in <out>/k<K>/. K = 0 scores the weights unchanged.")]
    public string Examples { get; set; } = "4";

    [Option("steps", Default = 20L, HelpText = "relearn: AdamW steps, each on one batch of all K texts.")]
    public long Steps { get; set; } = 20;

    [Option("lr", Default = 1e-5, HelpText = "relearn: AdamW learning rate (constant, no weight decay).")]
    public double LearningRate { get; set; } = 1e-5;

    [Option("seed", Default = 0L, HelpText = "sample: answer i of every probe draws with seed + i; the same seed gives the same answers. relearn: which K texts (the pool shuffled with it) and the batch order.")]
    public long Seed { get; set; }

    [Option("adapters", HelpText = "LoRA adapters (adapters.safetensors of a LoRA run) merged into the weights (--weights, else the artifact's) before the attack: the attacked model is base + adapters.")]
    public string? Adapters { get; set; }

    [Option("before", HelpText = "results.json (or its folder) of `atu eval` on the model before unlearning; with --unlearned, attack.json gets the recovery.")]
    public string? Before { get; set; }

    [Option("unlearned", HelpText = "results.json (or its folder) of `atu eval` on the unlearned model without the attack.")]
    public string? Unlearned { get; set; }
}

public static class AttackCommand
{
    public const string QuantizeAttack = "quantize", SampleAttack = "sample", RelearnAttack = "relearn", CastAttack = "cast", ReportFile = "attack.json";

    /// <summary>The longest text (in tokens, from its start) relearning trains on, or the model's maximum if smaller.</summary>
    public const int RelearnMaxTokens = 512;

    public static int Run(AttackOptions o) => o.Attack switch
    {
        QuantizeAttack => Quantize(o),
        SampleAttack => Sample(o),
        RelearnAttack => Relearn(o),
        CastAttack => Cast(o),
        _ => throw new ArgumentException($"atu attack: unknown attack '{o.Attack}'; the attacks are: {QuantizeAttack}, {SampleAttack}, {RelearnAttack}, {CastAttack}"),
    };

    /// <summary>The scheme the options name; the group size defaults to per output channel for int8 and 128 for int4.</summary>
    public static QuantizationScheme SchemeOf(AttackOptions o) => o.Scheme switch
    {
        "rtn" when o.Bits is 8 or 4 => QuantizationScheme.Rtn(o.Bits, o.GroupSize ?? (o.Bits == 8 ? 0 : 128), o.Symmetric),
        "rtn" => throw new ArgumentException($"--bits {o.Bits}: expected 8 or 4"),
        "nf4" when o.Bits == 4 && (o.GroupSize ?? NormalFloat4.BlockSize) == NormalFloat4.BlockSize && !o.Symmetric => QuantizationScheme.Nf4,
        "nf4" => throw new ArgumentException($"--scheme nf4 is 4-bit with blocks of {NormalFloat4.BlockSize} and its own absmax scaling (--bits 4, no --group-size other than 64, no --symmetric)"),
        _ => throw new ArgumentException($"--scheme {o.Scheme}: expected rtn or nf4"),
    };

    static int Quantize(AttackOptions o)
    {
        var scheme = SchemeOf(o);
        return ScoreRewrittenWeights(o, "quantized", scheme.Label, [("attack", QuantizeAttack), ("scheme", scheme.Label)], (artifact, source, output) =>
            $"quantised {WriteQuantized(artifact, source, scheme, output)} projection weights of '{source}' ({scheme.Label}); scoring the dequantised model");
    }

    /// <summary>The cast attack (<see cref="PrecisionCast"/>), scored as the quantisation attack is.</summary>
    static int Cast(AttackOptions o)
    {
        var label = PrecisionCast.Label(o.CastTo);
        return ScoreRewrittenWeights(o, "cast", label, [("attack", CastAttack), ("dtype", o.CastTo)], (artifact, source, output) =>
        {
            PrecisionCast.Write(artifact.Config, source, o.CastTo, output);
            return $"cast '{source}' to {o.CastTo}; scoring the cast model";
        });
    }

    /// <summary>An attack that rewrites the weights (<paramref name="rewrite"/>: from the attacked weights to a file, returning
    /// what it did), then scores the rewritten weights with `atu eval` and writes attack.json.</summary>
    static int ScoreRewrittenWeights(AttackOptions o, string kind, string label, (string Key, JsonNode? Value)[] settings, Func<ArtifactModel, string, string, string> rewrite)
    {
        var (before, unlearned) = EarlierResults(o);
        var artifact = ArtifactModel.Open(o.Artifacts);
        var weights = WeightsReport(o, artifact);
        var given = o.Weights;
        o.Name ??= $"{DefaultName(o)} {label}";
        var temporary = StagingFolder(o.Out, kind);
        try
        {
            var source = AttackedWeights(o, artifact, temporary);
            var rewritten = Path.Combine(temporary, ArtifactExporter.WeightsFile);
            AnsiConsole.MarkupLineInterpolated($"[green]{rewrite(artifact, source, rewritten)}[/]");
            o.Weights = rewritten;
            int code = EvalCommand.Run(o);
            if (code != 0) return code;
        }
        finally
        {
            Directory.Delete(temporary, recursive: true);
            o.Weights = given;
        }

        var attacked = ResultsJson.Read(Path.Combine(o.Out, RwkuReports.ResultsFile));
        WriteReport(o, Report(weights, settings), label,
            [("", attacked, AdversarialTypes.OfProbesFile(Path.Combine(o.Out, RwkuReports.ProbesFile)))], before, unlearned);
        return 0;
    }

    /// <summary>The sampling attack: RWKU's probes answered --n times each by temperature/top-p sampling; results.json holds
    /// the best-of-n scores (each probe's highest recall, its answer in probes.jsonl), attack.json the best and the mean.</summary>
    static int Sample(AttackOptions o)
    {
        if (o.Samples < 1) throw new ArgumentException($"--samples {o.Samples}: expected 1 or more");
        NumericOptions.RequireSampling(o.Temperature, o.TopP);   // NaN too (it passed the old range test and crashed on attack.json)
        var (before, unlearned) = EarlierResults(o);
        var label = SampleLabel(o.Samples, o.Temperature, o.TopP);
        o.Name ??= $"{DefaultName(o)} {label}";

        // As `atu eval` reads its inputs.
        var artifact = ArtifactModel.Open(o.Artifacts);
        var tokenizer = RwkuScoring.ChatTokenizer(artifact);
        var dataset = RwkuDataset.Open(o.Rwku);
        var targets = dataset.Select(o.Targets).Select(t => dataset.Load(t, includeMmlu: !o.NoMmlu)).ToList();
        var options = EvalCommand.ProbeOptions(o, tokenizer.ChatFormat);
        var weights = WeightsReport(o, artifact);
        IReadOnlyList<RunEvaluation> samples;
        var temporary = StagingFolder(o.Out, "sampled");
        try
        {
            var source = o.Adapters is null ? o.Weights : AttackedWeights(o, artifact, temporary);
            using var device = o.CreateDevice();
            samples = RwkuScoring.EvaluateSampled(artifact, device, source, targets, options, o.Name, new Sampling(o.Temperature, o.TopP, o.Seed), o.Samples,
                done => AnsiConsole.MarkupLineInterpolated($"sample {done}/{o.Samples} scored"));
        }
        finally { Directory.Delete(temporary, recursive: true); }
        var (best, mean) = SampledAnswers.Combine(samples, o.Name, o.Series);
        RwkuReports.WriteRun(o.Out, best);
        AnsiConsole.Write(ReportCommand.Table([best.Summary]));
        WriteReport(o, Report(weights, ("attack", SampleAttack), ("n", o.Samples), ("temperature", o.Temperature), ("top_p", o.TopP), ("seed", o.Seed)),
            label, [("", best.Summary, AdversarialTypes.Of(best)), ("_mean", mean.Summary, AdversarialTypes.Of(mean))], before, unlearned);
        return 0;
    }

    /// <summary>The values of --examples: distinct counts of 0 or more, in the order given.</summary>
    public static IReadOnlyList<int> ExampleCounts(string examples)
    {
        var counts = examples.Split(',', StringSplitOptions.TrimEntries).Select(part =>
            int.TryParse(part, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var k) ? k
            : throw new ArgumentException($"--examples {examples}: '{part}' is no count of texts (expected e.g. 0,4,16)")).ToList();
        if (counts.Distinct().Count() != counts.Count) throw new ArgumentException($"--examples {examples}: a count is repeated");
        return counts;
    }

    /// <summary>A fresh folder for an attack's full weight files beside <paramref name="output"/> (<see cref="StagingArea"/>:
    /// on the output's file system, never in the system's temporary folder), after removing what killed runs left there.</summary>
    public static string StagingFolder(string output, string kind)
    {
        var full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(output));
        var (parent, name) = (Path.GetDirectoryName(full)!, Path.GetFileName(full));
        Directory.CreateDirectory(parent);
        StagingArea.RemoveLeftovers(parent, name);
        return Directory.CreateDirectory(StagingArea.NewPath(parent, name, kind)).FullName;
    }

    /// <summary>Where relearning on <paramref name="k"/> texts writes `atu eval`'s reports.</summary>
    public static string RelearnFolder(string output, int k) => Path.Combine(output, $"k{k}");

    /// <summary>The relearning attack: for each K, the given weights fine-tuned on K texts (<see cref="RelearnTexts"/>,
    /// <see cref="Relearning"/>), then scored by `atu eval` into &lt;out&gt;/k&lt;K&gt;/, as the quantisation attack scores;
    /// attack.json holds every K's figures (keys suffixed _k&lt;K&gt;) and the loss before and after fine-tuning.</summary>
    static int Relearn(AttackOptions o)
    {
        var counts = ExampleCounts(o.Examples);
        if (!RelearnTexts.Kinds.Contains(o.Data)) throw new ArgumentException($"--data {o.Data}: expected {string.Join(", ", RelearnTexts.Kinds)}");
        // A relearning attack is a short fine-tune (RWKU-style attacks use tens of steps); a huge count is a typo that
        // would hold the machine for days.
        if (o.Steps is < 1 or > MaxRelearnSteps) throw new ArgumentException($"--steps {o.Steps}: expected 1 to {MaxRelearnSteps}");
        if (!(o.LearningRate > 0) || !double.IsFinite(o.LearningRate)) throw new ArgumentException($"--lr {o.LearningRate}: expected a positive number");
        var output = o.Out;
        var (before, unlearned) = EarlierResults(o, [.. counts.Select(k => RelearnFolder(output, k))]);
        var artifact = ArtifactModel.Open(o.Artifacts);
        var dataset = RwkuDataset.Open(o.Rwku);
        var pool = RelearnTexts.Pool(dataset, dataset.Select(o.Targets), o.Data, o.Seed);
        var texts = counts.ToDictionary(k => k, k => RelearnTexts.Take(pool, o.Data, k));   // every K checked before any training
        var weights = o.Weights;
        var label = RelearnLabel(o.Data, o.Steps, o.LearningRate);
        var name = o.Name ?? $"{DefaultName(o)} {label}";
        var report = Report(WeightsReport(o, artifact), ("attack", RelearnAttack), ("data", o.Data), ("examples", new JsonArray([.. counts.Select(k => JsonValue.Create(k))])),
            ("steps", o.Steps), ("lr", o.LearningRate), ("seed", o.Seed));
        var runs = new List<(string Suffix, RunSummary Run, IReadOnlyDictionary<string, double> AaByType)>();
        var temporary = StagingFolder(output, "relearned");
        try
        {
            var source = AttackedWeights(o, artifact, temporary);
            foreach (var k in counts)
            {
                var relearned = Path.Combine(temporary, $"k{k}.safetensors");
                IReadOnlyList<double> losses;
                using (var device = o.CreateDevice())
                    losses = WriteRelearned(artifact, device, source, texts[k], o.Steps, o.LearningRate, o.Seed, relearned);
                if (losses.Count > 0)
                {
                    report[$"loss_first_k{k}"] = losses[0];
                    report[$"loss_last_k{k}"] = losses[^1];
                    AnsiConsole.MarkupLineInterpolated($"[green]relearned[/] on {k} {o.Data} texts, {o.Steps} steps: loss {losses[0]:0.###} -> {losses[^1]:0.###}");
                }
                (o.Weights, o.Out, o.Name) = (relearned, RelearnFolder(output, k), $"{name} k{k}");
                int code = EvalCommand.Run(o);
                if (code != 0) return code;
                runs.Add(($"_k{k}", ResultsJson.Read(Path.Combine(o.Out, RwkuReports.ResultsFile)), AdversarialTypes.OfProbesFile(Path.Combine(o.Out, RwkuReports.ProbesFile))));
                File.Delete(relearned);
            }
        }
        finally
        {
            Directory.Delete(temporary, recursive: true);
            (o.Weights, o.Out, o.Name) = (weights, output, name);
        }
        WriteReport(o, report, label, runs, before, unlearned);
        return 0;
    }

    /// <summary>The column names of `atu report --attacks` (with the key suffixes of attack.json): relearn-forget-s20-lr1E-05,
    /// sample-n16-t1-p0.9.</summary>
    public static string RelearnLabel(string data, long steps, double learningRate) => FormattableString.Invariant($"relearn-{data}-s{steps}-lr{learningRate:G3}");

    public static string SampleLabel(int samples, double temperature, double topP) => FormattableString.Invariant($"sample-n{samples}-t{temperature:0.###}-p{topP:0.###}");

    /// <summary>The projections of <paramref name="source"/> quantised and dequantised by <paramref name="scheme"/>, every
    /// parameter written to <paramref name="output"/> in the artifact's dtype; returns how many weights were quantised.</summary>
    public static int WriteQuantized(ArtifactModel artifact, string source, QuantizationScheme scheme, string output)
    {
        var runType = artifact.Manifest.Dtype == "f16" ? DataType.Float16 : DataType.Float;
        using var checkpoint = SafetensorsCheckpoint.Open(source);
        var specs = DecoderBuilder.Parameters(artifact.Config, runType);
        ArtifactExporter.CheckTensors(checkpoint, specs);
        return WeightQuantization.WriteQuantized(checkpoint, specs, output, runType, scheme).Count;
    }

    /// <summary><paramref name="source"/> fine-tuned on <paramref name="texts"/> (<see cref="Relearning"/>; each text's first
    /// <see cref="RelearnMaxTokens"/> tokens), written to <paramref name="output"/> in the artifact's dtype, as eval reads
    /// weights. Returns the loss of every step.</summary>
    public static IReadOnlyList<double> WriteRelearned(ArtifactModel artifact, ExecutionDevice device, string source, IReadOnlyList<string> texts,
        long steps, double learningRate, long seed, string output)
    {
        var tokenizer = artifact.Tokenizer ?? throw new InvalidOperationException($"'{artifact.Folder}' has no tokenizer files; relearning trains on text");
        int maxTokens = Math.Min(RelearnMaxTokens, artifact.Config.MaxPositionEmbeddings);
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

    /// <summary>Reads --before and --unlearned (both or neither) and refuses to overwrite earlier reports (in --out, or in
    /// each of <paramref name="outputs"/>), before any work.</summary>
    static ((RunSummary Run, string Path)? Before, (RunSummary Run, string Path)? Unlearned) EarlierResults(AttackOptions o, IReadOnlyList<string>? outputs = null)
    {
        if ((o.Before is null) != (o.Unlearned is null))
            throw new ArgumentException("recovery needs both --before (the model before unlearning) and --unlearned (the unlearned model without the attack)");
        // The reports read for recovery, the weights and the data are inputs: an --out that is one of them, lies inside
        // one or holds one would overwrite it (issue 29: --unlearned U --out U --force replaced U's reports).
        OutputPaths.RequireApart(("--out", o.Out), ("--artifacts", o.Artifacts), ("--weights", o.Weights), ("--adapters", o.Adapters),
            ("--rwku", o.Rwku), ("--before", o.Before), ("--unlearned", o.Unlearned));
        var before = o.Before is null ? null : ReadResults(o.Before);
        var unlearned = o.Unlearned is null ? null : ReadResults(o.Unlearned);
        foreach (var folder in outputs ?? [o.Out])
        {
            var resultsPath = Path.Combine(folder, RwkuReports.ResultsFile);
            if (File.Exists(resultsPath) && !o.Force) throw new IOException($"'{resultsPath}' already exists; pass --force to replace the reports in '{folder}'");
        }
        return (before, unlearned);
    }

    /// <summary>The attacked model's name in the reports without --name: `atu eval`'s, with the adapters' file name added.</summary>
    /// <summary>The most optimizer steps a relearning attack takes.</summary>
    public const long MaxRelearnSteps = 100_000;

    static string DefaultName(AttackOptions o) =>
        EvalCommand.DefaultName(o) + (o.Adapters is null ? "" : "+" + Path.GetFileNameWithoutExtension(Path.TrimEndingDirectorySeparator(o.Adapters)));

    /// <summary>The weights an attack starts from: --weights (else the artifact's own), with --adapters merged in when given
    /// (into a file in <paramref name="temporary"/>).</summary>
    static string AttackedWeights(AttackOptions o, ArtifactModel artifact, string temporary)
    {
        var source = o.Weights ?? artifact.PathOf(ArtifactExporter.WeightsFile);
        if (o.Adapters is null) return source;
        if (!File.Exists(o.Adapters)) throw new FileNotFoundException($"--adapters '{o.Adapters}' does not exist (a LoRA run writes {MethodRun.AdaptersFile})", o.Adapters);
        var merged = Path.Combine(temporary, "merged.safetensors");
        using (var device = o.CreateDevice()) LoraAdapters.MergeFiles(device, artifact.Config, source, o.Adapters, merged);
        AnsiConsole.MarkupLineInterpolated($"[green]merged[/] the LoRA adapters of '{o.Adapters}' into '{source}'");
        return merged;
    }

    /// <summary>attack.json's first keys: the attack's settings and the weights attacked (and adapters, when merged in).</summary>
    static JsonObject Report((string Weights, string? Adapters) attacked, params (string Key, JsonNode? Value)[] settings)
    {
        var report = new JsonObject(settings.Select(s => KeyValuePair.Create(s.Key, s.Value)));
        report["weights"] = attacked.Weights;
        if (attacked.Adapters is not null) report["adapters"] = attacked.Adapters;
        return report;
    }

    static (string Weights, string? Adapters) WeightsReport(AttackOptions o, ArtifactModel artifact) =>
        (o.Weights ?? artifact.PathOf(ArtifactExporter.WeightsFile), o.Adapters);

    /// <summary>attack.json: <paramref name="report"/> plus, per scored run (key suffix, summary, AA per attack type),
    /// forget and neighbour All, AA by type (<c>aa_by_type</c>) and, with earlier results, the recovery.</summary>
    static void WriteReport(AttackOptions o, JsonObject report, string label, IReadOnlyList<(string Suffix, RunSummary Run, IReadOnlyDictionary<string, double> AaByType)> runs,
        (RunSummary Run, string Path)? before, (RunSummary Run, string Path)? unlearned)
    {
        Func<RunSummary, AttackRecovery>? recovery = before is not null && unlearned is not null
            ? run => AttackRecovery.Of(before.Value.Run, before.Value.Path, unlearned.Value.Run, unlearned.Value.Path, run) : null;
        WriteReport(o.Out, report, label, o.Series, runs, recovery);
    }

    /// <summary>Adds the figures to <paramref name="report"/> and writes it to <paramref name="folder"/>/attack.json (the
    /// recovery of each run when <paramref name="recovery"/> is given); says each figure on the console.</summary>
    public static void WriteReport(string folder, JsonObject report, string label, string? series,
        IReadOnlyList<(string Suffix, RunSummary Run, IReadOnlyDictionary<string, double> AaByType)> runs, Func<RunSummary, AttackRecovery>? recovery)
    {
        report["label"] = label;   // the column of `atu report --attacks`; the series (method) and weights name its row
        if (series is not null) report["series"] = series;
        foreach (var (suffix, run, aaByType) in runs)
        {
            report["forget_all" + suffix] = run.Mean.ForgetAll;
            report["neighbor_all" + suffix] = run.Mean.NeighborAll;
            report["aa_by_type" + suffix] = new JsonObject(aaByType.Select(t => KeyValuePair.Create(t.Key, (JsonNode?)t.Value)));
            if (aaByType.Count > 0)
                AnsiConsole.MarkupLineInterpolated($"AA{suffix.Replace('_', ' ')} by attack type: {string.Join(", ", aaByType.Select(t => $"{t.Key} {Percent(t.Value)}"))}");
            var line = $"forget All{suffix.Replace('_', ' ')} after {label}: {Percent(run.Mean.ForgetAll)}";
            if (recovery?.Invoke(run) is AttackRecovery figures)
            {
                report["forget_all_before"] = figures.Before;
                report["forget_all_unlearned"] = figures.Unlearned;
                report["recovery" + suffix] = figures.Recovery;
                line += $" (before {Percent(figures.Before)}, unlearned {Percent(figures.Unlearned)}); recovery {(figures.Recovery is double r ? r.ToString("0.000") : "n/a: unlearning changed nothing")}";
            }
            AnsiConsole.MarkupLineInterpolated($"[green]{line}[/]");
        }
        AtomicFile.WriteAllBytes(Path.Combine(folder, ReportFile), System.Text.Encoding.UTF8.GetBytes(
            report.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }) + "\n"));
        AnsiConsole.MarkupLineInterpolated($"wrote {ReportFile} to {folder}");
    }

    static string Percent(double? value) => value is double v ? (100 * v).ToString("0.0") : "n/a";

    static (RunSummary Run, string Path)? ReadResults(string path)
    {
        var file = Directory.Exists(path) ? Path.Combine(path, RwkuReports.ResultsFile) : path;
        if (!File.Exists(file)) throw new FileNotFoundException($"results '{file}' do not exist (write them with `atu eval`)", file);
        return (ResultsJson.Read(file), file);
    }
}
