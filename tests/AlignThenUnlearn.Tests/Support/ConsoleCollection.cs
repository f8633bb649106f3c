namespace AlignThenUnlearn.Tests.Support;

/// <summary>Tests that run `atu` verbs with live progress displays. Spectre.Console allows one live display at a time
/// per process and throws when a second starts, so these test classes never run in parallel with each other.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ConsoleCollection
{
    public const string Name = "atu verbs with progress displays";
}
