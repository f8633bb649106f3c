using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Runtime;
using CommandLine;
using Spectre.Console;

namespace AlignThenUnlearn.Cli;

[Verb("eval", HelpText = "Score an artifact folder (optionally with trained weights) on RWKU: forget and neighbour probes by ROUGE-L recall, MMLU by next-token logits. Writes results.json, results.md (Table 1 layout) and probes.jsonl.")]
public class EvalOptions : ModelRunOptions
{

    [Option("rwku", Required = true, HelpText = "RWKU folder: per-target folders <n>_<Name>/ and All/.")]
    public string Rwku { get; set; } = "";

    [Option("targets", Default = "1-100", HelpText = "Targets: a number (7), a list (1,5,9), a range (1-100) or both (1-10,15).")]
    public string Targets { get; set; } = "1-100";

    [Option("batch-size", Default = 16, HelpText = "Prompts decoded together (RWKU uses 16).")]
    public int BatchSize { get; set; } = 16;

    [Option("out", Required = true, HelpText = "Folder for results.json, results.md and probes.jsonl.")]
    public string Out { get; set; } = "";

    [Option("force", HelpText = "Replace the reports of an earlier run in --out.")]
    public bool Force { get; set; }

    [Option("name", HelpText = "Run name in the tables and the plot (default: the weights' file name, else the artifact folder's name).")]
    public string? Name { get; set; }

    [Option("series", HelpText = "Series the run belongs to in `atu report`'s plot (e.g. the method; its checkpoints are joined by a line).")]
    public string? Series { get; set; }

    [Option("no-neighbor", HelpText = "Skip the neighbour probes.")]
    public bool NoNeighbor { get; set; }

    [Option("no-mmlu", HelpText = "Skip MMLU.")]
    public bool NoMmlu { get; set; }

    [Option("max-new-tokens", Default = RwkuPrompts.MaxNewTokens, HelpText = "Tokens generated per probe (RWKU: 30).")]
    public int MaxNewTokens { get; set; } = RwkuPrompts.MaxNewTokens;

}

public static class EvalCommand
{
    public static int Run(EvalOptions o)
    {
        if (o.BatchSize < 1) throw new ArgumentException($"--batch-size {o.BatchSize}: expected 1 or more");
        var resultsPath = Path.Combine(o.Out, RwkuReports.ResultsFile);
        if (File.Exists(resultsPath) && !o.Force) throw new IOException($"'{resultsPath}' already exists; pass --force to replace the reports in '{o.Out}'");

        var artifact = ArtifactModel.Open(o.Artifacts);
        var tokenizer = RwkuScoring.ChatTokenizer(artifact);
        var dataset = RwkuDataset.Open(o.Rwku);
        var targets = dataset.Select(o.Targets).Select(t => dataset.Load(t, includeMmlu: !o.NoMmlu)).ToList();
        var name = o.Name ?? (o.Weights is not null ? Path.GetFileNameWithoutExtension(Path.TrimEndingDirectorySeparator(o.Weights))
            : Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(o.Artifacts))));

        var device = o.CreateDevice();
        var options = new RwkuEvaluationOptions
        {
            ChatFormat = tokenizer.ChatFormat,
            BatchSize = o.BatchSize,
            MaxNewTokens = o.MaxNewTokens,
            Neighbor = !o.NoNeighbor,
            Mmlu = !o.NoMmlu,
        };

        RunEvaluation run = null!;
        AnsiConsole.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask($"RWKU on {device.Description}", maxValue: 1);
                run = RwkuScoring.Evaluate(artifact, device, o.Weights, targets, options, name, o.Series, new RwkuScoring.Callback<EvaluationProgress>(p =>
                {
                    task.MaxValue = p.Total;
                    task.Value = p.Done;
                    task.Description = Markup.Escape($"target {p.Target.Number} {p.Target.Name}");
                }));
                task.Value = task.MaxValue;
            });
        RwkuReports.WriteRun(o.Out, run);

        AnsiConsole.Write(ReportCommand.Table([run.Summary]));
        AnsiConsole.MarkupLineInterpolated($"[green]wrote[/] {RwkuReports.ResultsFile}, {RwkuReports.TableFile}, {RwkuReports.ProbesFile} to {o.Out} ({run.Summary.Targets.Count} targets)");
        return 0;
    }
}
