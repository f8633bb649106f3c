using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.Models;

namespace AlignThenUnlearn.ToyWorld;

/// <summary>The toy model's tokenizer: a SentencePiece BPE model learnt from every text the model will read or
/// write (the corpus, the prompts of the probes and of the training questions as RWKU renders them, the answers),
/// with byte fallback for anything else, in Phi-3's layout with Phi-3's chat tokens
/// (<see cref="Phi3StyleTokenizerFiles"/>). Its vocabulary is small because the world's is: the merges run until
/// every word of these texts is a single piece.</summary>
public static class WorldTokenizer
{
    /// <summary>An upper bound on the learnt pieces (characters and merges); the toy world needs fewer.</summary>
    public const int MaxLearntPieces = 4000;

    /// <summary>Every prompt starts with <c>&lt;s&gt;</c>: a model trained from scratch gets one fixed first position
    /// to attend to (Phi-3-mini-4k-instruct's own files say false; this is the toy model's choice).</summary>
    public const bool AddsBos = true;

    public static SentencePieceModel Train(WorldDataset data) =>
        SentencePieceModel.LlamaLayout(SentencePieceBpeTrainer.Train(Texts(data), MaxLearntPieces));

    public static void Write(WorldDataset data, string directory) =>
        Phi3StyleTokenizerFiles.Write(directory, Train(data), AddsBos);

    /// <summary>The texts the tokenizer is learnt from: what sits between the chat tokens of every prompt and
    /// answer the toy run will encode.</summary>
    public static IEnumerable<string> Texts(WorldDataset data)
    {
        foreach (var passage in data.Corpus) yield return passage.Text;
        var prompts = data.Targets.SelectMany(t => t.Probes.Select(p => (RwkuPrompts.For(p), p.Answer)))
            .Concat(data.TrainingQuestions.Select(q => (q.Prompt, q.Answer)));
        foreach (var (prompt, answer) in prompts)
        {
            yield return prompt.UserMessage;
            yield return prompt.Suffix.Length == 0 ? answer : $"{prompt.Suffix} {answer}";
        }
        foreach (var question in data.Targets.SelectMany(t => t.Mmlu).Concat(data.TrainingChoices))
        {
            var prompt = MmluPrompts.For(question);
            yield return prompt.UserMessage;
            yield return $"{prompt.Suffix} {MmluPrompts.Letters[question.Answer]}";
        }
    }
}
