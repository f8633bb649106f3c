using System.Globalization;
using AlignThenUnlearn.Evaluation;
using CommandLine;

namespace AlignThenUnlearn.Cli;

[Verb("rouge", HelpText = "ROUGE-L recall as RWKU scores it (the Python rouge 1.0.1 package): one pair, or a JSON-lines file of {\"prediction\", \"reference\"} objects.")]
public sealed class RougeOptions
{
    [Option("prediction", HelpText = "The model's answer (with --reference).")]
    public string? Prediction { get; set; }

    [Option("reference", HelpText = "The reference answer (with --prediction).")]
    public string? Reference { get; set; }

    [Option('i', "input", HelpText = "A JSON-lines file of {\"prediction\": ..., \"reference\": ...} objects.")]
    public string? Input { get; set; }

    [Option('o', "out", HelpText = "Where to write the input's lines with \"recall\" added (default: standard output).")]
    public string? Out { get; set; }

    [Option("force", HelpText = "Replace --out if it exists (also when it is the input file).")]
    public bool Force { get; set; }
}

public static class RougeCommand
{
    public static int Run(RougeOptions o) => Run(o, Console.Out, Console.Error);

    public static int Run(RougeOptions o, TextWriter stdout, TextWriter stderr)
    {
        bool pair = o.Prediction is not null || o.Reference is not null;
        if (pair == (o.Input is not null))
            return Fail(stderr, "give either --prediction and --reference, or --input FILE");
        try
        {
            return pair ? ScorePair(o, stdout, stderr) : ScoreFile(o, stdout, stderr);
        }
        catch (Exception e) when (e is InvalidDataException or ArgumentException or IOException or UnauthorizedAccessException)
        {
            return Fail(stderr, e.Message);
        }
    }

    static int ScorePair(RougeOptions o, TextWriter stdout, TextWriter stderr)
    {
        if (o.Prediction is null || o.Reference is null) return Fail(stderr, "give both --prediction and --reference");
        if (o.Out is not null) return Fail(stderr, "--out writes a scored --input file; a single pair's recall goes to standard output");
        stdout.WriteLine(RougeL.Recall(o.Prediction, o.Reference).ToString("R", CultureInfo.InvariantCulture));
        return 0;
    }

    static int ScoreFile(RougeOptions o, TextWriter stdout, TextWriter stderr)
    {
        var input = o.Input!;
        if (!File.Exists(input)) return Fail(stderr, $"'{input}' does not exist");
        if (o.Out is null)
        {
            using var reader = File.OpenText(input);
            Summarize(RougeJsonLines.Score(reader, stdout, input), stderr);
            return 0;
        }
        bool overInput = string.Equals(Path.GetFullPath(o.Out), Path.GetFullPath(input), StringComparison.Ordinal);
        if ((overInput || File.Exists(o.Out)) && !o.Force)
            return Fail(stderr, overInput
                ? $"--out is the input file '{input}'; pass --force to replace it with the scored lines"
                : $"'{o.Out}' exists; pass --force to replace it");
        // The whole output is built before anything is written, so a bad line leaves --out untouched.
        var scored = new StringWriter { NewLine = "\n" };
        (int Count, double? Mean) summary;
        using (var reader = File.OpenText(input)) summary = RougeJsonLines.Score(reader, scored, input);
        AlignThenUnlearn.Models.AtomicFile.WriteAllBytes(o.Out, System.Text.Encoding.UTF8.GetBytes(scored.ToString()));
        Summarize(summary, stderr);
        return 0;
    }

    static void Summarize((int Count, double? Mean) summary, TextWriter stderr) =>
        stderr.WriteLine(summary.Mean is double mean
            ? $"scored {summary.Count} pair{(summary.Count == 1 ? "" : "s")}; mean recall {mean.ToString("0.####", CultureInfo.InvariantCulture)}"
            : "scored 0 pairs");

    static int Fail(TextWriter stderr, string message)
    {
        stderr.WriteLine($"atu rouge: {message}");
        return 2;
    }
}
