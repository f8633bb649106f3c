using System.Diagnostics;
using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Runtime;
using CommandLine;

namespace AlignThenUnlearn.Cli;

[Verb("generate", HelpText = "Greedy continuation of a prompt by an artifact folder's model (KV cache), printed as it is generated.")]
public sealed class GenerateOptions : ModelRunOptions
{

    [Option("prompt", SetName = "text", Required = true, HelpText = "Text to continue, encoded with the artifact's tokenizer.")]
    public string? Prompt { get; set; }

    [Option("chat", SetName = "text", HelpText = "Wrap the prompt in the family's chat template (one user turn, then the assistant's).")]
    public bool Chat { get; set; }

    [Option("rwku-stops", SetName = "text", HelpText = "Stop where RWKU's evaluation stops (its EOS-only rule) instead of at the end of the assistant's turn.")]
    public bool RwkuStops { get; set; }

    [Option("ids", SetName = "ids", Required = true, HelpText = "Comma-separated token ids instead of text (artifacts without a tokenizer); prints the new ids.")]
    public string? Ids { get; set; }

    [Option("max-new-tokens", Default = RwkuPrompts.MaxNewTokens, HelpText = "Most tokens to generate.")]
    public int MaxNewTokens { get; set; } = RwkuPrompts.MaxNewTokens;

    [Option("no-cache", HelpText = "Recompute the whole sequence at every step instead of using the KV cache (slow; for comparisons).")]
    public bool NoCache { get; set; }

}

public static class GenerateCommand
{
    public static int Run(GenerateOptions o) => Run(o, Console.Out, Console.Error);

    /// <summary>Writes the continuation to <paramref name="stdout"/> as it grows, then a newline; the token count,
    /// speed and why generation ended go to <paramref name="stderr"/>.</summary>
    public static int Run(GenerateOptions o, TextWriter stdout, TextWriter stderr)
    {
        if (o.MaxNewTokens < 0) throw new ArgumentException($"--max-new-tokens {o.MaxNewTokens}: expected 0 or more");
        var artifact = ArtifactModel.Open(o.Artifacts);
        var tokenizer = artifact.Tokenizer;
        int[] prompt;
        if (o.Ids is not null) prompt = ParseIds(o.Ids);
        else
        {
            if (tokenizer is null) throw new InvalidOperationException($"'{o.Artifacts}' has no tokenizer files; pass --ids instead of --prompt");
            prompt = o.Chat ? [.. tokenizer.EncodeChatPrompt(o.Prompt!).Ids] : tokenizer.EncodeToIds(o.Prompt!);
        }
        IReadOnlyCollection<int> stops = tokenizer is null ? artifact.Config.EosTokenIds
            : o.RwkuStops ? RwkuPrompts.StopIds(tokenizer) : tokenizer.StopIds;

        using var device = o.CreateDevice(stderr.WriteLine);   // stdout carries only the generated text
        using var generator = GreedyGenerator.Open(artifact, device, o.Weights, stderr.WriteLine);
        var text = tokenizer is null ? null : new GreedyTextGenerator(generator, tokenizer, stops);
        var tokens = new List<int>();
        var printed = "";
        void Show(int row, int token)
        {
            tokens.Add(token);
            if (text is null) { stdout.Write(tokens.Count == 1 ? $"{token}" : $",{token}"); return; }
            // Print what the text gained; a token that completes a character only later (byte fallback) waits for it.
            var now = text.ContinuationText(prompt, tokens);
            if (!now.StartsWith(printed, StringComparison.Ordinal) || now.Contains('\uFFFD')) return;
            stdout.Write(now[printed.Length..]);
            printed = now;
        }
        var clock = Stopwatch.StartNew();
        var result = generator.Generate([prompt], o.MaxNewTokens, stops, o.NoCache ? DecodingMode.Recompute : DecodingMode.KvCache, Show)[0];
        clock.Stop();
        if (text is not null)
        {
            var final = text.ContinuationText(prompt, result.Tokens);
            stdout.Write(final.StartsWith(printed, StringComparison.Ordinal) ? final[printed.Length..] : "\n" + final);
        }
        stdout.WriteLine();
        var ending = result.Stopped ? "stopped at a stop token" : $"reached --max-new-tokens {o.MaxNewTokens}";
        stderr.WriteLine($"{prompt.Length} prompt tokens, {result.Tokens.Length} new tokens in {clock.Elapsed.TotalSeconds:F2} s " +
            $"({result.Tokens.Length / Math.Max(clock.Elapsed.TotalSeconds, 1e-9):F1} tokens/s, {device.Description}); {ending}");
        return 0;
    }

    static int[] ParseIds(string ids) =>
        [.. ids.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
            .Select(s => int.TryParse(s, out var v) ? v : throw new ArgumentException($"--ids: '{s}' is not a token id"))];
}
