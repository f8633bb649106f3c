using System.Text.Json;
using System.Text.Json.Nodes;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Models.Checkpoints;

namespace AlignThenUnlearn.Runtime;

/// <summary>One checkpoint of a training run: a folder with <c>parameters.safetensors</c> (every parameter of the
/// store), <c>optimizer.safetensors</c> (the optimizer's state tensors and steps) and <c>state.json</c> (step,
/// random state, data position, schedule and whatever the caller adds). The folder is staged and renamed into
/// place (<see cref="StagedFolder"/>), so it exists complete or not at all.</summary>
public static class TrainingCheckpoint
{
    public const string ParametersFile = "parameters.safetensors", OptimizerFile = "optimizer.safetensors", StateFile = "state.json";
    static readonly string[] Files = [ParametersFile, OptimizerFile, StateFile];

    public static void Write(string folder, ParameterStore store, Optimizer optimizer, JsonObject state)
    {
        using var staged = StagedFolder.Create(folder, force: false);
        store.Save(staged.PathOf(ParametersFile));
        optimizer.SaveState(staged.PathOf(OptimizerFile));
        AtomicFile.WriteAllBytes(staged.PathOf(StateFile), JsonSerializer.SerializeToUtf8Bytes(state, new JsonSerializerOptions { WriteIndented = true }));   // flushed to disk like the tensors
        staged.Commit();
    }

    public static bool IsComplete(string folder) => Files.All(f => File.Exists(Path.Combine(folder, f)));

    /// <summary>Reads state.json and checks the checkpoint against this run (same parameter names and shapes, the
    /// optimizer's kind and tensors) before it overwrites the store's parameters and the optimizer's state; a
    /// checkpoint of another model changes nothing.</summary>
    public static JsonObject Restore(string folder, ParameterStore store, Optimizer optimizer)
    {
        if (!IsComplete(folder))
            throw new IOException($"checkpoint '{folder}' is incomplete: it lacks {string.Join(", ", Files.Where(f => !File.Exists(Path.Combine(folder, f))))}");
        var state = ReadState(folder);
        CheckSameModel(folder, store);
        optimizer.LoadState(Path.Combine(folder, OptimizerFile));
        store.Overwrite(Path.Combine(folder, ParametersFile));
        return state;
    }

    public static JsonObject ReadState(string folder)
    {
        var path = Path.Combine(folder, StateFile);
        try { return JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new ModelFormatException($"'{path}' does not hold a JSON object"); }
        catch (JsonException e) { throw new ModelFormatException($"'{path}' is not valid JSON: {e.Message}", e); }
    }

    /// <summary>Refuses a checkpoint whose parameters differ from the store's in names or shapes, naming the first difference.</summary>
    public static void CheckSameModel(string folder, ParameterStore store)
    {
        var path = Path.Combine(folder, ParametersFile);
        using var checkpoint = SafetensorsCheckpoint.Open(path);
        string Refuse(string difference) =>
            $"checkpoint '{folder}' is from another model: {difference} ({checkpoint.Names.Count} parameters there, {store.Names.Count} in this model)";
        foreach (var name in store.Names)
        {
            if (!checkpoint.Contains(name)) throw new ModelFormatException(Refuse($"it has no parameter '{name}'"));
            var shape = checkpoint.Entry(name).Shape;
            if (!shape.SequenceEqual(store[name].Shape))
                throw new ModelFormatException(Refuse($"parameter '{name}' has shape {DeviceTensorFiles.Format(shape)} there and {DeviceTensorFiles.Format(store[name].Shape)} here"));
        }
        if (checkpoint.Names.FirstOrDefault(n => !store.Contains(n)) is { } extra)
            throw new ModelFormatException(Refuse($"it has parameter '{extra}', which this model does not"));
    }
}
