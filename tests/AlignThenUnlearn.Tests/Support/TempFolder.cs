namespace AlignThenUnlearn.Tests.Support;

/// <summary>A fresh folder under the system temp folder, removed with everything in it on dispose
/// (symbolic links inside are removed, not followed).</summary>
public sealed class TempFolder : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory("atu-test-").FullName;

    /// <summary>The full path of <paramref name="relative"/> inside the folder.</summary>
    public string File(string relative) => System.IO.Path.Combine(Path, relative);

    public TempFolder Write(string name, string text)
    {
        System.IO.File.WriteAllText(File(name), text);
        return this;
    }

    /// <summary>Names of the files now in the folder, sorted.</summary>
    public string[] FileNames() => Directory.GetFiles(Path).Select(System.IO.Path.GetFileName).Order(StringComparer.Ordinal).ToArray()!;

    public void Dispose()
    {
        if (Directory.Exists(Path)) Directory.Delete(Path, recursive: true);
    }
}
