using System.Globalization;
using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.Evaluation.ToyWorld;
using AlignThenUnlearn.Models;
using CommandLine;

namespace AlignThenUnlearn.Cli;

/// <summary><c>atu toy</c> runs the embedded default end to end; <c>atu toy STAGE</c> runs one stage. The stage is a
/// positional value rather than a nested verb because CommandLineParser does not nest verbs; the bare
/// <c>atu toy</c> stays the full run.</summary>
[Verb("toy", HelpText = "The embedded default: a fictitious world, a tiny model that knows it, and Align-then-Unlearn run on it. `atu toy` runs everything; `atu toy world` makes only the world.")]
public sealed class ToyOptions
{
    [Value(0, MetaName = "stage", HelpText = "Run only this stage: world (the world's RWKU-style files, training set and tokenizer). Without it: the full run.")]
    public string? Stage { get; set; }

    [Option("seed", Default = 1, HelpText = "Seed of the world (the same seed gives the same files).")]
    public int Seed { get; set; }

    [Option("out", HelpText = "Output folder (the world stage: the world folder, default toy/world).")]
    public string? Out { get; set; }

    [Option("force", HelpText = "Replace an existing output folder.")]
    public bool Force { get; set; }
}

public static class ToyCommand
{
    public const string WorldStage = "world";
    public const string DefaultWorldFolder = "toy/world";

    public static int Run(ToyOptions o) => Run(o, Console.Out, Console.Error);

    public static int Run(ToyOptions o, TextWriter stdout, TextWriter stderr)
    {
        switch (o.Stage)
        {
            case null:
                stderr.WriteLine("atu toy: the full run (world, pre-training, unlearning, report) is not yet available; `atu toy world --seed S --out DIR` makes the world.");
                return 1;
            case WorldStage:
                return World(o, stdout);
            default:
                stderr.WriteLine($"atu toy: unknown stage '{o.Stage}'; the stages are: {WorldStage}");
                return 2;
        }
    }

    static int World(ToyOptions o, TextWriter stdout)
    {
        var output = o.Out ?? DefaultWorldFolder;
        var data = WorldDataset.Build(WorldGenerator.Generate(o.Seed));
        using (var staged = StagedFolder.Create(output, o.Force))
        {
            WorldFolder.Write(data, staged.Staging);
            staged.Commit();
        }
        var tokenizer = LlmTokenizer.Load(Path.Combine(output, WorldFolder.TokenizerFolderName));
        var probes = data.Targets.SelectMany(t => t.Probes).ToList();
        string N(int n) => n.ToString("N0", CultureInfo.InvariantCulture);
        stdout.WriteLine($"wrote {output}: seed {o.Seed}, {N(data.World.People.Count)} people, {N(data.World.Works.Count)} works, {N(data.World.Cities.Count)} cities");
        stdout.WriteLine($"  corpus {N(data.Corpus.Count)} passages; probes: {N(probes.Count(p => p.Set == ProbeSet.Forget))} forget, {N(probes.Count(p => p.Set == ProbeSet.Neighbor))} neighbour, {N(data.Targets.Sum(t => t.Mmlu.Count))} multiple choice");
        stdout.WriteLine($"  training: {N(data.TrainingQuestions.Count)} questions, {N(data.TrainingChoices.Count)} multiple choice; tokenizer: {N(tokenizer.VocabularySize)} ids");
        return 0;
    }
}
