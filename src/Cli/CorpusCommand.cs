using AlignThenUnlearn.Jobs;
using AlignThenUnlearn.Jobs.Corpus;
using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Runtime;
using CommandLine;
using Spectre.Console;

namespace AlignThenUnlearn.Cli;

[Verb("corpus", HelpText = "Write RWKU's kind of model-specific forget corpus (positive_<model>.json: the model's own texts about each target, sampled at temperature 1.0 and top-p 0.9) into each target's RWKU folder, for a preset's forget_corpus.")]
public sealed class CorpusOptions : ModelRunOptions
{
    [Option("rwku", Required = true, HelpText = "RWKU folder (per-target folders <n>_<Name>/); the file is written into each target's folder.")]
    public string Rwku { get; set; } = "";

    [Option("targets", Default = "1-100", HelpText = "Targets: a number (7), a list (1,5,9), a range (1-100) or both.")]
    public string Targets { get; set; } = "1-100";

    [Option("file", Required = true, HelpText = "File name in each target's folder, e.g. positive_mymodel.json (the preset's forget_corpus).")]
    public string File { get; set; } = "";

    [Option("samples", Default = PositiveCorpus.Samples, HelpText = "Texts per target.")]
    public int Samples { get; set; } = PositiveCorpus.Samples;

    [Option("seed", Default = 0, HelpText = "Sampling seed: the same seed gives the same files.")]
    public long Seed { get; set; }

    [Option("temperature", Default = PositiveCorpus.Temperature, HelpText = "Sampling temperature (0: greedy).")]
    public double Temperature { get; set; } = PositiveCorpus.Temperature;

    [Option("top-p", Default = PositiveCorpus.TopP, HelpText = "Nucleus sampling: the most probable tokens whose probabilities reach this together.")]
    public double TopP { get; set; } = PositiveCorpus.TopP;

    [Option("max-new-tokens", Default = PositiveCorpus.MaxNewTokens, HelpText = "Most tokens per text.")]
    public int MaxNewTokens { get; set; } = PositiveCorpus.MaxNewTokens;

    [Option("intros", HelpText = "RWKU's generation/all_intro.json (subject to intros) for the system prompt; without it the prompt names the subject only.")]
    public string? Intros { get; set; }

    [Option("force", HelpText = "Replace files that exist.")]
    public bool Force { get; set; }
}

public static class CorpusCommand
{
    /// <summary>The most texts per target: RWKU's corpora have about 10; far more is a typo that would run for days.</summary>
    public const int MaxSamples = 100_000;

    public static int Run(CorpusOptions o)
    {
        NumericOptions.Require("--samples", o.Samples, 1, MaxSamples, $"1 to {MaxSamples} texts per target");
        NumericOptions.RequireSampling(o.Temperature, o.TopP);
        if (o.MaxNewTokens < 1) throw new ArgumentException($"--max-new-tokens {o.MaxNewTokens}: expected 1 or more");
        if (Path.GetFileName(o.File) != o.File || !o.File.EndsWith(".json", StringComparison.Ordinal))
            throw new ArgumentException($"--file '{o.File}': expected a .json file name, such as positive_mymodel.json");
        if (RwkuDataset.IsDatasetFile(o.File))
            throw new ArgumentException($"--file '{o.File}': that is a file of RWKU's dataset (an input, never an output, also with --force); name the new corpus otherwise, such as positive_mymodel.json");
        var artifact = ArtifactModel.Open(o.Artifacts);
        // The prompt takes at least one token of the context too.
        NumericOptions.Require("--max-new-tokens", o.MaxNewTokens, 1, artifact.Manifest.MaxSequenceLength - 1,
            $"1 to {artifact.Manifest.MaxSequenceLength - 1} (the model's context is {artifact.Manifest.MaxSequenceLength} tokens)");
        var tokenizer = RwkuScoring.ChatTokenizer(artifact);
        var dataset = RwkuDataset.Open(o.Rwku);
        var targets = dataset.Select(o.Targets);
        var existing = targets.Select(t => Path.Combine(t.Folder, o.File)).Where(System.IO.File.Exists).ToList();
        if (existing.Count > 0 && !o.Force) throw new IOException($"'{existing[0]}' already exists ({existing.Count} of the targets' files); pass --force to replace them");
        var intros = o.Intros is null ? [] : PositiveCorpus.ReadIntros(o.Intros);

        using var device = o.CreateDevice();
        new CorpusJob(o.Weights, o.File, intros, o.Samples, o.MaxNewTokens, new Sampling(o.Temperature, o.TopP, o.Seed))
            .Write(artifact, tokenizer, targets, device, new ConsoleReporter());
        AnsiConsole.MarkupLineInterpolated($"[green]wrote[/] {o.File} ({o.Samples} texts) into {targets.Count} target folders of {o.Rwku}");
        return 0;
    }
}
