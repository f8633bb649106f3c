using System.Reflection;
using AlignThenUnlearn.Cli;
using AlignThenUnlearn.Tests.Support;
using CommandLine;

namespace AlignThenUnlearn.Tests.Docs;

/// <summary>docs/cli.md is what `atu cli-docs` (tools/gen-cli-docs.sh) writes from the program's own help.</summary>
public sealed class CliDocsTests
{
    [Fact]
    public void Docs_cli_md_equals_what_the_generator_writes()
    {
        var path = RepositoryFiles.Path("docs", "cli.md");
        var expected = CliDocs.Markdown().Split('\n');
        var actual = File.ReadAllText(path).Replace("\r\n", "\n").Split('\n');
        int first = Enumerable.Range(0, Math.Min(expected.Length, actual.Length)).FirstOrDefault(i => expected[i] != actual[i], -1);
        if (first < 0 && expected.Length == actual.Length) return;
        first = first < 0 ? Math.Min(expected.Length, actual.Length) : first;
        Assert.Fail($"{path} is stale (run tools/gen-cli-docs.sh): line {first + 1} is \"{actual.ElementAtOrDefault(first)}\", " +
                    $"the generator writes \"{expected.ElementAtOrDefault(first)}\"");
    }

    [Fact]
    public void Every_visible_verb_has_a_heading_with_every_one_of_its_options()
    {
        var markdown = CliDocs.Markdown();
        foreach (var type in Verbs.Types)
        {
            var verb = type.GetCustomAttribute<VerbAttribute>()!;
            if (verb.Hidden) { Assert.DoesNotContain($"## atu {verb.Name}\n", markdown); continue; }
            int start = markdown.IndexOf($"\n## atu {verb.Name}\n", StringComparison.Ordinal);
            Assert.True(start >= 0, $"no heading for atu {verb.Name}");
            int end = markdown.IndexOf("\n## ", start + 1, StringComparison.Ordinal);
            var section = end < 0 ? markdown[start..] : markdown[start..end];
            foreach (var option in type.GetProperties().Select(p => p.GetCustomAttribute<OptionAttribute>()).OfType<OptionAttribute>().Where(o => !o.Hidden))
                Assert.Contains($"--{option.LongName}", section);
        }
    }
}
