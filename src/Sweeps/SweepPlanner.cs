using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Unlearning;

namespace AlignThenUnlearn.Sweeps;

/// <summary>One run of a sweep: a method on a target with a preset, layer and seed; <see cref="Folder"/> (relative to
/// the sweep folder) holds its attempts, log and done marker, <see cref="Run"/> the run folder its command writes.</summary>
public sealed record SweepCell(int Index, string Name, string Method, string Preset, int Target, int? Layer, int? Seed, string Folder, string Run, string[] Command);

/// <summary>A sweep folder's manifest.json: the sweep file as planned, the atu command that runs the cells, and the cells.</summary>
public sealed record SweepManifest
{
    public const string FileName = "manifest.json", FormatName = "atu-sweep", CellsFolder = "cells";
    public const int FormatVersion = 1;

    public string Format { get; init; } = FormatName;
    public int Version { get; init; } = FormatVersion;
    public required string Name { get; init; }
    /// <summary>The program that runs a cell's command (e.g. ["/opt/atu/atu"] or ["dotnet", "/opt/atu/atu.dll"]).</summary>
    public required string[] Atu { get; init; }
    public required SweepFile Sweep { get; init; }
    public required SweepCell[] Cells { get; init; }

    public string ToJson() => JsonSerializer.Serialize(this, SweepFile.Json);

    public static SweepManifest Read(string sweepFolder)
    {
        var path = Path.Combine(sweepFolder, FileName);
        if (!File.Exists(path)) throw new FileNotFoundException($"'{sweepFolder}' holds no {FileName}; make one with `atu sweep plan --file SWEEP.json --out {sweepFolder}`", path);
        SweepManifest manifest;
        try { manifest = JsonSerializer.Deserialize<SweepManifest>(File.ReadAllBytes(path), SweepFile.Json) ?? throw new InvalidDataException($"'{path}' is empty"); }
        catch (JsonException e) { throw new InvalidDataException($"'{path}': {e.Message}", e); }
        if (manifest.Format != FormatName || manifest.Version > FormatVersion)
            throw new InvalidDataException($"'{path}': format is {manifest.Format} version {manifest.Version}; expected {FormatName} version {FormatVersion} or older");
        return manifest;
    }
}

/// <summary>Sweep file -> cells (one per combination) -> a sweep folder with a manifest.</summary>
public static partial class SweepPlanner
{
    /// <summary>The command line of each method (after the atu program), the only place a method becomes a command:
    /// atu, each baseline of `atu run --method` and each trained baseline with LoRA as <c>&lt;method&gt;-lora</c>.</summary>
    static readonly Dictionary<string, Func<CellSettings, string[]>> MethodCommands = MethodCommandTable();

    static Dictionary<string, Func<CellSettings, string[]>> MethodCommandTable()
    {
        var table = new Dictionary<string, Func<CellSettings, string[]>>
        {
            [AlignThenUnlearnMethod.Id] = c => [
                "run", "--artifacts", c.Artifacts, "--rwku", c.Rwku, "--target", Text(c.Target), "--preset", c.Preset!,
                .. c.Layer is int layer ? new[] { "--layer", Text(layer) } : [],
                "--out", c.Run, "--resume", "--device", c.Device, "--threads", Text(c.Threads)],
        };
        foreach (var method in MethodRegistry.Trained.Select(m => m.Name))
        {
            table[method] = c => BaselineCommand(method, false, c);
            table[method + LoraSuffix] = c => BaselineCommand(method, true, c);
        }
        foreach (var method in MethodRegistry.All.OfType<PromptingMethod>().Select(m => m.Name))
            table[method] = c => BaselineCommand(method, false, c);
        return table;
    }

    const string LoraSuffix = "-lora";

    /// <summary>`atu run --method M [--lora]`: a baseline has no hook layer; icu no preset (it does not train).</summary>
    static string[] BaselineCommand(string method, bool lora, CellSettings c) => [
        "run", "--method", method, .. lora ? new[] { "--lora" } : [],
        "--artifacts", c.Artifacts, "--rwku", c.Rwku, "--target", Text(c.Target),
        .. c.Preset is string preset ? new[] { "--preset", preset } : [],
        "--out", c.Run, "--resume", "--device", c.Device, "--threads", Text(c.Threads)];

    /// <summary>What a method's command line is made of (absolute paths); no preset for icu, no layer for baselines.</summary>
    public sealed record CellSettings(string Artifacts, string Rwku, int Target, string? Preset, int? Layer, string Run, string Device, int Threads);

    public static IReadOnlyCollection<string> Methods => MethodCommands.Keys;

    /// <summary>The `atu run --method` name of a sweep method (ga for ga-lora) and whether it trains LoRA adapters.</summary>
    public static (string Method, bool Lora) RunMethod(string method) =>
        method.EndsWith(LoraSuffix, StringComparison.Ordinal) && MethodCommands.ContainsKey(method) ? (method[..^LoraSuffix.Length], true) : (method, false);

