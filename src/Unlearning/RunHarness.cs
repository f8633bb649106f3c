using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Models.Checkpoints;
using AlignThenUnlearn.Runtime;

namespace AlignThenUnlearn.Unlearning;

/// <summary>Where a run is, after each step: for progress displays.</summary>
public sealed record UnlearningProgress(string Phase, int Stage, double Tau, long Step, long Steps, double Loss, double MeanCosine,
    double StepsPerSecond, long StepsLeftInRun);

/// <summary>How any unlearning run is run (Align-then-Unlearn's <see cref="AtuRun"/>, a trained method's <see cref="MethodRun"/>).</summary>
public sealed record UnlearningRunOptions
{
    public required ExecutionDevice Device { get; init; }
    /// <summary>The run folder: checkpoints, stage table, named checkpoints, log.</summary>
    public required string Folder { get; init; }
    /// <summary>Continue the run in <see cref="Folder"/> from its newest checkpoint.</summary>
    public bool Resume { get; init; }
    /// <summary>Scores the probes of a model given as a full LLM weights file (null: the weights the run started from).
    /// Null: no probes are scored, and no checkpoints are named.</summary>
    public Func<string?, ProbeScores>? Evaluate { get; init; }
    public Action<UnlearningProgress>? Progress { get; init; }
    /// <summary>Told each line the run writes to its log.</summary>
    public Action<string>? Log { get; init; }
}

/// <summary>What a run leaves: scores before unlearning, the stage table, the named checkpoints (threshold to folder)
/// and the final model's folder (null when the run stopped early, e.g. after alignment only).</summary>
public sealed record UnlearningRunResult(ProbeScores? Before, IReadOnlyList<StageRecord> Stages, IReadOnlyDictionary<double, string> Named, string? Final);

/// <summary>The one harness every method's run uses (its clients own the training loop): the run folder (preset,
/// settings, log, lock), the settings check on resume, the scores before unlearning, the evaluation points with the
/// threshold-named checkpoints (<see cref="ThresholdCheckpoints"/>), the stage table (written atomically), the history a
/// checkpoint keeps and restores, and the final model. The model files of a kept folder are the client's
/// (<c>writeModel</c>); the harness adds the stage table so far and commits the folder atomically.</summary>
public sealed class RunHarness : IDisposable
{
    public const string StagesJson = "stages.json", StagesMarkdown = "stages.md", LogFile = "run.log", PresetFile = "preset.json", SettingsFile = "settings.json",
        CheckpointsFolder = "checkpoints", FinalFolder = "final", ModelFile = "model.safetensors", EvaluationFolder = "evaluation";

    readonly UnlearningRunOptions _options;
    readonly string _title, _target;
    readonly Action<StagedFolder> _writeModel;
    readonly StreamWriter _log;
    readonly FileStream _lock;
    readonly List<StageRecord> _records = [];

    /// <param name="title">The stage table's heading ("Align-then-Unlearn", "GA (F)").</param>
    /// <param name="target">The target unlearned (checked against a checkpoint's history on resume).</param>
    /// <param name="writeModel">Writes the model files (at least <see cref="ModelFile"/>) into a folder being kept.</param>
    public RunHarness(UnlearningRunOptions options, string title, string target, IEnumerable<double> thresholds, Action<StagedFolder> writeModel)
    {
        (_options, _title, _target, _writeModel) = (options, title, target, writeModel);
        Thresholds = new ThresholdCheckpoints(thresholds);
        Directory.CreateDirectory(options.Folder);
        _lock = Lock(options.Folder);
        _log = new StreamWriter(Path.Combine(options.Folder, LogFile), append: true) { AutoFlush = true };
    }

    public string Folder => _options.Folder;
    public ThresholdCheckpoints Thresholds { get; }
    public ProbeScores? Before { get; private set; }
    public IReadOnlyList<StageRecord> Records => _records;
    public bool Evaluates => _options.Evaluate is not null;

    /// <summary>Holds <c>.lock</c> in the run folder for the run's lifetime (an exclusive lock the OS drops when the process
    /// dies), so a second process cannot train into the same checkpoints.</summary>
    static FileStream Lock(string folder)
    {
        try { return new FileStream(Path.Combine(folder, ".lock"), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None); }
        catch (IOException e) { throw new IOException($"another process is running in '{folder}' ({e.Message})", e); }
    }

    /// <summary>Records the preset and the settings of a new run, or (a folder that holds a run) refuses it unless resuming,
    /// and refuses other settings than those recorded. <paramref name="newestCheckpoint"/>: the run's newest checkpoint, if any.</summary>
    public void Begin(string presetJson, JsonObject settings, string? newestCheckpoint)
    {
        var presetPath = Path.Combine(Folder, PresetFile);
        var settingsPath = Path.Combine(Folder, SettingsFile);
        if (newestCheckpoint is not null || File.Exists(presetPath) || File.Exists(settingsPath))
        {
            if (!_options.Resume)
                throw new IOException($"'{Folder}' already holds a run" + (newestCheckpoint is null ? "" : $" (checkpoint '{Path.GetFileName(newestCheckpoint)}')") + "; resume it (--resume) or choose another folder");
            // Runs from before settings.json was written are checked on their preset alone.
            var differences = File.Exists(settingsPath) ? RecordedSettings.Differences(settingsPath, settings)
                : !File.Exists(presetPath) || File.ReadAllText(presetPath) == presetJson ? [] : [$"the preset differs from '{presetPath}'"];
            if (differences.Count > 0)
                throw new InvalidOperationException($"'{Folder}' holds a run with other settings, and a run resumes only with the settings it started with: {string.Join("; ", differences)}");
        }
        else
        {
            AtomicFile.WriteAllBytes(presetPath, Encoding.UTF8.GetBytes(presetJson));
            RecordedSettings.Record(settingsPath, settings);
        }
    }

