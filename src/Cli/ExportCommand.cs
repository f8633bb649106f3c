using AlignThenUnlearn.Models;
using AlignThenUnlearn.Jobs.Artifacts;
using CommandLine;
using Spectre.Console;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Cli;

[Verb("export", HelpText = "Turn a Hugging Face snapshot (or a random checkpoint of a configuration) into an artifact folder that every other verb runs from; add a sentence encoder to it.")]
public sealed class ExportOptionsCli
{
    [Option("hf", HelpText = "Hugging Face folder: config.json, *.safetensors (+ index), tokenizer files.")]
    public string? HfFolder { get; set; }

    [Option("random", HelpText = "A config.json (e.g. models/tiny-phi3.json): export random weights of that configuration.")]
    public string? RandomConfig { get; set; }

    [Option("encoder", HelpText = "A sentence encoder for the artifact folder, checked by embedding a test sentence: a sentence-transformers ONNX folder (model.onnx or onnx/model.onnx, vocab.txt, its tokenizer and pooling configuration) or 'minilm' (all-MiniLM-L6-v2, shipped with atu). With --hf or --random it goes into the new folder; alone, into the existing folder --out.")]
    public string? Encoder { get; set; }

    [Option("device", Default = "auto", HelpText = "cpu, cuda or auto: where --encoder's test sentence is embedded.")]
    public string Device { get; set; } = "auto";

    [Option("seed", Default = 0UL, HelpText = "Seed of the random weights (with --random).")]
    public ulong Seed { get; set; }

    [Option("out", Required = true, HelpText = "Artifact folder to create (or, with --encoder alone, to add the encoder to).")]
    public string Out { get; set; } = "";

    [Option("dtype", Default = "f32", HelpText = "Run dtype of weights and graphs: f32 or f16.")]
    public string Dtype { get; set; } = "f32";

    [Option("layer", HelpText = "Hidden-state index that feeds the embedding head (Hugging Face indexing), recorded in the manifest.")]
    public int? Layer { get; set; }

    [Option("max-seq-len", HelpText = "Longest sequence (past plus new tokens) the graphs serve (default: max_position_embeddings).")]
    public int? MaxSequenceLength { get; set; }

    [Option("force", HelpText = "Replace an existing output folder (with --encoder alone: an existing encoder).")]
    public bool Force { get; set; }
}

public static class ExportCommand
{
    public static int Run(ExportOptionsCli o)
    {
        bool exportsModel = o.HfFolder is not null || o.RandomConfig is not null;
        if (o.HfFolder is not null && o.RandomConfig is not null || !exportsModel && o.Encoder is null)
            throw new ArgumentException("give one of --hf and --random (optionally with --encoder), or --encoder alone to add an encoder to --out");
        OutputPaths.RequireApart(("--out", o.Out), ("--hf", o.HfFolder), ("--random", o.RandomConfig),
            ("--encoder", o.Encoder is { } e && (Directory.Exists(e) || File.Exists(e)) ? e : null));   // not 'minilm', the name of the shipped encoder
        var options = new ExportOptions
        {
            ElementType = o.Dtype switch { "f32" => DataType.Float, "f16" => DataType.Float16, _ => throw new ArgumentException($"--dtype {o.Dtype}: expected f32 or f16") },
            Layer = o.Layer,
            MaxSequenceLength = o.MaxSequenceLength,
            Force = o.Force,
        };
        using var device = Runtime.ExecutionDevice.Create(o.Device, notice: ModelRunOptions.Notice);
        var manifest = new ExportJob(o.HfFolder, o.RandomConfig, o.Seed, o.Encoder, o.Out, options).Run(device, new ConsoleReporter());
        if (manifest is not null)
        {
            var table = new Table().AddColumns("file", "bytes", "sha256");
            foreach (var f in manifest.Files) table.AddRow(f.Path, f.Bytes.ToString("N0"), f.Sha256[..16] + "…");
            AnsiConsole.Write(table);
        }
        return 0;
    }
}
