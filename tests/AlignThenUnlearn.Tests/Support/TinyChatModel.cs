using AlignThenUnlearn.Models;
using AlignThenUnlearn.Models.Checkpoints;
using AlignThenUnlearn.Runtime;

namespace AlignThenUnlearn.Tests.Support;

/// <summary>An artifact folder of a tiny random Llama-family decoder (models/tiny-llama-gqa.json's shapes) with a
/// Phi-3-shaped SentencePiece tokenizer, whose vocabulary size the model's <c>vocab_size</c> equals: enough to run
/// generation, chat prompts and RWKU end to end. Weights are drawn with a large spread (std 0.2) so that greedy
/// choices are far from ties.</summary>
public sealed class TinyChatModel : IDisposable
{
    // Llama layout: <unk> 0, <s> 1, </s> 2, the byte pieces 3..258, then these from 259 on.
    public static readonly (string Piece, float Score)[] Pieces =
    [
        ("th", -1), ("he", -2), ("▁th", -3), ("▁the", -4), ("at", -5), ("▁c", -6), ("▁cat", -7), ("the", -8),
        ("in", -9), ("an", -10), ("er", -11), ("on", -12), ("▁a", -13), ("▁", -20), ("t", -21), ("h", -22), ("e", -23),
        ("c", -24), ("a", -25), ("n", -26), ("o", -27), ("r", -28), ("i", -29), ("s", -30),
    ];

    public static int Id(string piece)
    {
        int index = Array.FindIndex(Pieces, p => p.Piece == piece);
        return index >= 0 ? 259 + index : throw new ArgumentException($"'{piece}' is not in the test vocabulary.");
    }

    /// <summary>Phi-3's added tokens in Phi-3's order, after the pieces.</summary>
    public static readonly int EndOfText = 259 + Pieces.Length, Assistant = EndOfText + 1, End = EndOfText + 2, User = EndOfText + 3;
    public static int VocabularySize => User + 1;

    readonly TempFolder _temp = new();

    public string HfFolder => _temp.File("hf");
    public string Artifacts => _temp.File("artifacts");
    public DecoderConfig Config { get; }
    public ArtifactModel Model { get; }
    public LlmTokenizer Tokenizer => Model.Tokenizer!;

    public TinyChatModel()
    {
        const ulong seed = 7;
        const int maxPositions = 1024;
        Config = HfConfig.Load(RepositoryFiles.Path("models", "tiny-llama-gqa.json")) with
        {
            VocabSize = VocabularySize, MaxPositionEmbeddings = maxPositions, BosTokenId = 1, EosTokenIds = [EndOfText],
        };
        RandomCheckpoint.Write(Config, HfFolder, seed, std: 0.2);
        WriteTokenizer(HfFolder);
        ArtifactExporter.Export(HfFolder, Artifacts, new ExportOptions());
        Model = ArtifactModel.Open(Artifacts);
    }

    /// <summary>A new file of random weights for this configuration (another seed), as trained weights would be.</summary>
    public string OtherWeights(string name, ulong seed, SafetensorsDType dtype)
    {
        var folder = _temp.File(name);
        RandomCheckpoint.Write(Config, folder, seed, dtype, std: 0.2);
        return Path.Combine(folder, SafetensorsCheckpoint.SingleFileName);
    }

    public string File(string relative) => _temp.File(relative);

    /// <summary>tokenizer.model, tokenizer_config.json (added tokens, no BOS, EOS <c>&lt;|endoftext|&gt;</c>),
    /// tokenizer.json (Phi-3's Prepend("▁") normalizer) and generation_config.json, as Phi-3-mini-4k-instruct ships them.</summary>
    public static void WriteTokenizer(string folder)
    {
        SentencePieceModel.LlamaLayout(Pieces).Save(Path.Combine(folder, "tokenizer.model"));
        (int Id, string Content, bool RStrip)[] added = [(EndOfText, "<|endoftext|>", false), (Assistant, "<|assistant|>", true), (End, "<|end|>", true), (User, "<|user|>", true)];
        string Json((int Id, string Content, bool RStrip) t) =>
            $$"""{"id": {{t.Id}}, "content": "{{t.Content}}", "single_word": false, "lstrip": false, "rstrip": {{(t.RStrip ? "true" : "false")}}, "normalized": false, "special": true}""";
        System.IO.File.WriteAllText(Path.Combine(folder, "tokenizer_config.json"), $$"""
            {
              "add_bos_token": false, "add_eos_token": false, "legacy": false,
              "bos_token": "<s>", "eos_token": "<|endoftext|>", "unk_token": "<unk>", "pad_token": "<|endoftext|>",
              "added_tokens_decoder": { {{string.Join(", ", added.Select(t => $"\"{t.Id}\": {Json(t)}"))}} }
            }
            """);
        System.IO.File.WriteAllText(Path.Combine(folder, "tokenizer.json"), $$"""
            {
              "added_tokens": [ {{string.Join(", ", added.Select(Json))}} ],
              "normalizer": {"type": "Sequence", "normalizers": [
                {"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
              "pre_tokenizer": null
            }
            """);
        System.IO.File.WriteAllText(Path.Combine(folder, "generation_config.json"), $$"""{"eos_token_id": [{{EndOfText}}, {{Assistant}}, {{End}}]}""");
    }

    public void Dispose() => _temp.Dispose();
}
