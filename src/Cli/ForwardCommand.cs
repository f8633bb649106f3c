using AlignThenUnlearn.Models;
using AlignThenUnlearn.Models.Checkpoints;
using AlignThenUnlearn.Runtime;
using CommandLine;
using Spectre.Console;

namespace AlignThenUnlearn.Cli;

[Verb("forward", HelpText = "Run a prompt through an artifact folder and write the logits and every layer's hidden states to a safetensors file.")]
public sealed class ForwardOptions : ModelRunOptions
{
    [Option("prompt", SetName = "text", Required = true, HelpText = "Text to tokenize with the artifact's tokenizer.")]
    public string? Prompt { get; set; }

    [Option("chat", SetName = "text", HelpText = "Wrap the prompt in the family's chat template.")]
    public bool Chat { get; set; }

    [Option("ids", SetName = "ids", Required = true, HelpText = "Comma-separated token ids instead of text.")]
    public string? Ids { get; set; }

    [Option("out", Required = true, HelpText = "Output safetensors file (logits [1,seq,vocab], hidden_states.{k} [1,seq,hidden]).")]
    public string Out { get; set; } = "";

    [Option("force", HelpText = "Overwrite an existing output file.")]
    public bool Force { get; set; }

}

public static class ForwardCommand
{
    public static int Run(ForwardOptions o)
    {
        OutputPaths.RequireApart(("--out", o.Out), ("--artifacts", o.Artifacts), ("--weights", o.Weights));
        if (File.Exists(o.Out) && !o.Force) throw new IOException($"'{o.Out}' already exists; pass --force to overwrite it");
        var model = ArtifactModel.Open(o.Artifacts);
        long[] ids;
        if (o.Ids is not null)
            ids = o.Ids.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
                .Select(s => long.TryParse(s, out var v) ? v : throw new ArgumentException($"--ids: '{s}' is not a token id")).ToArray();
        else
        {
            var tokenizer = model.Tokenizer ?? throw new InvalidOperationException($"'{o.Artifacts}' has no tokenizer files; pass --ids instead of --prompt");
            ids = (o.Chat ? tokenizer.EncodeChatPrompt(o.Prompt!).Ids : tokenizer.EncodeToIds(o.Prompt!)).Select(i => (long)i).ToArray();
        }
        using var device = o.CreateDevice();
        var outputs = model.Forward(device, [ids], o.Weights);
        var sources = outputs.OrderBy(kv => kv.Key, StringComparer.Ordinal)
            .Select(kv => TensorSource.FromArray(kv.Key, kv.Value.Shape, kv.Value.Floats)).ToList();
        SafetensorsWriter.Write(o.Out, sources, new Dictionary<string, string> { ["input_ids"] = string.Join(",", ids) });

        var last = outputs[DecoderGraph.LogitsName].Floats.AsSpan((ids.Length - 1) * model.Config.VocabSize, model.Config.VocabSize).ToArray();
        var top = last.Select((v, i) => (v, i)).OrderByDescending(p => p.v).Take(5).ToList();
        AnsiConsole.MarkupLineInterpolated($"{ids.Length} tokens; wrote {outputs.Count} tensors to {o.Out}");
        AnsiConsole.MarkupLineInterpolated($"most likely next tokens: {string.Join(", ", top.Select(p => $"{p.i} ({Describe(model, p.i)}) {p.v:F3}"))}");
        return 0;
    }

    static string Describe(ArtifactModel model, int id) => model.Tokenizer is { } t ? Markup.Escape(t.Decode([id])) : "-";
}
