using System.Text.Json.Nodes;

namespace AlignThenUnlearn.Runtime;

/// <summary>Where a trainer takes its micro-batches from (graph input name to host tensor). Its position is part of
/// a checkpoint: <see cref="SaveState"/> describes it as JSON and <see cref="RestoreState"/> continues from there,
/// refusing a state that belongs to other data.</summary>
public interface IBatchSource
{
    IReadOnlyDictionary<string, HostTensor> Next();
    JsonObject SaveState();
    void RestoreState(JsonObject state);
}
