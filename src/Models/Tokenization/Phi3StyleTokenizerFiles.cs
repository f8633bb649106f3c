using System.Text.Json;
using System.Text.Json.Nodes;

namespace AlignThenUnlearn.Models;

/// <summary>Writes a tokenizer folder in the shape of Phi-3-mini's for a SentencePiece model this project made:
/// <c>tokenizer.model</c>, <c>tokenizer_config.json</c> with Phi-3's chat tokens as added tokens right after the
/// model's pieces, and <c>generation_config.json</c>. <see cref="TokenizerFolder.Load"/> reads it back as a Phi-3
/// chat tokenizer. There is no <c>tokenizer.json</c>: without one, <c>legacy</c> true gives every piece between
/// added tokens the dummy prefix, as Phi-3's fast tokenizer does, and the folder stays loadable by Hugging Face's
/// slow <c>LlamaTokenizer</c>.</summary>
public static class Phi3StyleTokenizerFiles
{
    public const string EndOfText = "<|endoftext|>";
    public const string Assistant = "<|assistant|>";
    public const string End = "<|end|>";
    public const string User = "<|user|>";

    /// <summary>The added tokens in id order after the model's pieces; like Phi-3's, the role markers and
    /// <c>&lt;|end|&gt;</c> swallow the newline after them.</summary>
    static readonly (string Content, bool RStrip)[] ChatTokens = [(EndOfText, false), (Assistant, true), (End, true), (User, true)];

    /// <param name="addBos">Whether encoding puts <c>&lt;s&gt;</c> first (<c>add_bos_token</c>).</param>
    public static void Write(string directory, SentencePieceModel model, bool addBos)
    {
        Directory.CreateDirectory(directory);
        model.Save(Path.Combine(directory, TokenizerFolder.SentencePieceFile));
        int first = model.Pieces.Count;
        var decoder = new JsonObject();
        for (int i = 0; i < ChatTokens.Length; i++)
            decoder[(first + i).ToString(System.Globalization.CultureInfo.InvariantCulture)] = new JsonObject
            {
                ["content"] = ChatTokens[i].Content,
                ["lstrip"] = false,
                ["normalized"] = false,
                ["rstrip"] = ChatTokens[i].RStrip,
                ["single_word"] = false,
                ["special"] = true,
            };
        var config = new JsonObject
        {
            ["tokenizer_class"] = "LlamaTokenizer",
            ["add_bos_token"] = addBos,
            ["add_eos_token"] = false,
            ["legacy"] = true,
            ["bos_token"] = model.Pieces[model.BeginningOfSentenceId].Piece,
            ["eos_token"] = EndOfText,
            ["pad_token"] = EndOfText,
            ["unk_token"] = model.Pieces[model.UnknownId].Piece,
            ["added_tokens_decoder"] = decoder,
        };
        int IdOf(string content) => first + Array.FindIndex(ChatTokens, t => t.Content == content);
        var generation = new JsonObject
        {
            ["bos_token_id"] = model.BeginningOfSentenceId,
            ["eos_token_id"] = new JsonArray(IdOf(EndOfText), IdOf(Assistant), IdOf(End)),
        };
        WriteJson(Path.Combine(directory, TokenizerFolder.ConfigFile), config);
        WriteJson(Path.Combine(directory, TokenizerFolder.GenerationConfigFile), generation);
    }

    static void WriteJson(string path, JsonNode node) =>
        File.WriteAllText(path, node.ToJsonString(new JsonSerializerOptions { WriteIndented = true, NewLine = "\n" }) + "\n");
}
