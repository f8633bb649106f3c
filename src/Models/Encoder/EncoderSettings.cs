namespace AlignThenUnlearn.Models;

/// <summary>How a sentence-transformers encoder is used: its pooling, its WordPiece tokenization (Hugging Face's
/// BertNormalizer flags and special tokens) and its maximum length. The defaults are all-MiniLM-L6-v2's.</summary>
/// <param name="Pooling">Only <c>mean</c> (over the attention mask) is supported.</param>
/// <param name="LowerCase">BERT's <c>do_lower_case</c>.</param>
/// <param name="MaxLength">sentence-transformers' <c>max_seq_length</c>, special tokens included.</param>
/// <param name="StripAccents">BERT's <c>strip_accents</c>; null follows <paramref name="LowerCase"/>, as in Hugging Face.</param>
/// <param name="TokenizeChineseChars">BERT's <c>tokenize_chinese_chars</c>: every CJK ideograph is a word of its own.</param>
/// <param name="ClsToken">First special token (<c>[CLS]</c> for BERT, <c>&lt;s&gt;</c> for MPNet).</param>
/// <param name="SepToken">Last special token (<c>[SEP]</c>, <c>&lt;/s&gt;</c>).</param>
/// <param name="PadToken">Pads batches and short future windows (<c>[PAD]</c>, <c>&lt;pad&gt;</c>).</param>
/// <param name="UnkToken">Stands for a word WordPiece cannot split (<c>[UNK]</c>, <c>&lt;unk&gt;</c>).</param>
public sealed record EncoderSettings(
    string Pooling = "mean",
    bool LowerCase = true,
    int MaxLength = 256,
    bool? StripAccents = null,
    bool TokenizeChineseChars = true,
    string ClsToken = "[CLS]",
    string SepToken = "[SEP]",
    string PadToken = "[PAD]",
    string UnkToken = "[UNK]")
{
    /// <summary>Whether accents are stripped (NFD, then nonspacing marks removed).</summary>
    public bool StripsAccents => StripAccents ?? LowerCase;
}
