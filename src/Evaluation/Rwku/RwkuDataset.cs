using System.Globalization;
using System.Text.RegularExpressions;
using AlignThenUnlearn.Runtime;

namespace AlignThenUnlearn.Evaluation;

/// <summary>RWKU as published: a folder of per-target folders <c>&lt;n&gt;_&lt;Name&gt;/</c> (the name with spaces as
/// underscores) and a combined <c>All/</c> folder. A target's file is read from its own folder when there, else from
/// <c>All/</c>; either way rows are selected by <c>subject</c> equal to the target's name. In a target's own folder
/// every row must belong to the target (a row about another subject means the folder is mislabelled).</summary>
public sealed partial class RwkuDataset
{
    public const string CombinedFolder = "All";
    public const string PassageFile = "passage.json";
    public const string MmluFile = "retain_mmlu.json";
    /// <summary>The training files of the baselines, generated per model: these names for Llama-3-8B-Instruct, with
    /// <c>_phi</c> before the extension for Phi-3 (<c>positive_phi.json</c>, <c>pair_phi.json</c>, <c>reject_phi.json</c>).</summary>
    public const string PositiveFile = "positive.json", PairFile = "pair.json", RejectFile = "reject.json";

    readonly Dictionary<string, object> _combinedRows = new(StringComparer.Ordinal);

    public string Root { get; }
    /// <summary>The targets found, by number.</summary>
    public IReadOnlyList<RwkuTarget> Targets { get; }

    RwkuDataset(string root, IReadOnlyList<RwkuTarget> targets) => (Root, Targets) = (root, targets);

    [GeneratedRegex(@"^([0-9]+)_(.+)$")]
    private static partial Regex TargetFolderPattern();

    public static RwkuDataset Open(string root)
    {
        if (!Directory.Exists(root)) throw new DirectoryNotFoundException($"RWKU folder '{root}' does not exist");
        var targets = new List<RwkuTarget>();
        foreach (var folder in Directory.GetDirectories(root))
        {
            var match = TargetFolderPattern().Match(Path.GetFileName(folder));
            if (!match.Success) continue;
            if (!int.TryParse(match.Groups[1].Value, NumberStyles.None, CultureInfo.InvariantCulture, out var number)) continue;
            targets.Add(new RwkuTarget(number, match.Groups[2].Value.Replace('_', ' '), folder));
        }
        foreach (var clash in targets.GroupBy(t => t.Number).Where(g => g.Count() > 1))
            throw new InvalidDataException($"RWKU folder '{root}' has several folders for target {clash.Key}: {string.Join(", ", clash.Select(t => Path.GetFileName(t.Folder)))}");
        if (targets.Count == 0)
            throw new InvalidDataException($"RWKU folder '{root}' has no target folders named <n>_<Name> (such as 1_Stephen_King)");
        return new RwkuDataset(root, [.. targets.OrderBy(t => t.Number)]);
    }

    public RwkuTarget Target(int number) =>
        Targets.FirstOrDefault(t => t.Number == number)
        ?? throw new KeyNotFoundException($"RWKU folder '{Root}' has no target {number} (it has {DescribeNumbers()})");

    /// <summary><paramref name="count"/> targets (fewer when there are fewer) drawn by <paramref name="seed"/>, leaving out
    /// <paramref name="except"/>, in the order drawn: the one seeded draw of other targets (GradDiff's retain corpus,
    /// Align-then-Unlearn's alignment corpus, the toy job's people).</summary>
    public IReadOnlyList<RwkuTarget> Draw(int count, long seed, RwkuTarget? except = null)
    {
        var candidates = Targets.Where(t => t.Number != except?.Number).ToList();
        return [.. new DataOrder(candidates.Count, seed).Permutation(0).Take(Math.Min(count, candidates.Count)).Select(i => candidates[i])];
    }

    /// <summary>The targets a selection such as <c>1-100</c> names (see <see cref="RwkuTargetSelection"/>).</summary>
    public IReadOnlyList<RwkuTarget> Select(string spec)
    {
        var numbers = RwkuTargetSelection.Parse(spec);
        var missing = numbers.Where(n => Targets.All(t => t.Number != n)).ToList();
        if (missing.Count > 0)
            throw new KeyNotFoundException($"RWKU folder '{Root}' has no target {string.Join(", ", missing.Take(10))}{(missing.Count > 10 ? ", ..." : "")} (it has {DescribeNumbers()})");
        return [.. numbers.Select(Target)];
    }

    public IReadOnlyList<RwkuProbe> Probes(RwkuTarget target, RwkuProbeFile file) =>
        RowsOf(target, file.FileName, path => RwkuJson.ReadProbes(path, file), p => p.Subject);

