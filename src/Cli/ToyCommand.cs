using System.Globalization;
using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.Jobs.Toy;
using AlignThenUnlearn.ToyWorld;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Runtime;
using CommandLine;
using Spectre.Console;

namespace AlignThenUnlearn.Cli;

/// <summary><c>atu toy</c> runs the embedded default end to end; <c>atu toy STAGE</c> runs one stage. The stage is a
/// positional value rather than a nested verb because CommandLineParser does not nest verbs; the bare
/// <c>atu toy</c> stays the full run.</summary>
[Verb("toy", HelpText = "The embedded default: a fictitious world, a tiny model that knows it, and Align-then-Unlearn and the baselines run on it side by side. `atu toy` runs everything; `atu toy world` makes only the world; `atu toy pretrain` pre-trains the tiny model on a world.")]
public sealed class ToyOptions
{
    [Value(0, MetaName = "stage", HelpText = "Run only this stage: world (the world's RWKU-style files, training set and tokenizer) or pretrain (the tiny model, as an artifact folder). Without it: the full run.")]
    public string? Stage { get; set; }

    [Option("seed", Default = 1, HelpText = "Seed of the world (world), of the initial weights and data order (pretrain): the same seed gives the same files.")]
    public int Seed { get; set; }

    [Option("out", HelpText = "Output folder (the full run: default toy; world: the world folder, default toy/world; pretrain: the artifact folder, default toy/model).")]
    public string? Out { get; set; }

    [Option("force", HelpText = "Replace an existing output folder (the full run: start afresh instead of reusing finished stages; pretrain: and over an unfinished run).")]
    public bool Force { get; set; }

    [Option("world", HelpText = "pretrain: the world folder to train on (default toy/world).")]
    public string? World { get; set; }

    [Option("steps", HelpText = "pretrain: optimizer steps (default: the tuned setting).")]
    public long? Steps { get; set; }

    [Option("resume", HelpText = "pretrain: continue an unfinished run from its newest checkpoint (kept in OUT.training/).")]
    public bool Resume { get; set; }

    [Option("seeds", Separator = ',', HelpText = "The full run on several worlds (e.g. 1,2,3; overrides --seed): each seed's full run in OUT/seed-N/, then the equal-forgetting comparison pooled over every world's people in OUT/report/.")]
    public IEnumerable<int> Seeds { get; set; } = [];

    [Option("people", Default = 5, HelpText = "The full run: how many people each method unlearns, one person per run (chosen by the seed).")]
    public int People { get; set; } = 5;

    [Option("methods", Separator = ',', HelpText = nameof(MethodHelp.ToyMethods), ResourceType = typeof(MethodHelp))]
    public IEnumerable<string> Methods { get; set; } = [];

    [Option("check", HelpText = "The full run: exit with code 3 when the acceptance figures of the model before or of Align-then-Unlearn are not met (CI uses it); the baselines' figures are reported only.")]
    public bool Check { get; set; }

    [Option("attacks", HelpText = "The full run: then attack every method's strongest checkpoint (int8/int4/NF4 quantisation, relearning on the person's forget passages, sampling) and write report/robustness.md and robustness.png; finished attacks are reused.")]
    public bool Attacks { get; set; }

    [Option("device", Default = "auto", HelpText = "cpu, cuda or auto (CUDA when its provider loads, else the CPU with a notice).")]
    public string Device { get; set; } = "auto";

    [Option("threads", Default = 1, HelpText = "Intra-op threads. 1 by default: with more, ONNX Runtime's CPU kernels do not give bit-identical weights from run to run (and on two shared cores they were no faster); 0: ONNX Runtime's default. Pre-training runs each batch as two pieces at once, each with these threads (two cores at 1), deterministically.")]
    public int Threads { get; set; } = 1;

    [Option("jobs", Default = 2, HelpText = "The full run: how many (person, method) unlearning runs, and then with --attacks how many runs' attacks, go at once, each with --threads intra-op threads; every run is independent, so the reports are the same for any number.")]
    public int Jobs { get; set; } = 2;
}

public static class ToyCommand
{
    public const string WorldStage = "world", PretrainStage = "pretrain";
    public const string DefaultRoot = "toy", DefaultWorldFolder = "toy/world", DefaultModelFolder = "toy/model";

    public static int Run(ToyOptions o) => Run(o, Console.Out, Console.Error);

