using System.Text.RegularExpressions;
using System.Xml.Linq;
using AlignThenUnlearn.Tests.Support;

namespace AlignThenUnlearn.Tests;

/// <summary>The layers of DESIGN.md section 3 as the project files state them, and rules of the source's shape.</summary>
public sealed partial class ArchitectureTests
{
    /// <summary>The projects under src/, lowest layer first; a project may reference only projects before it.</summary>
    static readonly string[] Layers = ["Onnx", "Autodiff", "Models", "Runtime", "Unlearning", "Evaluation", "ToyWorld", "Jobs", "Sweeps", "Cli"];

    static IEnumerable<string> SourceFiles() => Directory.EnumerateFiles(RepositoryFiles.Path("src"), "*.cs", SearchOption.AllDirectories)
        .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}") && !f.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}"));

    static string Relative(string path) => Path.GetRelativePath(RepositoryFiles.Root, path);

    [Fact]
    public void No_project_references_a_layer_above_it()
    {
        var projects = Directory.GetDirectories(RepositoryFiles.Path("src")).Where(d => Directory.EnumerateFiles(d, "*.csproj").Any()).Select(Path.GetFileName).ToList();
        Assert.Empty(projects.Except(Layers));   // every project has its place in the order
        var upward = new List<string>();
        foreach (var project in projects)
        {
            var file = Directory.EnumerateFiles(RepositoryFiles.Path("src", project!), "*.csproj").Single();
            foreach (var reference in XDocument.Load(file).Descendants("ProjectReference").Select(r => (string)r.Attribute("Include")!))
            {
                var target = Path.GetFileName(Path.GetDirectoryName(reference.Replace('\\', '/')))!;
                if (Array.IndexOf(Layers, target) >= Array.IndexOf(Layers, project)) upward.Add($"{project} -> {target}");
            }
        }
        Assert.Empty(upward);
    }

    /// <summary>Files that group small records, interfaces or enums of one topic (no type of the file's name).</summary>
    static readonly string[] GroupingFiles = ["Scores.cs", "Generation.cs", "RwkuRecords.cs", "UtilityRecords.cs", "RwkuUtilityFiles.cs",
        "RwkuUtilityJson.cs", "AddedTokens.cs", "Lora.cs", "RowTable.cs", "Program.cs"];

    [GeneratedRegex(@"^(?:public |internal )?(?:(?:sealed|static|abstract|partial|readonly|file) )*(?:class|record|struct|interface|enum)(?: struct| class)? +(\w+)", RegexOptions.Multiline)]
    private static partial Regex TypeDeclaration();

    [Fact]
    public void Every_source_file_is_named_after_a_type_it_declares()
    {
        var misnamed = SourceFiles().Where(f => !GroupingFiles.Contains(Path.GetFileName(f)))
            .Where(f => !TypeDeclaration().Matches(File.ReadAllText(f)).Select(m => m.Groups[1].Value).Contains(Path.GetFileNameWithoutExtension(f)))
            .Select(Relative).ToList();
        Assert.Empty(misnamed);
    }

    [GeneratedRegex(@"(?<!using (?:var |\(var )\w+ = [\w.]*)\b(?:CreateDevice|ExecutionDevice\.Create)\(")]
    private static partial Regex DeviceCreatedWithoutUsing();

    /// <summary>An <c>ExecutionDevice</c> holds native resources: every one a command creates is disposed by a using.</summary>
    [Fact]
    public void Every_execution_device_created_in_the_commands_is_disposed()
    {
        var undisposed = SourceFiles().Where(f => Relative(f).StartsWith($"src{Path.DirectorySeparatorChar}Cli", StringComparison.Ordinal) || Relative(f).Contains("Jobs"))
            .SelectMany(f => File.ReadLines(f).Select((line, i) => (f, line, i)))
            .Where(x => !x.line.TrimStart().StartsWith("///", StringComparison.Ordinal) && !x.line.Contains("public ExecutionDevice CreateDevice(", StringComparison.Ordinal)
                && DeviceCreatedWithoutUsing().IsMatch(x.line))
            .Select(x => $"{Relative(x.f)}:{x.i + 1}: {x.line.Trim()}").ToList();
        Assert.Empty(undisposed);
    }

    static IEnumerable<string> FilesOf(string project) =>
        SourceFiles().Where(f => Relative(f).StartsWith(Path.Combine("src", project) + Path.DirectorySeparatorChar, StringComparison.Ordinal));

    /// <summary>The CLI parses, validates and renders; the work is in the jobs layer, so no file of it grows long.</summary>
    [Fact]
    public void Every_CLI_file_is_under_200_lines()
    {
        var files = FilesOf("Cli").ToList();
        Assert.NotEmpty(files);
        Assert.Empty(files.Select(f => (File: Relative(f), Lines: File.ReadAllLines(f).Length)).Where(f => f.Lines >= 200).Select(f => $"{f.File}: {f.Lines} lines"));
    }

    [GeneratedRegex(@"\bConsole\.|\bSpectre\b|\bAnsiConsole\b")]
    private static partial Regex ConsoleCode();

    /// <summary>The jobs report through <c>IJobReporter</c> (lines and progress); only the CLI writes to the console.</summary>
    [Fact]
    public void The_jobs_hold_no_console_code()
    {
        var files = FilesOf("Jobs").ToList();
        Assert.NotEmpty(files);
        Assert.Empty(files.SelectMany(f => File.ReadLines(f).Select((line, i) => (f, line, i)))
            .Where(x => ConsoleCode().IsMatch(x.line)).Select(x => $"{Relative(x.f)}:{x.i + 1}: {x.line.Trim()}"));
        var project = XDocument.Load(RepositoryFiles.Path("src", "Jobs", "AlignThenUnlearn.Jobs.csproj"));
        Assert.DoesNotContain(project.Descendants("PackageReference"), r => (string?)r.Attribute("Include") == "Spectre.Console");
    }
}
