using System.Text.Json;
using AlignThenUnlearn.Cli;
using AlignThenUnlearn.Tests.Support;
using CommandLine;

namespace AlignThenUnlearn.Tests.Evaluation;

/// <summary><c>atu rouge</c>: arguments parsed as the program parses them, output compared with hand-derived recalls.</summary>
public class RougeCommandTests
{
    static (int Exit, string Out, string Err) Run(params string[] args)
    {
        var options = Parser.Default.ParseArguments<RougeOptions>(args);
        var parsed = Assert.IsType<Parsed<RougeOptions>>(options);
        var stdout = new StringWriter { NewLine = "\n" };
        var stderr = new StringWriter { NewLine = "\n" };
        int exit = RougeCommand.Run(parsed.Value, stdout, stderr);
        return (exit, stdout.ToString(), stderr.ToString());
    }

    [Fact]
    public void A_pair_prints_its_recall_as_python_would()
    {
        // ref {New, "York,", York}, LCS {New, York}: 2/3, which Python prints as 0.6666666666666666.
        Assert.Equal((0, "0.6666666666666666\n", ""), Run("--prediction", "New York", "--reference", "New York, New York"));
        Assert.Equal((0, "1\n", ""), Run("--prediction", "3.5 million", "--reference", "3.5"));
    }

    [Fact]
    public void A_jsonl_file_is_written_back_with_recall_added()
    {
        using var folder = new TempFolder();
        folder.Write("pairs.jsonl",
            "{\"id\": 1, \"prediction\": \"Downey\", \"reference\": \"Robert Downey Jr.\"}\n" +
            "\n" +
            "{\"prediction\": \"York New\", \"reference\": \"New York\", \"recall\": 9}\n");
        var (exit, stdout, stderr) = Run("--input", folder.File("pairs.jsonl"), "--out", folder.File("scored.jsonl"));
        Assert.Equal((0, ""), (exit, stdout));
        // (1/3 + 1/2) / 2 = 5/12 = 0.4167.
        Assert.Equal("scored 2 pairs; mean recall 0.4167\n", stderr);
        var lines = File.ReadAllLines(folder.File("scored.jsonl"));
        Assert.Equal(2, lines.Length);
        using var first = JsonDocument.Parse(lines[0]);
        // Other fields are kept, in order, and "recall" comes last.
        Assert.Equal(["id", "prediction", "reference", "recall"], first.RootElement.EnumerateObject().Select(p => p.Name));
        Assert.Equal(1.0 / 3, first.RootElement.GetProperty("recall").GetDouble(), 15);
        using var second = JsonDocument.Parse(lines[1]);
        Assert.Equal(0.5, second.RootElement.GetProperty("recall").GetDouble()); // an old "recall" is replaced
        // The input is untouched.
        Assert.Contains("\"recall\": 9", File.ReadAllText(folder.File("pairs.jsonl")));
    }

    [Fact]
    public void Without_out_the_scored_lines_go_to_standard_output()
    {
        using var folder = new TempFolder();
        folder.Write("pairs.jsonl", "{\"prediction\": \"Tim Robbins\", \"reference\": \"Tim\"}\n");
        var (exit, stdout, _) = Run("-i", folder.File("pairs.jsonl"));
        Assert.Equal((0, "{\"prediction\":\"Tim Robbins\",\"reference\":\"Tim\",\"recall\":1}\n"), (exit, stdout));
    }

    [Fact]
    public void The_input_is_never_overwritten_without_force()
    {
        using var folder = new TempFolder();
        var original = "{\"prediction\": \"Tim\", \"reference\": \"Tim\"}\n";
        folder.Write("pairs.jsonl", original);
        var (exit, _, stderr) = Run("--input", folder.File("pairs.jsonl"), "--out", folder.File("pairs.jsonl"));
        Assert.Equal(2, exit);
        Assert.Contains("--force", stderr);
        Assert.Equal(original, File.ReadAllText(folder.File("pairs.jsonl")));

        folder.Write("other.jsonl", "keep");
        Assert.Equal(2, Run("--input", folder.File("pairs.jsonl"), "--out", folder.File("other.jsonl")).Exit);
        Assert.Equal("keep", File.ReadAllText(folder.File("other.jsonl")));

        Assert.Equal(0, Run("--input", folder.File("pairs.jsonl"), "--out", folder.File("pairs.jsonl"), "--force").Exit);
        Assert.Equal("{\"prediction\":\"Tim\",\"reference\":\"Tim\",\"recall\":1}\n", File.ReadAllText(folder.File("pairs.jsonl")));
    }

    [Fact]
    public void A_bad_line_names_its_line_and_field_and_writes_nothing()
    {
        using var folder = new TempFolder();
        folder.Write("pairs.jsonl", "{\"prediction\": \"a\", \"reference\": \"a\"}\n{\"prediction\": \"a\"}\n");
        var (exit, _, stderr) = Run("--input", folder.File("pairs.jsonl"), "--out", folder.File("scored.jsonl"));
        Assert.Equal(2, exit);
        Assert.Contains("line 2, field 'reference': is missing", stderr);
        Assert.False(File.Exists(folder.File("scored.jsonl")));

        folder.Write("empty-ref.jsonl", "{\"prediction\": \"a\", \"reference\": \"...\"}\n");
        Assert.Equal(2, Run("--input", folder.File("empty-ref.jsonl")).Exit);
    }

    [Fact]
    public void Pairs_and_files_are_exclusive()
    {
        Assert.Equal(2, Run("--prediction", "a").Exit);
        Assert.Equal(2, Run().Exit);
        Assert.Equal(2, Run("--prediction", "a", "--reference", "a", "--input", "x.jsonl").Exit);
    }
}