    /// <summary>The presets a method's cells run with: <see cref="SweepFile.MethodPresets"/>, else ATU's
    /// <see cref="SweepFile.Presets"/> or a baseline's default; none for icu.</summary>
    public static IReadOnlyList<string> PresetsOf(SweepFile sweep, string method)
    {
        if (Trains(method) is false)
            return sweep.MethodPresets.ContainsKey(method) ? throw new InvalidDataException($"sweep file: \"method_presets.{method}\" must not be given: {method} does not train, it takes no preset") : [];
        if (sweep.MethodPresets.TryGetValue(method, out var presets)) return presets;
        if (method == AlignThenUnlearnMethod.Id) return sweep.Presets;
        var (runMethod, lora) = RunMethod(method);
        return [MethodPreset.BuiltinName("rwku-llama3", runMethod, lora)];
    }

    /// <summary>Whether a sweep method trains a model (false for a prompting method such as icu; null: not a method).</summary>
    static bool? Trains(string method) => MethodRegistry.All.FirstOrDefault(m => m.Name == RunMethod(method).Method) is { } m ? m is not PromptingMethod : null;

    static readonly int?[] NoValue = [null];

    static string Text(int n) => n.ToString(CultureInfo.InvariantCulture);

    /// <summary>The cells of <paramref name="sweep"/> in the order targets, methods, presets, layers, seeds (the last
    /// varies fastest); layers apply to atu only, seeds to every method but icu. <paramref name="baseFolder"/>: the sweep
    /// file's folder (relative paths in it start there); <paramref name="presetFiles"/>: the preset file (absolute) of
    /// each (method, preset, seed), see <see cref="Plan"/>.</summary>
    public static IReadOnlyList<SweepCell> Cells(SweepFile sweep, string baseFolder, string sweepFolder, Func<string, string, int?, string> presetFiles)
    {
        var unknown = sweep.Methods.Where(m => !MethodCommands.ContainsKey(m)).ToList();
        if (unknown.Count > 0)
            throw new InvalidDataException($"sweep file: method(s) {string.Join(", ", unknown.Select(m => $"'{m}'"))} cannot run with this atu; the runnable methods are: {string.Join(", ", MethodCommands.Keys)}");
        var presetNames = sweep.Methods.SelectMany(m => PresetsOf(sweep, m)).Distinct().ToDictionary(p => p, PresetLabel);
        var clash = presetNames.GroupBy(kv => kv.Value).FirstOrDefault(g => g.Count() > 1);
        if (clash is not null)
            throw new InvalidDataException($"sweep file: presets {string.Join(" and ", clash.Select(kv => $"'{kv.Key}'"))} would give cells of one name ('{clash.Key}'); rename one of the files");
        int?[] layers = sweep.Layers.Length == 0 ? [null] : [.. sweep.Layers.Select(l => (int?)l)];
        int?[] seeds = sweep.Seeds.Length == 0 ? [null] : [.. sweep.Seeds.Select(s => (int?)s)];
        string artifacts = Path.GetFullPath(sweep.Artifacts, baseFolder), rwku = Path.GetFullPath(sweep.Rwku, baseFolder);
        var cells = new List<SweepCell>();
        foreach (var target in sweep.TargetNumbers())
            foreach (var method in sweep.Methods)
            {
                var trains = Trains(method) is not false;
                IReadOnlyList<string?> presets = trains ? [.. PresetsOf(sweep, method)] : [null];
                foreach (var preset in presets)
                    foreach (var layer in method == AlignThenUnlearnMethod.Id ? layers : NoValue)
                        foreach (var seed in trains ? seeds : NoValue)
                        {
                            var name = method + (preset is null ? "" : $"_{presetNames[preset]}") + $"_t{target:D3}" + (layer is int l ? $"_L{l}" : "") + (seed is int s ? $"_s{s}" : "");
                            var folder = Path.Combine(SweepManifest.CellsFolder, name);
                            var run = Path.GetFullPath(Path.Combine(sweepFolder, folder, CellState.RunFolder));
                            var presetFile = preset is null ? null : presetFiles(method, preset, seed);
                            var command = MethodCommands[method](new CellSettings(artifacts, rwku, target, presetFile, layer, run, sweep.Device, sweep.Threads));
                            cells.Add(new SweepCell(cells.Count, name, method, preset ?? "", target, layer, seed, folder, run, command));
                        }
            }
        return cells;
    }

    /// <summary>A preset as part of a folder name: a built-in's name, a file's name without extension; characters other
    /// than letters, digits, '.', '-' replaced by '-'.</summary>
    public static string PresetLabel(string preset) =>
        UnsafeCharacters().Replace(AtuPreset.Builtin.Contains(preset) || MethodPreset.Builtin.Contains(preset) ? preset : Path.GetFileNameWithoutExtension(preset), "-");

