namespace AlignThenUnlearn.Evaluation;

/// <summary>RWKU's utility and membership-inference files of a target, read like its other files (own folder first,
/// else <c>All/</c>; rows selected and checked by <c>subject</c>).</summary>
public sealed partial class RwkuDataset
{
    public const string BbhFile = "retain_bbh.json";
    public const string TruthfulQaFile = "truthful.json";
    public const string TriviaQaFile = "triviaqa.json";
    public const string FluencyFile = "fluency.json";
    public const string ForgetMiaFile = "forget_mia.json";
    public const string RetainMiaFile = "retain_mia.json";

    public IReadOnlyList<BbhQuestion> Bbh(RwkuTarget target) => RowsOf(target, BbhFile, RwkuJson.ReadBbh, q => q.Subject);

    public IReadOnlyList<TruthfulQaQuestion> TruthfulQa(RwkuTarget target) => RowsOf(target, TruthfulQaFile, RwkuJson.ReadTruthfulQa, q => q.Subject);

    public IReadOnlyList<TriviaQaQuestion> TriviaQa(RwkuTarget target) => RowsOf(target, TriviaQaFile, RwkuJson.ReadTriviaQa, q => q.Subject);

    public IReadOnlyList<FluencyInstruction> Fluency(RwkuTarget target) => RowsOf(target, FluencyFile, RwkuJson.ReadFluency, q => q.Subject);

    public IReadOnlyList<MiaText> Mia(RwkuTarget target, MiaSet set) =>
        RowsOf(target, set == MiaSet.Forget ? ForgetMiaFile : RetainMiaFile, path => RwkuJson.ReadMia(path, set), t => t.Subject);

    /// <summary>The files RWKU publishes per target (and in <c>All/</c>): the probes, passages, MMLU, utility and MIA
    /// files, and the training files of the baselines for Llama-3 and Phi-3. They are inputs: no verb writes them.</summary>
    public static IReadOnlyList<string> DatasetFiles =>
    [
        .. RwkuProbeFile.All.Select(f => f.FileName), PassageFile, MmluFile, BbhFile, TruthfulQaFile, TriviaQaFile, FluencyFile,
        ForgetMiaFile, RetainMiaFile, .. new[] { PositiveFile, PairFile, RejectFile }.SelectMany(f => new[] { f, f.Replace(".json", "_phi.json") }),
    ];

    public static bool IsDatasetFile(string fileName) => DatasetFiles.Contains(fileName, StringComparer.OrdinalIgnoreCase);

    /// <summary>The files each utility task reads.</summary>
    static readonly (RwkuTasks Task, string[] Files)[] UtilityTaskFiles =
    [
        (RwkuTasks.Bbh, [BbhFile]), (RwkuTasks.TruthfulQa, [TruthfulQaFile]), (RwkuTasks.TriviaQa, [TriviaQaFile]),
        (RwkuTasks.Fluency, [FluencyFile]), (RwkuTasks.Mia, [ForgetMiaFile, RetainMiaFile]),
    ];

    /// <summary><paramref name="tasks"/> less the utility tasks whose files one of <paramref name="targets"/> lacks (the
    /// toy world has no BBH, TruthfulQA or TriviaQA); the probe tasks stay (every RWKU folder has their files).</summary>
    public RwkuTasks Available(IEnumerable<RwkuTarget> targets, RwkuTasks tasks)
    {
        var list = targets.ToList();
        foreach (var (task, files) in UtilityTaskFiles)
            if (tasks.HasFlag(task) && !list.All(t => files.All(f => Has(t, f)))) tasks &= ~task;
        return tasks;
    }

    /// <summary>The utility and MIA data of a target for the tasks asked (files of tasks not asked are not read).</summary>
    public RwkuUtilityData LoadUtility(RwkuTarget target, RwkuTasks tasks) => new(target,
        tasks.HasFlag(RwkuTasks.Bbh) ? Bbh(target) : [],
        tasks.HasFlag(RwkuTasks.TruthfulQa) ? TruthfulQa(target) : [],
        tasks.HasFlag(RwkuTasks.TriviaQa) ? TriviaQa(target) : [],
        tasks.HasFlag(RwkuTasks.Fluency) ? Fluency(target) : [],
        tasks.HasFlag(RwkuTasks.Mia) ? [.. Mia(target, MiaSet.Forget), .. Mia(target, MiaSet.Retain)] : []);
}
