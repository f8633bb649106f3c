using AlignThenUnlearn.Models;

namespace AlignThenUnlearn.Evaluation;

/// <summary>The report files of an evaluation, each written whole or not at all.</summary>
public static class RwkuReports
{
    public const string ResultsFile = "results.json";
    public const string TableFile = "results.md";
    public const string ProbesFile = "probes.jsonl";
    public const string CombinedTableFile = "combined.md";

    /// <summary>Writes <c>results.json</c>, <c>results.md</c> (the run's row, a row per target and AA per attack type) and
    /// <c>probes.jsonl</c> (every probe) into <paramref name="folder"/>.</summary>
    public static void WriteRun(string folder, RunEvaluation run)
    {
        Directory.CreateDirectory(folder);
        AtomicFile.WriteAllBytes(Path.Combine(folder, ResultsFile), ResultsJson.Serialize(run.Summary));
        WriteText(Path.Combine(folder, TableFile), ResultsTable.Run(run.Summary) + ResultsTable.AdversarialByType(Attacks.AdversarialTypes.Of(run)));
        var probes = new StringWriter { NewLine = "\n" };
        ProbesJsonLines.Write(probes, run.Summary.Name, run.Targets);
        WriteText(Path.Combine(folder, ProbesFile), probes.ToString());
    }

    /// <summary>Reads the <c>results.json</c> of several runs (files, or folders holding one) and writes one table
    /// (<c>combined.md</c>, a row per run in the order given) and the forget-vs-neighbour plot into
    /// <paramref name="folder"/>.</summary>
    public static IReadOnlyList<RunSummary> Combine(IEnumerable<string> resultsPaths, string folder)
    {
        var runs = resultsPaths.Select(p => ResultsJson.Read(Directory.Exists(p) ? Path.Combine(p, ResultsFile) : p)).ToList();
        Write(folder, runs, ResultsTable.Runs(runs), "each run averaged over its targets");
        return runs;
    }

    /// <summary>`atu report`: every checkpoint of every run folder (<see cref="MethodTable.Combine"/>; or results.json
    /// files) as one Table 1 with a Method column (<c>combined.md</c>) and the plot with one curve per method.</summary>
    public static IReadOnlyList<RunSummary> CombineMethods(IEnumerable<string> paths, string reportFolder, string folder)
    {
        var rows = MethodTable.Combine(paths, reportFolder);
        Write(folder, rows, ResultsTable.Methods(rows), "each row averaged over its targets; a row per method (F: full fine-tuning, L: LoRA) and checkpoint");
        return rows;
    }

    static void Write(string folder, IReadOnlyList<RunSummary> runs, string table, string averaging)
    {
        Directory.CreateDirectory(folder);
        WriteText(Path.Combine(folder, CombinedTableFile), $"# RWKU results\n\nROUGE-L recall and MMLU accuracy in percent, {averaging}.\n\n" + table);
        AtomicFile.WriteAllBytes(Path.Combine(folder, TradeoffPlot.FileName), TradeoffPlot.RenderPng(runs));
    }

    static void WriteText(string path, string text) => AtomicFile.WriteAllBytes(path, System.Text.Encoding.UTF8.GetBytes(text));
}
