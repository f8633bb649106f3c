using AlignThenUnlearn.Cli;

// `atu` is thin: each verb parses its options and calls the layers below (AtuProgram). Errors are shown as one
// clear line (what, which file or tensor, what was expected) with exit code 1; --debug shows the stack.
// Numbers in files and tables read the same on every machine, whatever its locale.
System.Globalization.CultureInfo.DefaultThreadCurrentCulture = System.Globalization.CultureInfo.InvariantCulture;
System.Globalization.CultureInfo.CurrentCulture = System.Globalization.CultureInfo.InvariantCulture;
// Output to a file or pipe (logs, Slurm) has no width: Spectre.Console would assume 80 columns and wrap table cells.
if (Console.IsOutputRedirected) Spectre.Console.AnsiConsole.Profile.Width = 400;
return AtuProgram.Run(args, Console.Out, Console.Error);
