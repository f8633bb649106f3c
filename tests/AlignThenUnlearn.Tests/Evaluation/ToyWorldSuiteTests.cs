using System.Security.Cryptography;
using System.Text;
using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.Evaluation.ToyWorld;

namespace AlignThenUnlearn.Tests.Evaluation;

/// <summary>The toy world's utility and membership-inference files (fluency.json, forget_mia.json, retain_mia.json):
/// adding them left every other file of the world as it was, and the people of retain_mia.json are in no file the
/// toy model is trained on.</summary>
public sealed class ToyWorldSuiteTests(ToyWorldFolder world) : IClassFixture<ToyWorldFolder>
{
    /// <summary>SHA-256 of the manifest ("relative path, SHA-256 of the file" per line, paths sorted ordinally) of every
    /// file the seed-1 world held before the utility files were added, computed from that generator (main at 8e0b5ed).
    /// The pre-training set, the tokenizer and the toy run's results depend on these bytes.</summary>
    const string SeedOneManifestSha256 = "326AD1FEEE15E0EC9DC5B9D0B5E232E531D7C3EB31EDE08CE127D32CF57E377E";

    static readonly string[] UtilityFiles = [RwkuDataset.FluencyFile, RwkuDataset.ForgetMiaFile, RwkuDataset.RetainMiaFile];

    static string Manifest(string root, Func<string, bool> include)
    {
        var lines = new StringBuilder();
        foreach (var file in Directory.GetFiles(root, "*", SearchOption.AllDirectories)
                     .Select(f => Path.GetRelativePath(root, f).Replace('\\', '/'))
                     .Where(include)
                     .Order(StringComparer.Ordinal))
            lines.Append(file).Append(' ').Append(Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(Path.Combine(root, file))))).Append('\n');
        return lines.ToString();
    }

    [Fact]
    public void The_files_made_before_the_utility_files_keep_their_bytes()
    {
        var manifest = Manifest(world.Root, file => !UtilityFiles.Contains(Path.GetFileName(file)));
        Assert.Equal(SeedOneManifestSha256, Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(manifest))));
    }
}
