using System.Reflection;
using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.Evaluation.Attacks;
using AlignThenUnlearn.Jobs;
using AlignThenUnlearn.Jobs.Artifacts;
using AlignThenUnlearn.Jobs.Attacks;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Runtime;
using CommandLine;
using CommandLine.Text;
using Spectre.Console;

namespace AlignThenUnlearn.Cli;

/// <summary>`atu attack` in `atu --help`'s list of verbs; the command line itself is parsed by <see cref="AttackCommand"/>
/// (the kind first, then that kind's options: CommandLineParser does not nest verbs).</summary>
[Verb("attack", HelpText = "Attack an unlearned model and score it on RWKU as `atu eval` does: `atu attack quantize` quantises the decoder layers' linear weights (RTN int8/int4 or NF4) and dequantises them back; `atu attack sample` answers every probe --n times by seeded temperature/top-p sampling and scores the best and the mean recall; `atu attack relearn` fine-tunes on K texts (--data forget|neighbour|unrelated, --examples K,K2,...) with next-token loss and AdamW, then scores each; `atu attack cast` rounds the weights to f16 or bf16 (--to), as a deployment that casts the model holds them. Writes eval's reports and attack.json (forget All after the attack; recovery with --before and --unlearned). `atu attack KIND --help` lists a kind's options.")]
public sealed class AttackVerb
{
    [Value(0, MetaName = "attack", Required = true, HelpText = "quantize, sample, relearn or cast.")]
    public string Kind { get; set; } = "";
}

public static class AttackCommand
{
    /// <summary>The attack kinds and their options classes, one line each (the kind's work is its file under src/Jobs/Attacks).</summary>
    static readonly IReadOnlyList<IKind> Kinds =
    [
        new Kind<QuantizeAttackOptions>(QuantizeAttack.Name),
        new Kind<SampleAttackOptions>(SampleAttack.Name),
        new Kind<RelearnAttackOptions>(RelearnAttack.Name),
        new Kind<CastAttackOptions>(CastAttack.Name),
    ];

    public static IReadOnlyList<string> KindNames => [.. Kinds.Select(k => k.Name)];

    /// <summary>`atu attack KIND OPTIONS...` (the arguments after "attack"): parsed, then run. A bad command line prints one
    /// line (or the help) to standard error with exit code 2; --help prints the help with exit code 0.</summary>
    public static int Dispatch(string[] args, TextWriter stdout, TextWriter stderr)
    {
        var kind = args.Length > 0 ? Kinds.FirstOrDefault(k => k.Name == args[0]) : null;
        if (kind is null)
        {
            bool requested = args is ["--help"] or ["help"];
            (requested ? stdout : stderr).WriteLine(args.Length == 0 || requested
                ? $"atu attack KIND [options]: KIND is one of {string.Join(", ", KindNames)}; `atu attack KIND --help` lists its options."
                : UnknownKind(args[0]));
            return requested ? 0 : 2;
        }
        var (options, error, help) = kind.Parse(args[1..]);
        if (options is not null) return Run(options);
        if (error is null) { stdout.WriteLine(help); return 0; }
        stderr.WriteLine(error);
        return 2;
    }

    /// <summary>The options of `atu attack KIND OPTIONS...` (the arguments after "attack"); a bad command line is refused
    /// with an <see cref="ArgumentException"/> saying why (an option of another kind names both).</summary>
    public static AttackOptions Parse(params string[] args)
    {
        var kind = args.Length > 0 ? Kinds.FirstOrDefault(k => k.Name == args[0]) : null;
        if (kind is null) throw new ArgumentException(args.Length == 0 ? "atu attack: no attack kind given" : UnknownKind(args[0]));
        var (options, error, _) = kind.Parse(args[1..]);
        return options ?? throw new ArgumentException(error ?? $"atu attack {kind.Name}: help requested");
    }

    /// <summary>The options of `atu attack <paramref name="kind"/>` as docs/cli.md shows them.</summary>
    public static string KindHelp(string kind) => Kinds.Single(k => k.Name == kind).Help();

    static string UnknownKind(string kind) => $"atu attack: unknown attack '{kind}'; the attacks are: {string.Join(", ", KindNames)}";

    public static int Run(AttackOptions o)
    {
        if (o.Suite is not null || o.Tasks is not null)
            throw new ArgumentException($"atu attack {o.Kind} scores RWKU's probes as `atu eval` does without a suite; --suite and --tasks are `atu eval`'s");
        EvalCommand.CheckCounts(o);
        var attack = o.CreateAttack();   // the kind's own options checked before anything is read
        var (before, unlearned) = EarlierResults(o, [.. attack.Runs.Select(r => Path.Combine(o.Out, r.Folder))]);
        var artifact = ArtifactModel.Open(o.Artifacts);
        var tokenizer = RwkuScoring.ChatTokenizer(artifact);
        var dataset = RwkuDataset.Open(o.Rwku);
        var targets = dataset.Select(o.Targets);
        var data = targets.Select(t => dataset.Load(t, includeMmlu: !o.NoMmlu)).ToList();
        if (attack is RelearnAttack relearn) relearn.Texts(dataset, targets);   // every K checked before any training
        using var device = o.CreateDevice();
        var runs = new AttackJob
        {
            Artifact = artifact, Weights = o.Weights, Adapters = o.Adapters, Dataset = dataset, Targets = targets, Data = data,
            Options = EvalCommand.ProbeOptions(o, tokenizer.ChatFormat), Name = o.Name ?? $"{DefaultName(o)} {attack.Label}", Series = EvalCommand.SeriesOf(o, o.Adapters ?? o.Weights), Out = o.Out,
            Recovery = before is not null && unlearned is not null
                ? run => AttackRecovery.Of(before.Value.Run, before.Value.Path, unlearned.Value.Run, unlearned.Value.Path, run) : null,
        }.Run(attack, device, new ConsoleReporter());
        AnsiConsole.Write(ReportCommand.Table(runs.Select(r => r.Evaluation.Summary)));
        return 0;
    }

