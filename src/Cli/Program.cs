using AlignThenUnlearn.Cli;
using CommandLine;

// `atu` is thin: each verb parses its options and calls the layers below.
return Parser.Default.ParseArguments<InfoOptions>(args).MapResult(
    (InfoOptions o) => InfoCommand.Run(o),
    _ => 2);
