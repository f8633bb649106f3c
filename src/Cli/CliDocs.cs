using System.Reflection;
using System.Text;
using CommandLine;
using CommandLine.Text;

namespace AlignThenUnlearn.Cli;

[Verb("cli-docs", Hidden = true, HelpText = "Writes docs/cli.md, the reference of every verb made from this program's own help, to standard output (tools/gen-cli-docs.sh).")]
public sealed class CliDocsOptions;

/// <summary>docs/cli.md: one heading per verb with its description and its options as `atu VERB --help` shows
/// them (without the version heading, which names a commit, nor blank lines between options). CliDocsTests fails
/// when the file differs from this.</summary>
public static class CliDocs
{
    /// <summary>A fixed width, so the file is the same whatever terminal generates it.</summary>
    const int Width = 100;

    public static int Run(CliDocsOptions _)
    {
        Console.Out.Write(Markdown());
        return 0;
    }

    public static string Markdown()
    {
        var verbs = Verbs.Types.Select(t => (Type: t, Verb: t.GetCustomAttribute<VerbAttribute>()!))
            .Where(v => !v.Verb.Hidden).OrderBy(v => v.Verb.Name, StringComparer.Ordinal).ToList();
        var text = new StringBuilder();
        text.Append("# `atu` command-line reference\n\n");
        text.Append("<!-- Generated from the program's own help by tools/gen-cli-docs.sh (`atu cli-docs`); do not edit by hand:\n");
        text.Append("     CliDocsTests fails when this file differs from what the generator writes. -->\n\n");
        text.Append("Every verb takes `--help` (this text) and `--debug` (an error shows its stack trace); `atu --version` prints the\n");
        text.Append("version and the commit it was built from. Errors print one line naming the file, tensor or option at fault\n");
        text.Append("(exit code 1); a command line that does not parse prints the verb's help to standard error (exit code 2).\n\n");
        foreach (var (_, verb) in verbs) text.Append($"- [`atu {verb.Name}`](#atu-{verb.Name})\n");
        foreach (var (type, verb) in verbs)
        {
            text.Append($"\n## atu {verb.Name}\n\n{verb.HelpText}\n\n```text\n{OptionsHelp(verb.Name)}\n```\n");
            if (type == typeof(AttackVerb))   // each attack kind takes only its own options (and eval's): one block each
                foreach (var kind in AttackCommand.KindNames)
                    text.Append($"\n### atu attack {kind}\n\n```text\n{AttackCommand.KindHelp(kind)}\n```\n");
        }
        return text.ToString();
    }

    static string OptionsHelp(string verb) => Render(parser => parser.ParseArguments([verb, "--help"], Verbs.Types));

    /// <summary>The help of what <paramref name="parse"/> parses (a "--help" command line), as docs/cli.md shows it.</summary>
    public static string Render<T>(Func<Parser, ParserResult<T>> parse)
    {
        using var parser = new Parser(settings => { settings.HelpWriter = null; settings.MaximumDisplayWidth = Width; });
        var result = parse(parser);
        var help = HelpText.AutoBuild(result, h =>
        {
            h.Heading = string.Empty;
            h.Copyright = string.Empty;
            h.MaximumDisplayWidth = Width;
            h.AdditionalNewLineAfterOption = false;
            return HelpText.DefaultParsingErrorsHandler(result, h);
        }, e => e);
        // One line per row of the help, without trailing spaces (they would not survive an editor or a diff).
        var lines = help.ToString().Replace("\r\n", "\n").Split('\n').Select(l => l.TrimEnd());
        return string.Join("\n", lines).Trim('\n');
    }
}
