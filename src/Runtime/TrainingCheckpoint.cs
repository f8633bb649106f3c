using System.Text.Json;
using System.Text.Json.Nodes;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Models.Checkpoints;

namespace AlignThenUnlearn.Runtime;

/// <summary>One checkpoint of a training run: a folder with <c>parameters.safetensors</c> (every parameter of the
/// store), one file per optimizer with its state tensors and steps (<c>optimizer.safetensors</c> for a run with one,
/// <c>optimizer-NAME.safetensors</c> for named ones, as Align-then-Unlearn's head and LLM optimizers) and
/// <c>state.json</c> (step, random state, data position, schedule and whatever the caller adds). The folder is staged
/// and renamed into place (<see cref="StagedFolder"/>), so it exists complete or not at all.</summary>
public static class TrainingCheckpoint
{
    public const string ParametersFile = "parameters.safetensors", OptimizerFile = "optimizer.safetensors", StateFile = "state.json";
    static readonly string[] Files = [ParametersFile, StateFile];

    /// <summary>The file of an optimizer's state: <see cref="OptimizerFile"/> for the unnamed one.</summary>
    public static string OptimizerFileOf(string name) => name.Length == 0 ? OptimizerFile : $"optimizer-{name}.safetensors";

    public static void Write(string folder, ParameterStore store, Optimizer optimizer, JsonObject state) =>
        Write(folder, store, new Dictionary<string, Optimizer> { [""] = optimizer }, state);

    public static void Write(string folder, ParameterStore store, IReadOnlyDictionary<string, Optimizer> optimizers, JsonObject state)
    {
        using var staged = StagedFolder.Create(folder, force: false);
        store.Save(staged.PathOf(ParametersFile));
        foreach (var (name, optimizer) in optimizers) optimizer.SaveState(staged.PathOf(OptimizerFileOf(name)));
        AtomicFile.WriteAllBytes(staged.PathOf(StateFile), JsonSerializer.SerializeToUtf8Bytes(state, new JsonSerializerOptions { WriteIndented = true }));   // flushed to disk like the tensors
        staged.Commit();
    }

    /// <summary>Parameters, state and at least one optimizer file: a folder is written whole (staged), so this tells a
    /// checkpoint from a folder someone else left.</summary>
    public static bool IsComplete(string folder) =>
        Files.All(f => File.Exists(Path.Combine(folder, f))) && Directory.Exists(folder)
        && Directory.EnumerateFiles(folder, "optimizer*.safetensors").Any();

    /// <summary>Reads state.json and checks the checkpoint against this run (same parameter names and shapes, the
    /// optimizer's kind and tensors) before it overwrites the store's parameters and the optimizer's state; a
    /// checkpoint of another model changes nothing.</summary>
    public static JsonObject Restore(string folder, ParameterStore store, Optimizer optimizer) =>
        Restore(folder, store, new Dictionary<string, Optimizer> { [""] = optimizer });

    public static JsonObject Restore(string folder, ParameterStore store, IReadOnlyDictionary<string, Optimizer> optimizers)
    {
        var missing = Files.Concat(optimizers.Keys.Select(OptimizerFileOf)).Where(f => !File.Exists(Path.Combine(folder, f))).ToList();
        if (missing.Count > 0) throw new IOException($"checkpoint '{folder}' is incomplete: it lacks {string.Join(", ", missing)}");
        var state = ReadState(folder);
        CheckSameModel(folder, store);
        foreach (var (name, optimizer) in optimizers) optimizer.LoadState(Path.Combine(folder, OptimizerFileOf(name)));
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
