namespace AlignThenUnlearn.Tests.Support;

/// <summary>A fresh folder under the system temp path, deleted with everything in it on dispose
/// (symbolic links inside are removed, not followed).</summary>
public sealed class TempFolder : IDisposable
{
    public string Root { get; } = Directory.CreateTempSubdirectory("atu-test-").FullName;

    /// <summary>The full path of <paramref name="relative"/> inside the folder.</summary>
    public string this[string relative] => Path.Combine(Root, relative);

    public void Dispose()
    {
        if (Directory.Exists(Root)) Directory.Delete(Root, recursive: true);
    }
}
