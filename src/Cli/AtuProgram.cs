using CommandLine;
using CommandLine.Text;
using Spectre.Console;

namespace AlignThenUnlearn.Cli;

/// <summary>What `atu` does with its arguments: parse, dispatch to the verb, and turn an error into one line with exit
/// code 1 (--debug shows the stack). `--help` and `--version` are successful requests: their text goes to standard
/// output with exit code 0; a parse error prints the help to standard error with exit code 2.</summary>
public static class AtuProgram
{
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        bool debug = args.Contains("--debug");
        args = [.. args.Where(a => a != "--debug")];
        try
        {
            using var parser = new Parser(settings => settings.HelpWriter = null);
            var result = parser.ParseArguments(args, Verbs.Types);
            return result.MapResult(Verbs.Dispatch, errors =>
            {
                var list = errors.ToList();
                bool requested = list.IsHelp() || list.IsVersion();
                (requested ? stdout : stderr).WriteLine(HelpText.AutoBuild(result));
                return requested ? 0 : 2;
            });
        }
        catch (Exception e) when (!debug)
        {
            AnsiConsole.MarkupLineInterpolated($"[red]error:[/] {e.Message}");
            return 1;
        }
    }
}
