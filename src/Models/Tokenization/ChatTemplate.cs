namespace AlignThenUnlearn.Models;

/// <summary>The single-turn chat prompts of the supported families (a user message followed by the generation
/// prompt). Hugging Face renders these from the Jinja <c>chat_template</c> of <c>tokenizer_config.json</c>; this
/// project does not run Jinja and writes the few templates it supports out instead.</summary>
public enum ChatFormat
{
    /// <summary>No chat template: <see cref="ChatTemplate.Format"/> refuses.</summary>
    None,
    /// <summary>Phi-3: <c>&lt;|user|&gt;\n{message}&lt;|end|&gt;\n&lt;|assistant|&gt;\n</c>.</summary>
    Phi3,
    /// <summary>Llama-2-chat and Mistral-instruct: <c>[INST] {message} [/INST]</c> after the BOS <c>&lt;s&gt;</c>.
    /// The message is used as given (Llama-2's template strips it; callers pass trimmed messages).</summary>
    Llama2,
    /// <summary>Llama-3-instruct: <c>&lt;|start_header_id|&gt;user&lt;|end_header_id|&gt;\n\n{message}&lt;|eot_id|&gt;
    /// &lt;|start_header_id|&gt;assistant&lt;|end_header_id|&gt;\n\n</c> after the BOS <c>&lt;|begin_of_text|&gt;</c>.</summary>
    Llama3,
    /// <summary>Qwen2 (ChatML): <c>&lt;|im_start|&gt;user\n{message}&lt;|im_end|&gt;\n&lt;|im_start|&gt;assistant\n</c>.</summary>
    ChatMl,
}

public static class ChatTemplate
{
    /// <summary>The prompt text for one user message, without the BOS token: encoding adds the BOS when the
    /// tokenizer adds one (<see cref="LlmTokenizer.AddsBos"/>), so that the prompt starts with exactly one.</summary>
    public static string Format(ChatFormat format, string userMessage) => format switch
    {
        ChatFormat.Phi3 => $"<|user|>\n{userMessage}<|end|>\n<|assistant|>\n",
        ChatFormat.Llama2 => $"[INST] {userMessage} [/INST]",
        // Llama-3's template trims every message (Jinja's | trim, Python's str.strip).
        ChatFormat.Llama3 => $"<|start_header_id|>user<|end_header_id|>\n\n{userMessage.Trim()}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
        ChatFormat.ChatMl => $"<|im_start|>user\n{userMessage}<|im_end|>\n<|im_start|>assistant\n",
        _ => throw new NotSupportedException($"The tokenizer has no known chat format ({format}); supported: Phi-3, Llama-2 [INST], Llama-3 headers, ChatML."),
    };

    /// <summary>A system message, then one user message and the generation prompt, as the families' templates render a
    /// system turn (Llama-2: inside the first [INST] between &lt;&lt;SYS&gt;&gt; markers).</summary>
    public static string Format(ChatFormat format, string systemMessage, string userMessage) => format switch
    {
        ChatFormat.Phi3 => $"<|system|>\n{systemMessage}<|end|>\n" + Format(format, userMessage),
        ChatFormat.Llama2 => Format(format, $"<<SYS>>\n{systemMessage}\n<</SYS>>\n\n{userMessage}"),
        ChatFormat.Llama3 => $"<|start_header_id|>system<|end_header_id|>\n\n{systemMessage.Trim()}<|eot_id|>" + Format(format, userMessage),
        ChatFormat.ChatMl => $"<|im_start|>system\n{systemMessage}<|im_end|>\n" + Format(format, userMessage),
        _ => Format(format, userMessage),
    };

    /// <summary>Whether <paramref name="text"/> starts as <see cref="Format(ChatFormat, string)"/> renders a prompt of
    /// <paramref name="format"/> (a user or system turn), which the snapshot's template puts after its BOS.</summary>
    public static bool OpensTurn(ChatFormat format, string text) => format switch
    {
        ChatFormat.Phi3 => text.StartsWith("<|user|>", StringComparison.Ordinal) || text.StartsWith("<|system|>", StringComparison.Ordinal),
        ChatFormat.Llama2 => text.StartsWith("[INST]", StringComparison.Ordinal),
        ChatFormat.Llama3 => text.StartsWith("<|start_header_id|>", StringComparison.Ordinal),
        ChatFormat.ChatMl => text.StartsWith("<|im_start|>", StringComparison.Ordinal),
        _ => false,
    };

    /// <summary>The token that closes an assistant turn, which generation stops at.</summary>
    public static string? EndOfTurnToken(ChatFormat format) => format switch
    {
        ChatFormat.Phi3 => "<|end|>",
        ChatFormat.Llama3 => "<|eot_id|>",
        ChatFormat.ChatMl => "<|im_end|>",
        _ => null, // Llama-2 ends turns with the EOS </s>
    };

    /// <summary>The format a tokenizer's added tokens reveal: the role markers are added tokens in every family
    /// except Llama-2/Mistral, whose <c>[INST]</c> is plain text.</summary>
    public static ChatFormat Detect(IEnumerable<string> addedTokenContents, bool isSentencePiece)
    {
        var tokens = addedTokenContents.ToHashSet(StringComparer.Ordinal);
        if (tokens.Contains("<|start_header_id|>") && tokens.Contains("<|eot_id|>")) return ChatFormat.Llama3;
        if (tokens.Contains("<|im_start|>") && tokens.Contains("<|im_end|>")) return ChatFormat.ChatMl;
        if (tokens.Contains("<|user|>") && tokens.Contains("<|assistant|>") && tokens.Contains("<|end|>")) return ChatFormat.Phi3;
        return isSentencePiece ? ChatFormat.Llama2 : ChatFormat.None;
    }
}
