using AlignThenUnlearn.Models;

namespace AlignThenUnlearn.Tests.Support;

/// <summary>The all-MiniLM-L6-v2 encoder folder extracted once per test class (xunit class fixture).</summary>
public sealed class MiniLmFolder : IDisposable
{
    readonly TempFolder _temp = new();
    readonly Lazy<string[]> _vocabLines;

    public string Path { get; }

    public MiniLmFolder()
    {
        Path = EncoderFolder.FromMiniLmPackage(_temp.File("minilm"));
        _vocabLines = new(() => File.ReadAllLines(System.IO.Path.Combine(Path, EncoderFolder.VocabFile)));
    }

    /// <summary>The id of a word piece: its line number (from 0) in vocab.txt. Fails the test when it is not there.</summary>
    public int Vocab(string piece)
    {
        int id = Array.IndexOf(_vocabLines.Value, piece);
        Assert.True(id >= 0, $"'{piece}' is not a line of vocab.txt");
        return id;
    }

    public void Dispose() => _temp.Dispose();
}
