using System.Text.Json.Nodes;
using AlignThenUnlearn.Models;

namespace AlignThenUnlearn.Tests.Models;

public sealed class ArtifactFolderTests : IDisposable
{
    readonly string _root = Directory.CreateTempSubdirectory("atu-folder-").FullName;
    public void Dispose() => Directory.Delete(_root, recursive: true);

    string[] Entries() => Directory.GetFileSystemEntries(_root).Select(Path.GetFileName).ToArray()!;

    [Fact]
    public void Committed_folder_appears_complete_and_nothing_else_remains()
    {
        var target = Path.Combine(_root, "out");
        using (var staged = StagedFolder.Create(target, force: false))
        {
            File.WriteAllText(staged.PathOf("a/b.txt"), "hello");
            Assert.False(Directory.Exists(target));   // invisible until committed
            staged.Commit();
        }
        Assert.Equal("hello", File.ReadAllText(Path.Combine(target, "a", "b.txt")));
        Assert.Equal(["out"], Entries());
    }

    [Fact]
    public void Failure_before_commit_leaves_no_folder_behind()
    {
        var target = Path.Combine(_root, "out");
        void WriteThenFail()
        {
            using var staged = StagedFolder.Create(target, force: false);
            File.WriteAllText(staged.PathOf("half.bin"), "partial");
            throw new InvalidOperationException("simulated failure while writing");
        }
        Assert.Throws<InvalidOperationException>(WriteThenFail);
        Assert.Empty(Entries());
    }

    [Fact]
    public void Existing_folder_is_kept_without_force_and_replaced_with_it()
    {
        var target = Path.Combine(_root, "out");
        Directory.CreateDirectory(target);
        File.WriteAllText(Path.Combine(target, "old.txt"), "old");
        var e = Assert.Throws<IOException>(() => StagedFolder.Create(target, force: false));
        Assert.Contains("--force", e.Message);
        Assert.True(File.Exists(Path.Combine(target, "old.txt")));

        using (var staged = StagedFolder.Create(target, force: true))
        {
            File.WriteAllText(staged.PathOf("new.txt"), "new");
            staged.Commit();
        }
        Assert.False(File.Exists(Path.Combine(target, "old.txt")));
        Assert.Equal("new", File.ReadAllText(Path.Combine(target, "new.txt")));
        Assert.Equal(["out"], Entries());
    }

    [Fact]
    public void Staged_paths_cannot_escape_the_folder()
    {
        using var staged = StagedFolder.Create(Path.Combine(_root, "out"), force: false);
        Assert.Throws<ArgumentException>(() => staged.PathOf("../escape.txt"));
    }

    [Fact]
    public void Manifest_round_trips_and_detects_changed_files()
    {
        File.WriteAllText(Path.Combine(_root, "weights.bin"), "abc");
        var manifest = new ArtifactManifest
        {
            Family = "phi3",
            Config = new JsonObject { ["model_type"] = "phi3", ["hidden_size"] = 64 },
            Dtype = "f32",
            Layer = 1,
            MaxSequenceLength = 128,
            Files = [ArtifactManifest.Describe(_root, "weights.bin")],
        };
        // SHA-256("abc") is the FIPS 180-2 test vector.
        Assert.Equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", manifest.Files[0].Sha256);
        manifest.Save(_root);
        var loaded = ArtifactManifest.Load(_root);
        Assert.Equal("phi3", loaded.Family);
        Assert.Equal(64, (int)loaded.Config["hidden_size"]!);
        Assert.Equal(manifest.Files, loaded.Files);
        loaded.Verify(_root, hashes: true);

        File.WriteAllText(Path.Combine(_root, "weights.bin"), "abd");
        var e = Assert.Throws<InvalidDataException>(() => loaded.Verify(_root, hashes: true));
        Assert.Contains("weights.bin", e.Message);
        File.WriteAllText(Path.Combine(_root, "weights.bin"), "abcd");
        Assert.Contains("4 bytes", Assert.Throws<InvalidDataException>(() => loaded.Verify(_root, hashes: false)).Message);
    }
}
