using Microsoft.ML.Tokenizers;

namespace AlignThenUnlearn.Models;

/// <summary>The encoder's WordPiece tokenizer (BERT's basic tokenization: lower-casing, accent stripping, punctuation
/// splitting; then greedy longest-match pieces) over <c>vocab.txt</c>, with character spans.</summary>
public sealed class EncoderTokenizer
{
    readonly BertTokenizer _bert;
    public int ClsId { get; }
    public int SepId { get; }
    public int PadId { get; }

    EncoderTokenizer(BertTokenizer bert) =>
        (_bert, ClsId, SepId, PadId) = (bert, bert.ClassificationTokenId, bert.SeparatorTokenId, bert.PaddingTokenId);

    public static EncoderTokenizer Load(string directory, EncoderSettings settings)
    {
        var path = Path.Combine(directory, EncoderFolder.VocabFile);
        if (!File.Exists(path)) throw new FileNotFoundException($"encoder vocabulary '{path}' does not exist", path);
        using var stream = File.OpenRead(path);
        return new EncoderTokenizer(BertTokenizer.Create(stream, new BertOptions { LowerCaseBeforeTokenization = settings.LowerCase, RemoveNonSpacingMarks = settings.LowerCase }));
    }

    /// <summary>Word pieces of <paramref name="text"/> without special tokens: ids and the [start, end) character span of
    /// each in the normalised text (lower-cased, accents stripped; the same length as the input for most text).</summary>
    public (int[] Ids, (int Start, int End)[] Spans) Pieces(string text)
    {
        var tokens = _bert.EncodeToTokens(text, out _);   // word pieces only: the special tokens come with EncodeToIds
        return (tokens.Select(t => t.Id).ToArray(), tokens.Select(t => (t.Offset.Start.Value, t.Offset.End.Value)).ToArray());
    }

    /// <summary>[CLS] pieces [SEP], cut to <paramref name="maxLength"/> as sentence-transformers truncates.</summary>
    public int[] EncodeWithSpecialTokens(string text, int maxLength)
    {
        var ids = Pieces(text).Ids;
        if (ids.Length > maxLength - 2) ids = ids[..(maxLength - 2)];
        return [ClsId, .. ids, SepId];
    }
}
