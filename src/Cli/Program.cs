using AlignThenUnlearn.Cli;
using CommandLine;
using Spectre.Console;

// `atu` is thin: each verb parses its options and calls the layers below. Errors are shown as one
// clear line (what, which file or tensor, what was expected) with exit code 1; --debug shows the stack.
// Numbers in files and tables read the same on every machine, whatever its locale.
System.Globalization.CultureInfo.DefaultThreadCurrentCulture = System.Globalization.CultureInfo.InvariantCulture;
System.Globalization.CultureInfo.CurrentCulture = System.Globalization.CultureInfo.InvariantCulture;
bool debug = args.Contains("--debug");
args = args.Where(a => a != "--debug").ToArray();
try
{
    return Parser.Default.ParseArguments(args, Verbs.Types).MapResult(Verbs.Dispatch, _ => 2);
}
catch (Exception e) when (!debug)
{
    AnsiConsole.MarkupLineInterpolated($"[red]error:[/] {e.Message}");
    return 1;
}