    /// <summary>Scores the starting model (when the run evaluates).</summary>
    public void ScoreBefore()
    {
        if (_options.Evaluate is null) return;
        Before = _options.Evaluate(null);
        Log($"before unlearning: {Before.Describe()}");
    }

    /// <summary>An evaluation point: scores the model as it is now, keeps it under the names of the thresholds its forget
    /// average crosses for the first time, and returns the scores and those names (nulls when the run evaluates nothing).</summary>
    /// <param name="where">How the log names the point ("stage 3", "evaluation 2 (step 40)").</param>
    public (ProbeScores? Scores, string? Checkpoints) Evaluate(int stage, string where)
    {
        if (_options.Evaluate is null) return (null, null);
        var folder = Path.Combine(Folder, EvaluationFolder);
        KeepModel(folder);
        var scores = _options.Evaluate(Path.Combine(folder, ModelFile));
        Log($"{where}: {scores.Describe()}");
        var crossed = Thresholds.Observe(stage, scores.ForgetAverage);
        foreach (var t in crossed)
        {
            var named = Path.Combine(Folder, ThresholdCheckpoints.NameOf(t));
            KeepModel(named);
            Log($"{where}: forget average below {t.ToString(CultureInfo.InvariantCulture)} for the first time; model kept in {named}");
        }
        return (scores, crossed.Count > 0 ? string.Join(", ", crossed.Select(ThresholdCheckpoints.NameOf)) : null);
    }

    public void AddRecord(StageRecord record) => _records.Add(record);

    public void ReplaceLastRecord(StageRecord record) => _records[^1] = record;

    /// <summary>stages.json, stages.md (with the scores before unlearning and <paramref name="warning"/> above the table) and
    /// <see cref="Trajectory.FileName"/> (every evaluation point, the model before first).</summary>
    public void WriteStageTable(string? warning = null)
    {
        AtomicFile.WriteAllBytes(Path.Combine(Folder, StagesJson), Encoding.UTF8.GetBytes(StageTable.ToJson(_records)));
        if (Evaluates) AtomicFile.WriteAllBytes(Path.Combine(Folder, Trajectory.FileName), Encoding.UTF8.GetBytes(Trajectory.ToJson(Trajectory.Of(Before, _records))));
        var before = Before is null ? "" : $"Before unlearning: {Before.Describe()}.\n\n";
        var warned = warning is null ? "" : $"**Warning:** {warning}\n\n";
        AtomicFile.WriteAllBytes(Path.Combine(Folder, StagesMarkdown), Encoding.UTF8.GetBytes($"# {_title}: {_target}\n\n{warned}{before}{StageTable.ToMarkdown(_records)}"));
    }

    /// <summary>A folder (replaced atomically) with the client's model files and the stage table so far.</summary>
    public void KeepModel(string folder)
    {
        using var staged = StagedFolder.Create(folder, force: true);
        _writeModel(staged);
        File.WriteAllText(staged.PathOf(StagesJson), StageTable.ToJson(_records));
        staged.Commit();
    }

    /// <summary>The final model in <see cref="FinalFolder"/>, and the run's result.</summary>
    public UnlearningRunResult Finish()
    {
        var final = Path.Combine(Folder, FinalFolder);
        KeepModel(final);
        Log($"final model in {final}");
        return Result(final);
    }

    /// <summary>The result so far (<paramref name="final"/> null: the run has no final model yet).</summary>
    public UnlearningRunResult Result(string? final) =>
        new(Before, [.. _records], Thresholds.Crossed.ToDictionary(kv => kv.Key, kv => Path.Combine(Folder, ThresholdCheckpoints.NameOf(kv.Key))), final);

    /// <summary>The run's history into a checkpoint's state: its <paramref name="format"/>, target, scores before and stage table.</summary>
    public void SaveHistory(JsonObject state, string format)
    {
        state["format"] = format;
        state["target"] = _target;
        state["before"] = Before?.ToJson();
        state["records"] = JsonNode.Parse(StageTable.ToJson(_records));
    }

    /// <summary>The history from a checkpoint's state (<paramref name="source"/> names it in errors), with the thresholds
    /// it crossed; a state of another format or target is refused.</summary>
    public void RestoreHistory(JsonObject state, string format, string source)
    {
        if (state["format"]?.GetValue<string>() != format)
            throw new ModelFormatException($"{source} does not belong to this run: its format is not {format}");
        if (state["target"]?.GetValue<string>() != _target)
            throw new ModelFormatException($"{source} does not belong to this run: it unlearns '{state["target"]}', not '{_target}'");
        Before = ProbeScores.FromJson(state["before"]);
        _records.Clear();
        _records.AddRange(StageTable.FromJson(state["records"]!.ToJsonString()));
        foreach (var r in _records.Where(r => r.ForgetAverage is not null)) Thresholds.Observe(r.Stage, r.ForgetAverage!.Value);
    }

    public void Log(string line)
    {
        _log.WriteLine($"{DateTime.UtcNow:yyyy-MM-ddTHH:mm:ssZ} {line}");
        _options.Log?.Invoke(line);
    }

    public void Dispose()
    {
        _log.Dispose();
        _lock.Dispose();
    }
}
