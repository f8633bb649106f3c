using AlignThenUnlearn.Jobs;
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
        // A sweep cell's command, started so that it dies with its runner: its arguments are the command's, not atu's.
        bool child = args.Length > 0 && args[0] == Sweeps.ChildProcess.Verb;
        bool debug = !child && args.Contains("--debug");
        if (!child) args = [.. args.Where(a => a != "--debug")];
        try
        {
            if (child) return Sweeps.ChildProcess.Exec(args[1..]);
            Jobs.RwkuScoring.Notice = ModelRunOptions.Notice;
            // `atu attack KIND`: the kind first, then that kind's own options (CommandLineParser does not nest verbs).
            if (args.Length > 0 && args[0] == "attack") return AttackCommand.Dispatch(args[1..], stdout, stderr);
            using var parser = new Parser(settings => settings.HelpWriter = null);
            var result = parser.ParseArguments(args, Verbs.Types);
            return result.MapResult(Verbs.Dispatch, errors =>
            {
                var list = errors.ToList();
                if (list.IsVersion()) { stdout.WriteLine(AtuVersion.Text); return 0; }
                bool requested = list.IsHelp();
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
