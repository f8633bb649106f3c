using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace AlignThenUnlearn.Sweeps;

/// <summary>Slurm resources of every array task (one cell each) and how many run at once.</summary>
public sealed record SlurmResources
{
    public string? Partition { get; init; }
    public int Gpus { get; init; }
    public int Cpus { get; init; } = 1;
    /// <summary>Slurm's --time, e.g. "04:00:00" or "1-00:00:00".</summary>
    public string? Time { get; init; }
    /// <summary>Slurm's --mem, e.g. "32G" or "500M".</summary>
    public string? Memory { get; init; }
    /// <summary>At most this many cells at once (the array's % throttle; Kubernetes: parallelism).</summary>
    public int Throttle { get; init; } = 4;
}

/// <summary>What a Kubernetes Indexed Job needs beyond the Slurm resources: the image holding atu and the volume
/// holding the sweep folder (mounted at the same path, so the manifest's absolute paths hold in the pod).</summary>
public sealed record KubernetesSettings
{
    public string? Image { get; init; }
    public string? VolumeClaim { get; init; }
    public string? Namespace { get; init; }
    /// <summary>The atu program inside the image.</summary>
    public string[] Atu { get; init; } = ["atu"];
}

/// <summary>A sweep file (JSON): the runs to make, as the product targets x methods x presets x layers x seeds.
/// Paths are relative to the file's folder.</summary>
public sealed record SweepFile
{
    public string Name { get; init; } = "sweep";
    public string Artifacts { get; init; } = "";
    public string Rwku { get; init; } = "";
    /// <summary>"1-100", "1-3,7" or a list of numbers and such strings.</summary>
    public JsonElement Targets { get; init; }
    public string[] Methods { get; init; } = ["atu"];
    /// <summary>ATU's presets (built-in names or files).</summary>
    public string[] Presets { get; init; } = ["paper"];
    /// <summary>The presets of any method, overriding its default: ATU's <see cref="Presets"/>, a baseline's
    /// <c>rwku-llama3-&lt;method&gt;[-lora]</c> (as `atu run --method`); icu takes none.</summary>
    public Dictionary<string, string[]> MethodPresets { get; init; } = [];
    /// <summary>Hook layers; empty: each preset's own.</summary>
    public int[] Layers { get; init; } = [];
    /// <summary>Seeds written into the preset; empty: each preset's own.</summary>
    public int[] Seeds { get; init; } = [];
    /// <summary>Evaluation tasks; `atu run` scores all of them, so this only records (and checks) what is expected.</summary>
    public string[] Eval { get; init; } = [.. EvalTasks];
    public string Device { get; init; } = "auto";
    public int Threads { get; init; }
    public SlurmResources Slurm { get; init; } = new();
    public KubernetesSettings? Kubernetes { get; init; }

    /// <summary>The devices `atu run --device` takes.</summary>
    public static readonly IReadOnlyList<string> Devices = ["cpu", "cuda", "auto"];

    /// <summary>The tasks `atu run` evaluates after unlearning: the forget and neighbour probes and MMLU.</summary>
    public static readonly IReadOnlyList<string> EvalTasks = ["forget", "neighbor", "mmlu"];