    public IReadOnlyList<RwkuPassage> Passages(RwkuTarget target) =>
        RowsOf(target, PassageFile, RwkuJson.ReadPassages, p => p.Subject);

    /// <summary>The texts of a target's forget corpus: <c>passage.json</c>'s passages, or the rows of a model's own file
    /// (RWKU's <c>positive.json</c> for Llama-3, <c>positive_phi.json</c> for Phi-3, or one `atu corpus` wrote), which
    /// lives in the target's own folder.</summary>
    public IReadOnlyList<string> ForgetTexts(RwkuTarget target, string fileName)
    {
        if (fileName == PassageFile) return [.. Passages(target).Select(p => p.Text)];
        var path = Path.Combine(target.Folder, fileName);
        if (!File.Exists(path))
            throw new FileNotFoundException($"RWKU target {target.Number} ({target.Name}) has no forget corpus '{path}': copy RWKU's {fileName} there "
                + $"(the per-target files of the Hugging Face dataset jinzhuoran/RWKU) or generate one with `atu corpus --rwku {Root} --targets {target.Number} --file {fileName} --artifacts <model>`", path);
        var texts = RwkuJson.ReadTexts(path);
        if (texts.Count == 0) throw new DatasetFormatException(path, null, null, "holds no texts");
        return texts;
    }

    public IReadOnlyList<RwkuPair> Pairs(RwkuTarget target, string fileName = PairFile) =>
        RowsOf(target, fileName, RwkuJson.ReadPairs, p => p.Subject);

    public IReadOnlyList<RwkuRefusal> Refusals(RwkuTarget target, string fileName = RejectFile) =>
        RowsOf(target, fileName, RwkuJson.ReadRefusals, r => r.Subject);

    public IReadOnlyList<MmluQuestion> Mmlu(RwkuTarget target) =>
        RowsOf(target, MmluFile, RwkuJson.ReadMmlu, q => q.Subject);

    /// <summary>All probe files, the passages and (when asked) the MMLU questions of a target.</summary>
    public RwkuTargetData Load(RwkuTarget target, bool includeMmlu = true) => new(
        target,
        [.. RwkuProbeFile.All.SelectMany(file => Probes(target, file))],
        Passages(target),
        includeMmlu ? Mmlu(target) : []);

    /// <summary>Whether a target has the file, in its own folder or in <c>All/</c>.</summary>
    public bool Has(RwkuTarget target, string fileName) =>
        File.Exists(Path.Combine(target.Folder, fileName)) || File.Exists(Path.Combine(Root, CombinedFolder, fileName));

    /// <summary>Where a target's file is read from: its own folder if the file is there, else <c>All/</c>.</summary>
    public string PathOf(RwkuTarget target, string fileName) => Locate(target, fileName).Path;

    (string Path, bool OwnFolder) Locate(RwkuTarget target, string fileName)
    {
        var own = Path.Combine(target.Folder, fileName);
        if (File.Exists(own)) return (own, true);
        var combined = Path.Combine(Root, CombinedFolder, fileName);
        if (File.Exists(combined)) return (combined, false);
        throw new FileNotFoundException($"RWKU target {target.Number} ({target.Name}) has no {fileName}: neither '{own}' nor '{combined}' exists", own);
    }

    IReadOnlyList<T> RowsOf<T>(RwkuTarget target, string fileName, Func<string, List<T>> read, Func<T, string> subjectOf)
    {
        var (path, ownFolder) = Locate(target, fileName);
        if (ownFolder)
        {
            var rows = read(path);
            for (int i = 0; i < rows.Count; i++)
                if (!string.Equals(subjectOf(rows[i]), target.Name, StringComparison.Ordinal))
                    throw new DatasetFormatException(path, i, "subject",
                        $"is \"{subjectOf(rows[i])}\" but the folder '{Path.GetFileName(target.Folder)}' is target \"{target.Name}\"");
            return rows;
        }
        // The combined files hold every target; they are parsed once and shared by all targets.
        if (!_combinedRows.TryGetValue(path, out var cached)) _combinedRows[path] = cached = read(path);
        return [.. ((List<T>)cached).Where(row => string.Equals(subjectOf(row), target.Name, StringComparison.Ordinal))];
    }

    string DescribeNumbers()
    {
        var numbers = Targets.Select(t => t.Number).ToList();
        bool contiguous = numbers[^1] - numbers[0] + 1 == numbers.Count;
        return contiguous ? $"{numbers[0]}-{numbers[^1]}" : string.Join(", ", numbers.Take(20)) + (numbers.Count > 20 ? ", ..." : "");
    }
}
