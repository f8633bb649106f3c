namespace AlignThenUnlearn.Models;

/// <summary>Checks that an output path shares nothing with the inputs of the same command. Writing an output replaces
/// it (with --force) or fills it; if it is an input, lies inside one or contains one, that destroys the input, so such
/// an output is refused always, with or without --force. Paths are compared after links are resolved.</summary>
public static class OutputPaths
{
    /// <param name="output">The output's option and path (e.g. ("--out", "run1")).</param>
    /// <param name="inputs">Each input's option and path; null paths (options not given) are skipped.</param>
    public static void RequireApart((string Option, string Path) output, params (string Option, string? Path)[] inputs)
    {
        var outputPath = Resolved(output.Path);
        foreach (var (option, path) in inputs)
        {
            if (path is null) continue;
            var inputPath = Resolved(path);
            string? relation = outputPath == inputPath ? "is"
                : Inside(outputPath, inputPath) ? "lies inside"
                : Inside(inputPath, outputPath) ? "contains"
                : null;
            if (relation is not null)
                throw new IOException($"{output.Option} '{output.Path}' {relation} the input {option} '{path}'; writing it would destroy that input, so it is refused (also with --force): choose an output apart from every input");
        }
    }

    static bool Inside(string path, string folder) =>
        path.StartsWith(folder.EndsWith(System.IO.Path.DirectorySeparatorChar) ? folder : folder + System.IO.Path.DirectorySeparatorChar, StringComparison.Ordinal);

    /// <summary>The absolute path with every link along it resolved (the parts that do not exist yet kept as they are).</summary>
    public static string Resolved(string path)
    {
        var full = System.IO.Path.TrimEndingDirectorySeparator(System.IO.Path.GetFullPath(path));
        var root = System.IO.Path.GetPathRoot(full)!;
        var current = root;
        foreach (var part in full[root.Length..].Split(System.IO.Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries))
        {
            current = System.IO.Path.Combine(current, part);
            FileSystemInfo info = Directory.Exists(current) ? new DirectoryInfo(current) : new FileInfo(current);
            if (info.LinkTarget is not null && info.ResolveLinkTarget(returnFinalTarget: true) is { } target)
                current = System.IO.Path.TrimEndingDirectorySeparator(target.FullName);
        }
        return current;
    }

    /// <summary>A label as a folder name: its letters and digits, each run of other characters one '-', none at the ends
    /// ("GA (F) final" -> GA-F-final, "ATU forget-below-50" -> ATU-forget-below-50).</summary>
    public static string Slug(string label)
    {
        var slug = new System.Text.StringBuilder();
        foreach (var c in label)
            if (char.IsAsciiLetterOrDigit(c)) slug.Append(c);
            else if (slug.Length > 0 && slug[^1] != '-') slug.Append('-');
        return slug.ToString().TrimEnd('-') is { Length: > 0 } s ? s : throw new ArgumentException($"'{label}' has no letters or digits to name a folder");
    }
}