    /// <summary>Reads --before and --unlearned (both or neither) and refuses to overwrite earlier reports in any of
    /// <paramref name="outputs"/>, before any work.</summary>
    static ((RunSummary Run, string Path)? Before, (RunSummary Run, string Path)? Unlearned) EarlierResults(AttackOptions o, IReadOnlyList<string> outputs)
    {
        if ((o.Before is null) != (o.Unlearned is null))
            throw new ArgumentException("recovery needs both --before (the model before unlearning) and --unlearned (the unlearned model without the attack)");
        // The reports read for recovery, the weights and the data are inputs: an --out that is one of them, lies inside
        // one or holds one would overwrite it (issue 29: --unlearned U --out U --force replaced U's reports).
        OutputPaths.RequireApart(("--out", o.Out), ("--artifacts", o.Artifacts), ("--weights", o.Weights), ("--adapters", o.Adapters),
            ("--rwku", o.Rwku), ("--before", o.Before), ("--unlearned", o.Unlearned));
        var before = o.Before is null ? null : ReadResults(o.Before);
        var unlearned = o.Unlearned is null ? null : ReadResults(o.Unlearned);
        foreach (var folder in outputs)
        {
            var resultsPath = Path.Combine(folder, RwkuReports.ResultsFile);
            if (File.Exists(resultsPath) && !o.Force) throw new IOException($"'{resultsPath}' already exists; pass --force to replace the reports in '{folder}'");
        }
        return (before, unlearned);
    }

    /// <summary>The attacked model's name in the reports without --name: `atu eval`'s, with the adapters' file name added.</summary>
    static string DefaultName(AttackOptions o) =>
        EvalCommand.DefaultName(o) + (o.Adapters is null ? ""
            : "+" + (RunRecords.CheckpointName(o.Adapters) ?? Path.GetFileNameWithoutExtension(Path.TrimEndingDirectorySeparator(o.Adapters))));

    static (RunSummary Run, string Path)? ReadResults(string path)
    {
        var file = Directory.Exists(path) ? Path.Combine(path, RwkuReports.ResultsFile) : path;
        if (!File.Exists(file)) throw new FileNotFoundException($"results '{file}' do not exist (write them with `atu eval`)", file);
        return (ResultsJson.Read(file), file);
    }

    interface IKind
    {
        string Name { get; }
        /// <summary>The long and short names of the options this kind declares itself (not the common ones).</summary>
        IReadOnlyList<string> OwnOptions { get; }
        /// <summary>The options, or why not (null with the help when help was asked for).</summary>
        (AttackOptions? Options, string? Error, string Help) Parse(string[] args);
        string Help();
    }

    sealed class Kind<T>(string name) : IKind where T : AttackOptions, new()
    {
        public string Name => name;

        public IReadOnlyList<string> OwnOptions { get; } = [.. typeof(T).GetProperties(BindingFlags.Public | BindingFlags.Instance | BindingFlags.DeclaredOnly)
            .Select(p => p.GetCustomAttribute<OptionAttribute>()).OfType<OptionAttribute>()
            .SelectMany(a => new[] { a.LongName, a.ShortName }).Where(n => !string.IsNullOrEmpty(n))];

        public string Help() => CliDocs.Render(parser => parser.ParseArguments<T>(["--help"]));

        public (AttackOptions? Options, string? Error, string Help) Parse(string[] args)
        {
            using var parser = new Parser(settings => settings.HelpWriter = null);
            var result = parser.ParseArguments<T>(args);
            if (result is Parsed<T> parsed) return (parsed.Value, null, "");
            var errors = ((NotParsed<T>)result).Errors.ToList();
            var help = HelpText.AutoBuild(result).ToString();
            if (errors.IsHelp()) return (null, null, help);
            // An option of another kind: each kind takes only its own (issue 29: `sample --bits 8` ran and ignored it).
            foreach (var token in errors.OfType<UnknownOptionError>().Select(e => e.Token))
            {
                var dashes = token.Length == 1 ? "-" : "--";
                var owners = Kinds.Where(k => k.Name != name && k.OwnOptions.Contains(token)).Select(k => k.Name).ToList();
                return (null, owners.Count > 0
                    ? $"atu attack {name}: {dashes}{token} is an option of `atu attack {string.Join("` and `atu attack ", owners)}`, not of {name}; each attack kind takes only its own options (`atu attack {name} --help`)"
                    : $"atu attack {name}: unknown option {dashes}{token} (`atu attack {name} --help` lists the options)", help);
            }
            return (null, $"atu attack {name}: {string.Join("; ", errors.Select(Describe))}\n{help}", help);
        }

        static string Describe(Error e) => e switch
        {
            MissingRequiredOptionError m => $"--{m.NameInfo.LongName} is required",
            BadFormatConversionError b => $"--{b.NameInfo.LongName}: bad value",
            _ => e.Tag.ToString(),
        };
    }
}
