using System.Globalization;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Models.Checkpoints;

namespace AlignThenUnlearn.Runtime;

/// <summary>LoRA adapters in a <see cref="ParameterStore"/> beside the frozen base weights they adapt (one copy of the
/// base, never a second): PEFT's initialisation, a small safetensors file of the adapters alone, and the merge
/// <c>W + (alpha / rank) B A</c> that gives plain weights for <c>atu ship</c> and <c>atu eval</c>.</summary>
public static class LoraAdapters
{
    /// <summary>Adds the adapters as the store's only trainable parameters (the base weights stay, frozen): A uniform in
    /// ±1/sqrt(in) (PEFT's kaiming_uniform with a = sqrt(5)), B zero, so the adapted model starts as the base model.</summary>
    public static void AddTo(ParameterStore store, IReadOnlyList<ParameterSpec> adapters, int seed = 0)
    {
        foreach (var spec in adapters)
        {
            var values = new float[spec.ElementCount];
            if (spec.Name.EndsWith(".lora_A.weight", StringComparison.Ordinal))
            {
                var random = new Random(unchecked(seed * 486187739 + RandomInit.StableHash(spec.Name)));
                double bound = 1 / Math.Sqrt(spec.Shape[1]);
                for (int i = 0; i < values.Length; i++) values[i] = (float)((2 * random.NextDouble() - 1) * bound);
            }
            store.Add(spec.Name, values, spec.Shape, trainable: true);
        }
        store.SetTrainable(adapters.Select(a => a.Name));
    }

    /// <summary>Writes the adapters alone (float32) with their rank, alpha and targets in the file's metadata.</summary>
    public static void Save(ParameterStore store, IReadOnlyList<ParameterSpec> adapters, LoraOptions lora, string path) =>
        DeviceTensorFiles.Write(store.Device, path, [.. adapters.Select(a => (a.Name, store[a.Name]))], Metadata(lora));

    /// <summary>Reads adapters saved by <see cref="Save"/> into the store (added, trainable), checking every tensor first.</summary>
    public static void Load(ParameterStore store, IReadOnlyList<ParameterSpec> adapters, string path) =>
        store.Load(path, adapters, _ => true);

    public static Dictionary<string, string> Metadata(LoraOptions lora) => new()
    {
        ["format"] = "atu-lora/1",
        ["rank"] = lora.Rank.ToString(CultureInfo.InvariantCulture),
        ["alpha"] = lora.Alpha.ToString("R", CultureInfo.InvariantCulture),
        ["targets"] = string.Join(",", lora.Targets),
    };

    /// <summary>The LoRA settings an adapter file was saved with (<see cref="Metadata"/>).</summary>
    public static LoraOptions ReadOptions(string path)
    {
        using var file = SafetensorsFile.Open(path);
        string Key(string key) => file.Metadata.TryGetValue(key, out var value) ? value
            : throw new ModelFormatException($"'{path}' has no '{key}' in its metadata: it is not an adapter file written by atu (format atu-lora/1)");
        if (Key("format") != "atu-lora/1") throw new ModelFormatException($"'{path}': metadata format '{Key("format")}', expected atu-lora/1");
        try
        {
            var lora = new LoraOptions
            {
                Rank = int.Parse(Key("rank"), CultureInfo.InvariantCulture),
                Alpha = double.Parse(Key("alpha"), CultureInfo.InvariantCulture),
                Targets = Key("targets").Split(','),
            };
            lora.Validate();
            return lora;
        }
        catch (Exception e) when (e is FormatException or OverflowException or ArgumentException)
        {
            throw new ModelFormatException($"'{path}': invalid LoRA metadata ({e.Message})");
        }
    }

