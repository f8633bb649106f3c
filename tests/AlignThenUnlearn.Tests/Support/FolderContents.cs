using System.Security.Cryptography;

namespace AlignThenUnlearn.Tests.Support;

public static class FolderContents
{
    /// <summary>SHA-256 over every file's relative path and bytes: equal exactly when the folder is byte-identical.</summary>
    public static string Hash(string folder)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var file in Directory.GetFiles(folder, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            hash.AppendData(System.Text.Encoding.UTF8.GetBytes(Path.GetRelativePath(folder, file) + "\0"));
            hash.AppendData(File.ReadAllBytes(file));
        }
        return Convert.ToHexString(hash.GetHashAndReset());
    }
}
