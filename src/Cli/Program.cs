using AlignThenUnlearn.Cli;

// `atu` is thin: each verb parses its options and calls the layers below (AtuProgram). Errors are shown as one
// clear line (what, which file or tensor, what was expected) with exit code 1; --debug shows the stack.
// Numbers in files and tables read the same on every machine, whatever its locale.
System.Globalization.CultureInfo.DefaultThreadCurrentCulture = System.Globalization.CultureInfo.InvariantCulture;
System.Globalization.CultureInfo.CurrentCulture = System.Globalization.CultureInfo.InvariantCulture;
return AtuProgram.Run(args, Console.Out, Console.Error);