    /// <summary>Merges an adapter file into a base checkpoint of <paramref name="config"/> and writes the plain merged
    /// checkpoint (every base weight, float32). The adapters present in the file are merged, whatever layers they cover;
    /// every tensor of the file must be an adapter of the model (its targets, its layers), each A with its B, in the shape
    /// the model and the file's rank give it.</summary>
    public static void MergeFiles(ExecutionDevice device, DecoderConfig config, string baseCheckpoint, string adaptersPath, string outputPath)
    {
        var lora = ReadOptions(adaptersPath);
        using var adapterFile = SafetensorsCheckpoint.Open(adaptersPath);
        var possible = lora.Adapters(config);   // per module A, then B
        var names = possible.Select(a => a.Name).ToHashSet(StringComparer.Ordinal);
        if (adapterFile.Names.FirstOrDefault(n => !names.Contains(n)) is string stray)
            throw new ModelFormatException($"'{adaptersPath}' holds tensor '{stray}', which is no LoRA adapter of this model: its targets ({string.Join(", ", lora.Targets)}) in layers 0..{config.NumHiddenLayers - 1}, named like '{possible[0].Name}'");
        for (int i = 0; i < possible.Count; i += 2)
        {
            var (a, b) = (possible[i].Name, possible[i + 1].Name);
            if (adapterFile.Contains(a) == adapterFile.Contains(b)) continue;
            var (present, missing) = adapterFile.Contains(a) ? (a, b) : (b, a);
            throw new ModelFormatException($"'{adaptersPath}' holds tensor '{present}' but not '{missing}': an adapter is both its A and its B");
        }
        var adapters = possible.Where(a => adapterFile.Contains(a.Name)).ToList();
        if (adapters.Count == 0) throw new ModelFormatException($"'{adaptersPath}' holds no adapter of this model's layers");
        using var store = new ParameterStore(device);
        store.Load(baseCheckpoint, DecoderBuilder.Parameters(config), _ => false);
        store.Load(adaptersPath, adapters, _ => false);
        SaveMerged(store, config, adapters, lora, outputPath);
    }

    /// <summary>Writes every base parameter of the store (store order, float32) with the adapters merged in and the
    /// adapters themselves left out: the plain checkpoint <c>atu ship</c> and <c>atu eval</c> read. The store is not
    /// changed, and one weight at a time is held on the host.</summary>
    public static void SaveMerged(ParameterStore store, DecoderConfig config, IReadOnlyList<ParameterSpec> adapters, LoraOptions lora, string path,
        IReadOnlyDictionary<string, string>? metadata = null)
    {
        var adapterNames = adapters.Select(a => a.Name).ToHashSet();
        var deltas = Deltas(config, adapters).ToLookup(d => d.Weight);
        var names = store.Names.Where(n => !adapterNames.Contains(n)).ToList();
        foreach (var weight in deltas.Select(g => g.Key))
            if (!store.Contains(weight)) throw new ArgumentException($"adapter of '{weight}': the store has no such base weight to merge into");
        using var writer = SafetensorsWriter.Create(path, [.. names.Select(n => new TensorSpec(n, SafetensorsDType.F32, store[n].Shape))], metadata);
        foreach (var name in names)
        {
            if (!deltas.Contains(name)) { store.Device.Read<float>(store[name], values => writer.Append(values)); continue; }
            var weight = store.Read(name);
            foreach (var (_, firstRow, a, b) in deltas[name])
                LoraOptions.AddDelta(weight, store[name].Shape[1], firstRow, store.Read(a), store.Read(b), lora.Rank, lora.Scale);
            writer.Append<float>(weight);
        }
        writer.Commit();
    }

    /// <summary>Per adapter pair: the base weight it changes, its first row there, and the names of A and B.</summary>
    static IEnumerable<(string Weight, long FirstRow, string A, string B)> Deltas(DecoderConfig config, IReadOnlyList<ParameterSpec> adapters)
    {
        const string suffix = ".lora_A.weight";
        foreach (var a in adapters.Where(s => s.Name.EndsWith(suffix, StringComparison.Ordinal)))
        {
            var module = a.Name[..^suffix.Length];
            var (weight, firstRow) = LoraOptions.MergeTarget(config, module);
            yield return (weight, firstRow, a.Name, LoraOptions.BName(module));
        }
    }
}
