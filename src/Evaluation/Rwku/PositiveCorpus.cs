using System.Text.Encodings.Web;
using System.Text.Json;
using AlignThenUnlearn.Models;

namespace AlignThenUnlearn.Evaluation;

/// <summary>RWKU's model-specific forget corpus (<c>positive.json</c> for Llama-3, <c>positive_phi.json</c> for Phi-3):
/// the model's own texts about a target, sampled at temperature 1.0 and top-p 0.9 for up to 512 new tokens, several per
/// target, with a system prompt that introduces the target and tells the model it knows the target very well. The
/// system prompt's wording ("{intro} You know {subject} very well.") is RWKU's as issue 12 quotes it; the intros are
/// RWKU's one-sentence descriptions (its generation/all_intro.json, subject to a list of intros); RWKU's repository does
/// not ship the script that asked for the texts, so the user message below is this project's.</summary>
public static class PositiveCorpus
{
    public const double Temperature = 1.0, TopP = 0.9;
    public const int MaxNewTokens = 512, Samples = 10;

    /// <summary>The system prompt: the intro (none: the subject's name alone) and the sentence RWKU adds.</summary>
    public static string SystemPrompt(string subject, string? intro) =>
        $"{(string.IsNullOrWhiteSpace(intro) ? "" : intro.Trim() + " ")}You know {subject} very well.";

    public static string UserMessage(string subject) => $"Please write a biography of {subject}.";

    /// <summary>The full prompt text of sample <paramref name="sample"/>: the intros are used in turn.</summary>
    public static string Prompt(ChatFormat format, string subject, IReadOnlyList<string> intros, int sample) =>
        ChatTemplate.Format(format, SystemPrompt(subject, intros.Count == 0 ? null : intros[sample % intros.Count]), UserMessage(subject));

    /// <summary><paramref name="samples"/> texts about <paramref name="subject"/>, stripped, from a sampling generator
    /// (one call, so row i draws from stream i of the generator's seed).</summary>
    public static IReadOnlyList<string> Generate(ITextGenerator generator, ChatFormat format, string subject, IReadOnlyList<string> intros,
        int samples, int maxNewTokens = MaxNewTokens) =>
        [.. generator.Generate([.. Enumerable.Range(0, samples).Select(i => Prompt(format, subject, intros, i))], maxNewTokens).Select(t => t.Trim())];

    /// <summary>RWKU's layout: a JSON array of <c>{"text": ...}</c>, indented.</summary>
    public static byte[] Serialize(IEnumerable<string> texts) => JsonSerializer.SerializeToUtf8Bytes(texts.Select(t => new Row(t)),
        new JsonSerializerOptions { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping });

    /// <summary>RWKU's all_intro.json: subject to its intros.</summary>
    public static Dictionary<string, string[]> ReadIntros(string path)
    {
        try { return JsonSerializer.Deserialize<Dictionary<string, string[]>>(File.ReadAllBytes(path)) ?? []; }
        catch (JsonException e) { throw new DatasetFormatException(path, null, null, $"is not a JSON object of subject to a list of intros ({e.Message})", e); }
    }

    sealed record Row(string Text);
}