    public static int Run(ToyOptions o, TextWriter stdout, TextWriter stderr)
    {
        switch (o.Stage)
        {
            case null:
                return Full(o);
            case WorldStage:
                return World(o, stdout);
            case PretrainStage:
                return Pretrain(o);
            default:
                stderr.WriteLine($"atu toy: unknown stage '{o.Stage}'; the stages are: {WorldStage}, {PretrainStage}");
                return 2;
        }
    }

    static int Full(ToyOptions o)
    {
        if (o.People < 1) throw new ArgumentException($"--people {o.People}: expected 1 or more");
        var methods = ToyRun.ParseMethods(o.Methods);
        if (o.Jobs < 1) throw new ArgumentException($"--jobs {o.Jobs}: expected 1 or more");
        var seeds = o.Seeds.ToList();
        if (seeds.Distinct().Count() != seeds.Count) throw new ArgumentException($"--seeds {string.Join(",", seeds)} names a seed twice");
        var root = o.Out ?? DefaultRoot;
        if (o.Force && Directory.Exists(root)) Directory.Delete(root, recursive: true);
        using var device = ExecutionDevice.Create(o.Device, o.Threads, ModelRunOptions.Notice);
        var reporter = new ConsoleReporter();
        // Every world's run in full (its own report), then the equal-forgetting comparison pooled over their people.
        bool accepted = true;
        foreach (var seed in seeds.Count == 0 ? [o.Seed] : seeds)
            accepted &= ToyRun.Run(seeds.Count == 0 ? root : ToyPooledReport.SeedFolder(root, seed), seed, o.People, device, Settings(o, seed),
                methods, o.Jobs, o.Attacks, reporter).Accepted;
        if (seeds.Count > 0) AnsiConsole.MarkupLineInterpolated($"[green]wrote[/] {ToyPooledReport.Write(root, seeds)}");
        if (!o.Check || accepted) return 0;
        AnsiConsole.MarkupLine($"[red]the acceptance figures of the toy run are not met[/] (the model before, or {ToyReport.CheckedMethod}'s; see the report)");
        return 3;
    }

    static ToyPretrainingSettings Settings(ToyOptions o, int seed)
    {
        var settings = new ToyPretrainingSettings { Seed = seed };
        return o.Steps is long steps ? settings with { Steps = steps } : settings;
    }

    static int World(ToyOptions o, TextWriter stdout)
    {
        var output = o.Out ?? DefaultWorldFolder;
        var data = WorldDataset.Build(WorldGenerator.Generate(o.Seed));
        ToyStages.WriteWorld(data, output, o.Force);
        var tokenizer = LlmTokenizer.Load(Path.Combine(output, WorldFolder.TokenizerFolderName));
        var probes = data.Targets.SelectMany(t => t.Probes).ToList();
        string N(int n) => n.ToString("N0", CultureInfo.InvariantCulture);
        stdout.WriteLine($"wrote {output}: seed {o.Seed}, {N(data.World.People.Count)} people, {N(data.World.Works.Count)} works, {N(data.World.Cities.Count)} cities");
        stdout.WriteLine($"  corpus {N(data.Corpus.Count)} passages; probes: {N(probes.Count(p => p.Set == ProbeSet.Forget))} forget, {N(probes.Count(p => p.Set == ProbeSet.Neighbor))} neighbour, {N(data.Targets.Sum(t => t.Mmlu.Count))} multiple choice");
        stdout.WriteLine($"  training: {N(data.TrainingQuestions.Count)} questions, {N(data.TrainingChoices.Count)} multiple choice; tokenizer: {N(tokenizer.VocabularySize)} ids");
        return 0;
    }

    static int Pretrain(ToyOptions o)
    {
        var world = o.World ?? DefaultWorldFolder;
        var output = o.Out ?? DefaultModelFolder;
        var settings = new ToyPretrainingSettings { Seed = o.Seed };
        if (o.Steps is long steps)
            settings = steps >= 1 ? settings with { Steps = steps } : throw new ArgumentException($"--steps {steps}: expected 1 or more");
        using var device = ExecutionDevice.Create(o.Device, o.Threads, ModelRunOptions.Notice);
        ToyStages.Pretrain(world, output, settings, device, o.Resume, o.Force, new ConsoleReporter());
        return 0;
    }
}
