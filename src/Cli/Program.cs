using AlignThenUnlearn.Cli;
using CommandLine;

// `atu` is thin: each verb parses its options and calls the layers below.
return Parser.Default.ParseArguments<InfoOptions, RougeOptions>(args).MapResult(
    (InfoOptions o) => InfoCommand.Run(o),
    (RougeOptions o) => RougeCommand.Run(o),
    _ => 2);
