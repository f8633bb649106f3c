namespace AlignThenUnlearn.Tests.Support;

/// <summary>Files checked into the repository (models/, ...), found from the test binaries' folder upwards.</summary>
public static class RepositoryFiles
{
    public static string Root { get; } = FindRoot();

    public static string Path(params string[] parts) => System.IO.Path.Combine([Root, .. parts]);

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(System.IO.Path.Combine(dir.FullName, "AlignThenUnlearn.sln"))) return dir.FullName;
        throw new DirectoryNotFoundException($"no AlignThenUnlearn.sln above '{AppContext.BaseDirectory}'");
    }
}
