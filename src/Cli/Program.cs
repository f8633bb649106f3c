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
    return Parser.Default.ParseArguments<InfoOptions, ExportOptionsCli, ForwardOptions, GenerateOptions, EvalOptions, ReportOptions, RougeOptions, ToyOptions, ShipOptionsCli>(args).MapResult(
        (InfoOptions o) => InfoCommand.Run(o),
        (ExportOptionsCli o) => ExportCommand.Run(o),
        (ForwardOptions o) => ForwardCommand.Run(o),
        (GenerateOptions o) => GenerateCommand.Run(o),
        (EvalOptions o) => EvalCommand.Run(o),
        (ReportOptions o) => ReportCommand.Run(o),
        (RougeOptions o) => RougeCommand.Run(o),
        (ToyOptions o) => ToyCommand.Run(o),
        (ShipOptionsCli o) => ShipCommand.Run(o),
        _ => 2);
}
catch (Exception e) when (!debug)
{
    AnsiConsole.MarkupLineInterpolated($"[red]error:[/] {e.Message}");
    return 1;
}