    internal static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
        WriteIndented = true,
    };

    public static SweepFile Load(string path)
    {
        SweepFile file;
        try { file = JsonSerializer.Deserialize<SweepFile>(File.ReadAllBytes(path), Json) ?? throw new InvalidDataException($"sweep file '{path}' is empty"); }
        catch (JsonException e) { throw new InvalidDataException($"sweep file '{path}': {e.Message}", e); }
        file.Validate(path);
        return file;
    }

    void Validate(string path)
    {
        void Require(bool ok, string key, string expected) { if (!ok) throw new InvalidDataException($"sweep file '{path}': \"{key}\" {expected}"); }
        Require(Artifacts.Length > 0, "artifacts", "is missing (the artifact folder)");
        Require(Rwku.Length > 0, "rwku", "is missing (the RWKU folder)");
        Require(Methods.Length > 0 && Methods.Distinct().Count() == Methods.Length, "methods", "must list at least one method, each once");
        Require(Presets.Length > 0 && Presets.Distinct().Count() == Presets.Length, "presets", "must list at least one preset, each once");
        foreach (var (method, presets) in MethodPresets)
            Require(Methods.Contains(method) && presets.Length > 0 && presets.Distinct().Count() == presets.Length, $"method_presets.{method}", "must be a method of \"methods\" with at least one preset, each once");
        Require(Layers.All(l => l >= 0) && Layers.Distinct().Count() == Layers.Length, "layers", "must be distinct hidden-state indexes >= 0");
        Require(Seeds.Distinct().Count() == Seeds.Length, "seeds", "must be distinct");
        var unknown = Eval.Except(EvalTasks).ToList();
        Require(unknown.Count == 0, "eval", $"names unknown task(s) {string.Join(", ", unknown)}; the tasks are {string.Join(", ", EvalTasks)}");
        Require(EvalTasks.All(Eval.Contains), "eval", $"must list {string.Join(", ", EvalTasks)}: `atu run` scores all of them and has no option to leave one out yet");
        Require(Devices.Contains(Device), "device", $"is \"{Device}\"; expected one of {string.Join(", ", Devices)}");
        int maxThreads = Math.Max(Environment.ProcessorCount, Slurm.Cpus);
        Require(Threads >= 0 && Threads <= maxThreads, "threads",
            $"is {Threads}; expected 0 (ONNX Runtime's default) to {maxThreads} (the logical processors here, or slurm.cpus when larger: more threads than processors only cost memory)");
        Require(Slurm.Throttle >= 1, "slurm.throttle", "must be 1 or more");
        Require(Slurm.Gpus >= 0 && Slurm.Cpus >= 1, "slurm", "gpus must be >= 0 and cpus >= 1");
        Require(Slurm.Memory is null || MemoryMegabytes(Slurm.Memory) is not null, "slurm.memory", "must be a number with an optional unit K, M, G or T (Slurm's --mem), e.g. \"32G\"");
        TargetNumbers(path);
    }

    /// <summary>The target numbers, in the order written, each once.</summary>
    public IReadOnlyList<int> TargetNumbers(string path = "sweep file")
    {
        var parts = Targets.ValueKind switch
        {
            JsonValueKind.String => [Targets.GetString()!],
            JsonValueKind.Number => [Targets.GetRawText()],
            JsonValueKind.Array => Targets.EnumerateArray().Select(e => e.ValueKind switch
            {
                JsonValueKind.String => e.GetString()!,
                JsonValueKind.Number => e.GetRawText(),
                _ => throw new InvalidDataException($"sweep file '{path}': \"targets\" holds {e.ValueKind}; expected numbers or ranges like \"1-100\""),
            }).ToList(),
            _ => throw new InvalidDataException($"sweep file '{path}': \"targets\" is {(Targets.ValueKind == JsonValueKind.Undefined ? "missing" : Targets.ValueKind.ToString())}; expected \"1-100\", \"1-3,7\" or a list"),
        };
        var numbers = new List<int>();
        foreach (var part in parts.SelectMany(p => p.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)))
            numbers.AddRange(ParseRange(part, path));
        if (numbers.Count == 0) throw new InvalidDataException($"sweep file '{path}': \"targets\" names no target");
        var repeated = numbers.GroupBy(n => n).Where(g => g.Count() > 1).Select(g => g.Key).ToList();
        if (repeated.Count > 0) throw new InvalidDataException($"sweep file '{path}': \"targets\" names target(s) {string.Join(", ", repeated)} more than once");
        return numbers;
    }

    static IEnumerable<int> ParseRange(string part, string path)
    {
        var ends = part.Split('-', StringSplitOptions.TrimEntries);
        bool Number(string s, out int n) => int.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out n) && n >= 1;
        if (ends.Length == 1 && Number(ends[0], out var single)) return [single];
        if (ends.Length == 2 && Number(ends[0], out var first) && Number(ends[1], out var last) && first <= last) return Enumerable.Range(first, last - first + 1);
        throw new InvalidDataException($"sweep file '{path}': \"targets\" part '{part}' is neither a target number >= 1 nor a range FIRST-LAST with FIRST <= LAST");
    }

    /// <summary>Slurm's --mem value in megabytes (no unit: megabytes), or null when it is not one.</summary>
    public static long? MemoryMegabytes(string memory)
    {
        var text = memory.Trim().ToUpperInvariant();
        long scale = 1;
        if (text.Length > 0 && char.IsLetter(text[^1]))
        {
            scale = text[^1] switch { 'K' => -1024, 'M' => 1, 'G' => 1024, 'T' => 1024 * 1024, _ => 0 };
            text = text[..^1];
        }
        if (scale == 0 || !long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value) || value <= 0) return null;
        return scale < 0 ? Math.Max(1, value / -scale) : value * scale;
    }
}