    [GeneratedRegex("[^A-Za-z0-9.-]")]
    private static partial Regex UnsafeCharacters();

    /// <summary>Writes the sweep folder: sweep.json (a copy), presets/ (each preset with each seed, when seeds are
    /// swept, else the preset as given), manifest.json. A folder planned before from the same file is left as it is;
    /// one planned from another file is refused.</summary>
    public static SweepManifest Plan(string sweepFilePath, string sweepFolder, string[] atu)
    {
        var sweep = SweepFile.Load(sweepFilePath);
        var baseFolder = Path.GetDirectoryName(Path.GetFullPath(sweepFilePath))!;
        sweepFolder = Path.GetFullPath(sweepFolder);
        var presetFolder = Path.Combine(sweepFolder, "presets");
        var presetFiles = new Dictionary<(string, int?), (string Path, string Json)>();
        string PresetFile(string method, string preset, int? seed)
        {
            if (presetFiles.TryGetValue((preset, seed), out var known)) return known.Path;
            presetFiles[(preset, seed)] = known = (Path.Combine(presetFolder, PresetLabel(preset) + (seed is int k ? $"-seed{k}" : "") + ".json"), PresetJson(method, preset, seed, baseFolder));
            return known.Path;
        }
        var cells = Cells(sweep, baseFolder, sweepFolder, PresetFile);
        CheckTargets(sweep, baseFolder);
        var manifest = new SweepManifest { Name = sweep.Name, Atu = atu, Sweep = sweep, Cells = [.. cells] };
        var json = manifest.ToJson();
        var manifestPath = Path.Combine(sweepFolder, SweepManifest.FileName);
        if (File.Exists(manifestPath))
        {
            if (File.ReadAllText(manifestPath) == json) return manifest;
            throw new IOException($"'{sweepFolder}' holds the plan of another sweep (its {SweepManifest.FileName} differs); choose another --out or remove it");
        }
        Directory.CreateDirectory(presetFolder);
        foreach (var (path, presetJson) in presetFiles.Values) AtomicFile.WriteAllBytes(path, System.Text.Encoding.UTF8.GetBytes(presetJson));
        File.Copy(sweepFilePath, Path.Combine(sweepFolder, "sweep.json"), overwrite: true);
        foreach (var cell in cells) Directory.CreateDirectory(Path.Combine(sweepFolder, cell.Folder));
        AtomicFile.WriteAllBytes(manifestPath, System.Text.Encoding.UTF8.GetBytes(json));
        return manifest;
    }

    /// <summary>A preset loaded with the loader of its method's kind (AtuPreset for atu, MethodPreset for the baselines,
    /// which must be a preset of that method), with the seed written in.</summary>
    static string PresetJson(string method, string preset, int? seed, string baseFolder)
    {
        if (method == AlignThenUnlearnMethod.Id)
        {
            var atu = AtuPreset.Load(AtuPreset.Builtin.Contains(preset) ? preset : Path.GetFullPath(preset, baseFolder));
            return (seed is int s ? atu with { Seed = s } : atu).ToJson();
        }
        var runMethod = RunMethod(method).Method;
        var loaded = MethodPreset.Load(MethodPreset.Builtin.Contains(preset) ? preset : Path.GetFullPath(preset, baseFolder));
        if (loaded.Method != runMethod)
            throw new InvalidDataException($"sweep file: preset '{preset}' of method {method} is a {loaded.Method} preset; expected a {runMethod} preset");
        return (seed is int t ? loaded with { Seed = t } : loaded).ToJson();
    }

    /// <summary>Where the RWKU folder is here, every target must be in it (on a cluster it may only exist there).</summary>
    static void CheckTargets(SweepFile sweep, string baseFolder)
    {
        var rwku = Path.GetFullPath(sweep.Rwku, baseFolder);
        if (!Directory.Exists(rwku)) return;
        var dataset = RwkuDataset.Open(rwku);
        var missing = sweep.TargetNumbers().Where(n => dataset.Targets.All(t => t.Number != n)).ToList();
        if (missing.Count > 0)
            throw new InvalidDataException($"sweep file: target(s) {string.Join(", ", missing)} are not in the RWKU folder '{rwku}' (it has {dataset.Targets.Count} targets)");
    }

    /// <summary>A command line as one shell line (for logs and scripts).</summary>
    public static string ShellLine(IEnumerable<string> argv) => string.Join(" ", argv.Select(ShellQuote));

    public static string ShellQuote(string word) =>
        word.Length > 0 && word.All(c => char.IsAsciiLetterOrDigit(c) || "/._-=:,+%@".Contains(c)) ? word : "'" + word.Replace("'", "'\\''") + "'";
}
