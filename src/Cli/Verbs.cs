namespace AlignThenUnlearn.Cli;

/// <summary>Every verb of `atu` and the command that runs it: the parser's list and the dispatch are one table, so a
/// verb cannot be parsed and then dropped.</summary>
public static class Verbs
{
    static readonly Dictionary<Type, Func<object, int>> Handlers = new()
    {
        [typeof(InfoOptions)] = o => InfoCommand.Run((InfoOptions)o),
        [typeof(ExportOptionsCli)] = o => ExportCommand.Run((ExportOptionsCli)o),
        [typeof(ForwardOptions)] = o => ForwardCommand.Run((ForwardOptions)o),
        [typeof(GenerateOptions)] = o => GenerateCommand.Run((GenerateOptions)o),
        [typeof(AlignOptions)] = o => AtuCommand.Run((AlignOptions)o),
        [typeof(UnlearnOptions)] = o => AtuCommand.Run((UnlearnOptions)o),
        [typeof(RunOptions)] = o => AtuCommand.Run((RunOptions)o),
        [typeof(CorpusOptions)] = o => CorpusCommand.Run((CorpusOptions)o),
        [typeof(EvalOptions)] = o => EvalCommand.Run((EvalOptions)o),
        [typeof(ReportOptions)] = o => ReportCommand.Run((ReportOptions)o),
        [typeof(RougeOptions)] = o => RougeCommand.Run((RougeOptions)o),
        [typeof(ToyOptions)] = o => ToyCommand.Run((ToyOptions)o),
        [typeof(ShipOptionsCli)] = o => ShipCommand.Run((ShipOptionsCli)o),
        [typeof(SweepOptions)] = o => SweepCommand.Run((SweepOptions)o),
        [typeof(AttackVerb)] = o => throw new InvalidOperationException("`atu attack KIND` is parsed by AttackCommand.Dispatch (AtuProgram hands it over before the verbs are parsed)"),
        [typeof(PlanOptions)] = o => PlanCommand.Run((PlanOptions)o),
        [typeof(CliDocsOptions)] = o => CliDocs.Run((CliDocsOptions)o),
    };

    public static Type[] Types => [.. Handlers.Keys];

    public static int Dispatch(object options) =>
        Handlers.TryGetValue(options.GetType(), out var run) ? run(options) : throw new NotSupportedException($"no command for {options.GetType().Name}");
}
