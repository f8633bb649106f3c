using AlignThenUnlearn.Models;
using AlignThenUnlearn.Models.Quantization;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Jobs.Artifacts;
using CommandLine;
using Spectre.Console;

namespace AlignThenUnlearn.Cli;

[Verb("ship", HelpText = "Write the trained model as a deployable folder: ONNX for ONNX Runtime GenAI and/or Hugging Face safetensors, with a model card.")]
public sealed class ShipOptionsCli
{
    [Option("artifacts", Required = true, HelpText = "Artifact folder the model was trained from (written by `atu export`).")]
    public string Artifacts { get; set; } = "";

    [Option("weights", Required = true, HelpText = "Trained weights: a safetensors file, or a folder or index of shards, with Hugging Face tensor names.")]
    public string Weights { get; set; } = "";

    [Option("out", Required = true, HelpText = "Folder to create.")]
    public string Out { get; set; } = "";

    [Option("format", Default = "both", HelpText = "onnx, safetensors or both.")]
    public string Format { get; set; } = "both";

    [Option("dtype", HelpText = "Shipped dtype: f32 or f16 (bf16 for safetensors only). Default: ONNX in the artifact's dtype, safetensors in config.json's torch_dtype.")]
    public string? Dtype { get; set; }

    [Option("target", HelpText = "The unlearning target, for the model card (overrides \"target\" of --card-json).")]
    public string? Target { get; set; }

    [Option("card-json", HelpText = "JSON with base_model, target, method, hyperparameters and results for the model card (each optional).")]
    public string? CardJson { get; set; }

    [Option("force", HelpText = "Replace an existing output folder.")]
    public bool Force { get; set; }

    [Option("quantize", HelpText = "int4: the ONNX model's decoder-layer projections as 4-bit MatMulNBits (ONNX Runtime's contrib op; embeddings, norms and lm_head stay in --dtype).")]
    public string? Quantize { get; set; }

    [Option("block-size", HelpText = "--quantize int4: values per block along the input dimension: 16, 32 (the default), 64, 128 or 256 (what ONNX Runtime's MatMulNBits kernels run; GenAI's builder uses 32).")]
    public int? BlockSize { get; set; }

    /// <summary>The int4 block size when --block-size is not given (GenAI's builder's).</summary>
    public const int DefaultBlockSize = 32;

    [Option("symmetric", HelpText = "--quantize int4: symmetric blocks (absmax / 7, zero point 8) instead of asymmetric ones (min/max, a zero point per block).")]
    public bool Symmetric { get; set; }
}

public static class ShipCommand
{
    public static int Run(ShipOptionsCli o)
    {
        // Options of int4 without it were silently ignored (issue 29: `ship --block-size 64` shipped f32 projections).
        if (o.Quantize is null && o.BlockSize is not null) throw new ArgumentException($"--block-size {o.BlockSize} sets the blocks of --quantize int4; add --quantize int4 or leave it out");
        if (o.Quantize is null && o.Symmetric) throw new ArgumentException("--symmetric sets the blocks of --quantize int4; add --quantize int4 or leave it out");
        OutputPaths.RequireApart(("--out", o.Out), ("--artifacts", o.Artifacts), ("--weights", o.Weights), ("--card-json", o.CardJson));
        var card = o.CardJson is null ? new ModelCardFacts() : ModelCardFacts.Load(o.CardJson);
        // Facts --card-json leaves out come from the records of the run that wrote the weights, where there is one.
        var recorded = RunRecords.Of(o.Weights);
        card = card with
        {
            Target = o.Target ?? card.Target ?? recorded?.Target,
            Method = card.Method ?? recorded?.Method,
        };
        var options = new ShipOptions
        {
            Format = o.Format switch
            {
                "onnx" => ShipFormat.Onnx,
                "safetensors" => ShipFormat.Safetensors,
                "both" => ShipFormat.Both,
                _ => throw new ArgumentException($"--format {o.Format}: expected onnx, safetensors or both"),
            },
            Dtype = o.Dtype is null ? null : ModelShipper.ParseDtype(o.Dtype),
            Force = o.Force,
            Card = card,
            Int4BlockSize = o.Quantize switch
            {
                null => null,
                "int4" => MatMulNBitsWeights.BlockSizes.Contains(o.BlockSize ?? ShipOptionsCli.DefaultBlockSize) ? o.BlockSize ?? ShipOptionsCli.DefaultBlockSize
                    : throw new ArgumentException($"--block-size {o.BlockSize}: expected a power of two from 16 to 256 ({MatMulNBitsWeights.BlockSizesText}), the block sizes ONNX Runtime's MatMulNBits kernels run"),
                _ => throw new ArgumentException($"--quantize {o.Quantize}: expected int4"),
            },
            Int4Symmetric = o.Symmetric,
        };
        // ONNX Runtime loads the model once before the folder is declared done: what ships is what it can run.
        if (options.Format != ShipFormat.Safetensors) options = options with { LoadCheck = ShippedModel.CheckLoads };
        if (options.Int4BlockSize is not null && options.Format == ShipFormat.Safetensors)
            throw new ArgumentException("--quantize int4 quantises the ONNX model; add --format onnx or both");
        var result = ModelShipper.Ship(o.Artifacts, o.Weights, o.Out, options);
        if (result.IgnoredTensors.Count > 0)
            AnsiConsole.MarkupLineInterpolated($"[yellow]note:[/] {result.IgnoredTensors.Count} tensor(s) of --weights are no decoder parameter and were not shipped: {string.Join(", ", result.IgnoredTensors.Take(5))}{(result.IgnoredTensors.Count > 5 ? ", ..." : "")}");
        foreach (var warning in result.Warnings) AnsiConsole.MarkupLineInterpolated($"[yellow]note:[/] {warning}");
        var table = new Table().AddColumns("file", "bytes", "sha256");
        foreach (var f in result.Files) table.AddRow(f.Path, f.Bytes.ToString("N0"), f.Sha256[..16] + "…");
        AnsiConsole.Write(table);
        var formats = string.Join(", ", new[] { result.OnnxDtype is { } x ? $"onnx {x.ToString().ToLowerInvariant()}{(options.Int4BlockSize is int b ? $" + int4 projections (block {b})" : "")}" : null, result.SafetensorsDtype is { } s ? $"safetensors {s.ToString().ToLowerInvariant()}" : null }.OfType<string>());
        AnsiConsole.MarkupLineInterpolated($"[green]wrote[/] {o.Out}: {formats}, model card {ModelCard.FileName}");
        return 0;
    }
}
