using AlignThenUnlearn.Models;
using AlignThenUnlearn.Models.Checkpoints;
using CommandLine;
using Spectre.Console;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Cli;

[Verb("export", HelpText = "Turn a Hugging Face snapshot (or a random checkpoint of a configuration) into an artifact folder that every other verb runs from.")]
public sealed class ExportOptionsCli
{
    [Option("hf", SetName = "hf", Required = true, HelpText = "Hugging Face folder: config.json, *.safetensors (+ index), tokenizer files.")]
    public string? HfFolder { get; set; }

    [Option("random", SetName = "random", Required = true, HelpText = "A config.json (e.g. models/tiny-phi3.json): export random weights of that configuration.")]
    public string? RandomConfig { get; set; }

    [Option("encoder", SetName = "encoder", Required = true, HelpText = "Add a sentence encoder to the existing artifact folder --out: an encoder folder (model.onnx, vocab.txt) or 'minilm' (all-MiniLM-L6-v2, shipped with atu).")]
    public string? Encoder { get; set; }

    [Option("device", Default = "auto", HelpText = "cpu, cuda or auto: where --encoder's test sentence is embedded.")]
    public string Device { get; set; } = "auto";

    [Option("seed", Default = 0UL, HelpText = "Seed of the random weights (with --random).")]
    public ulong Seed { get; set; }

    [Option("out", Required = true, HelpText = "Artifact folder to create.")]
    public string Out { get; set; } = "";

    [Option("dtype", Default = "f32", HelpText = "Run dtype of weights and graphs: f32 or f16.")]
    public string Dtype { get; set; } = "f32";

    [Option("layer", HelpText = "Hidden-state index that feeds the embedding head (Hugging Face indexing), recorded in the manifest.")]
    public int? Layer { get; set; }

    [Option("max-seq-len", HelpText = "Longest sequence (past plus new tokens) the graphs serve (default: max_position_embeddings).")]
    public int? MaxSequenceLength { get; set; }

    [Option("force", HelpText = "Replace an existing output folder.")]
    public bool Force { get; set; }
}

public static class ExportCommand
{
    public static int Run(ExportOptionsCli o)
    {
        if (o.Encoder is not null)
        {
            var device = Runtime.ExecutionDevice.Create(o.Device, notice: m => AnsiConsole.MarkupLineInterpolated($"[yellow]{m}[/]"));
            var dimension = Runtime.EncoderInstaller.Install(o.Out, o.Encoder, device, o.Force);
            AnsiConsole.MarkupLineInterpolated($"[green]added[/] encoder '{o.Encoder}' ({dimension}-d, mean pooling) to {o.Out}");
            return 0;
        }
        var options = new ExportOptions
        {
            ElementType = o.Dtype switch { "f32" => DataType.Float, "f16" => DataType.Float16, _ => throw new ArgumentException($"--dtype {o.Dtype}: expected f32 or f16") },
            Layer = o.Layer,
            MaxSequenceLength = o.MaxSequenceLength,
            Force = o.Force,
        };
        string? temporary = null;
        var source = o.HfFolder;
        if (o.RandomConfig is not null)
        {
            var config = HfConfig.Load(o.RandomConfig);
            temporary = Directory.CreateTempSubdirectory("atu-random-checkpoint-").FullName;
            RandomCheckpoint.Write(config, temporary, o.Seed);
            source = temporary;
        }
        try
        {
            ArtifactManifest manifest = null!;
            AnsiConsole.Progress().Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
                .Start(ctx =>
                {
                    var task = ctx.AddTask("converting weights", maxValue: 1);
                    manifest = ArtifactExporter.Export(source!, o.Out, options, (_, fraction) => task.Value = fraction);
                    task.Value = 1;
                });
            var table = new Table().AddColumns("file", "bytes", "sha256");
            foreach (var f in manifest.Files) table.AddRow(f.Path, f.Bytes.ToString("N0"), f.Sha256[..16] + "…");
            AnsiConsole.Write(table);
            AnsiConsole.MarkupLineInterpolated($"[green]wrote[/] {o.Out}: {manifest.Family}, {manifest.Dtype}, {manifest.Files.Sum(f => f.Bytes):N0} bytes");
            return 0;
        }
        finally
        {
            if (temporary is not null) Directory.Delete(temporary, recursive: true);
        }
    }
}
