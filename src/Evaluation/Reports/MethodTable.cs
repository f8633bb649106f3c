using System.Text.Json;
using AlignThenUnlearn.Unlearning;

namespace AlignThenUnlearn.Evaluation;

/// <summary>Table 1 across methods (`atu report`): every checkpoint of every run folder of `atu run --method M` (and of
/// Align-then-Unlearn's `atu run`) as one row whose Method cell names the method, F/L and the checkpoint, and one plot
/// series per method. The method comes from what the run folder recorded (its preset.json, or ICU's method.json), never
/// from the folder's name.</summary>
public static class MethodTable
{
    /// <summary>ICU trains nothing and so has no preset; its run folder records the method in this file.</summary>
    public const string MethodRecordFile = "method.json";
    public const string BeforeRow = "Before";

    /// <summary>"GA (F)", "NPO (L)", "ATU", "ICU": the method as the run folder recorded it.</summary>
    public static string MethodLabel(string runFolder)
    {
        var presetPath = Path.Combine(runFolder, RunHarness.PresetFile);
        var recordPath = Path.Combine(runFolder, MethodRecordFile);
        var path = File.Exists(presetPath) ? presetPath : File.Exists(recordPath) ? recordPath
            : throw new FileNotFoundException($"'{runFolder}' is a run folder without {RunHarness.PresetFile} or {MethodRecordFile}: which method made it is not recorded", presetPath);
        using var document = JsonDocument.Parse(File.ReadAllBytes(path), new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        var root = document.RootElement;
        // Align-then-Unlearn's preset has no "method"; the baselines' presets and ICU's record do.
        if (!root.TryGetProperty("method", out var method)) return "ATU";
        if (method.ValueKind != JsonValueKind.String) throw new DatasetFormatException(path, null, "method", $"is {method.ValueKind}, expected a string");
        var name = method.GetString()!;
        bool lora = root.TryGetProperty("lora", out var l) && l.ValueKind == JsonValueKind.True;
        // A method the registry does not know is shown as recorded.
        return MethodRegistry.All.FirstOrDefault(m => m.Name == name) is { } known ? known.Label(lora) : $"{name.ToUpperInvariant()} ({(lora ? "L" : "F")})";
    }

    /// <summary>The rows of one path given to `atu report`: a run folder (with a report/ folder of checkpoints) gives its
    /// checkpoints in order (before, forget-below-50/35/20, final), named "method checkpoint" with the method as their
    /// series; a results.json (or a folder holding one) gives itself as it is.</summary>
    public static IReadOnlyList<RunSummary> Rows(string path, string reportFolder)
    {
        if (File.Exists(path)) return [ResultsJson.Read(path)];
        if (File.Exists(Path.Combine(path, RwkuReports.ResultsFile))) return [ResultsJson.Read(Path.Combine(path, RwkuReports.ResultsFile))];
        var report = Path.Combine(path, reportFolder);
        if (!Directory.Exists(report))
            throw new FileNotFoundException($"'{path}' holds neither {RwkuReports.ResultsFile} nor a {reportFolder}/ folder of `atu run`", Path.Combine(path, RwkuReports.ResultsFile));
        var label = MethodLabel(path);
        var checkpoints = Directory.GetDirectories(report)
            .Select(d => Path.Combine(d, RwkuReports.ResultsFile)).Where(File.Exists).Select(ResultsJson.Read).ToList();
        if (checkpoints.Count == 0) throw new FileNotFoundException($"'{report}' holds no checkpoint's {RwkuReports.ResultsFile}", report);
        return [.. checkpoints.Select(r => (Run: r, Checkpoint: Checkpoint(r.Name)))
            .OrderBy(c => Rank(c.Checkpoint)).ThenBy(c => c.Checkpoint, StringComparer.Ordinal)
            .Select(c => c.Checkpoint == "before" ? c.Run with { Name = BeforeRow, Series = BeforeRow }
                : c.Run with { Name = c.Checkpoint == label ? label : $"{label} {c.Checkpoint}", Series = label })];
    }

    /// <summary>Every path's rows in the order given; the model before unlearning (the same in every run folder of one
    /// model) once, first.</summary>
    public static IReadOnlyList<RunSummary> Combine(IEnumerable<string> paths, string reportFolder)
    {
        var rows = paths.SelectMany(p => Rows(p, reportFolder)).ToList();
        var before = rows.FirstOrDefault(r => r.Name == BeforeRow);
        return [.. before is null ? [] : new[] { before }, .. rows.Where(r => r.Name != BeforeRow)];
    }

    /// <summary>The checkpoint of a report row named "LABEL checkpoint" by `atu run` (its last word: before,
    /// forget-below-N, final; ICU's row is the method's name alone).</summary>
    static string Checkpoint(string runName) => runName.Split(' ')[^1];

    /// <summary>before, then the thresholds from the highest (reached first) down, then final.</summary>
    static double Rank(string checkpoint) => checkpoint switch
    {
        "before" => double.NegativeInfinity,
        "final" => double.PositiveInfinity,
        _ when checkpoint.StartsWith("forget-below-", StringComparison.Ordinal)
            && double.TryParse(checkpoint["forget-below-".Length..], System.Globalization.CultureInfo.InvariantCulture, out var t) => -t,
        _ => 0,
    };
}
