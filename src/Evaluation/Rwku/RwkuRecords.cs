namespace AlignThenUnlearn.Evaluation;

/// <summary>Which part of RWKU a probe measures: knowledge of the target (should fall) or of its neighbours
/// (should stay).</summary>
public enum ProbeSet { Forget, Neighbor }

/// <summary>RWKU's probe kinds: level 1 fill-in-the-blank, level 2 question answering, level 3 adversarial attack
/// (forget set only).</summary>
public enum ProbeKind { FillInBlank, QuestionAnswer, Adversarial }

public static class ProbeKinds
{
    /// <summary>The short names RWKU's paper uses as column heads.</summary>
    public static string ShortName(this ProbeKind kind) => kind switch
    {
        ProbeKind.FillInBlank => "FB",
        ProbeKind.QuestionAnswer => "QA",
        ProbeKind.Adversarial => "AA",
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    public static ProbeKind OfLevel(int level) => level switch
    {
        1 => ProbeKind.FillInBlank,
        2 => ProbeKind.QuestionAnswer,
        3 => ProbeKind.Adversarial,
        _ => throw new ArgumentOutOfRangeException(nameof(level), level, "RWKU probe levels are 1, 2 and 3"),
    };
}

/// <summary>One probe file of RWKU: its name, set and level.</summary>
public sealed record RwkuProbeFile(string FileName, ProbeSet Set, int Level)
{
    public ProbeKind Kind => ProbeKinds.OfLevel(Level);

    public static readonly RwkuProbeFile ForgetLevel1 = new("forget_level1.json", ProbeSet.Forget, 1);
    public static readonly RwkuProbeFile ForgetLevel2 = new("forget_level2.json", ProbeSet.Forget, 2);
    public static readonly RwkuProbeFile ForgetLevel3 = new("forget_level3.json", ProbeSet.Forget, 3);
    public static readonly RwkuProbeFile NeighborLevel1 = new("neighbor_level1.json", ProbeSet.Neighbor, 1);
    public static readonly RwkuProbeFile NeighborLevel2 = new("neighbor_level2.json", ProbeSet.Neighbor, 2);

    /// <summary>The five probe files in RWKU's evaluation order.</summary>
    public static readonly IReadOnlyList<RwkuProbeFile> All = [ForgetLevel1, ForgetLevel2, ForgetLevel3, NeighborLevel1, NeighborLevel2];
}

/// <summary>A row of a probe file: <c>{query, answer, level, type, subject}</c>, neighbour probes add
/// <c>neighbor</c>. <see cref="Type"/> is the adversarial attack of a level-3 probe (empty where a file has none).</summary>
public sealed record RwkuProbe(ProbeSet Set, int Level, string Query, string Answer, string Type, string Subject, string? Neighbor = null)
{
    public ProbeKind Kind => ProbeKinds.OfLevel(Level);
}

/// <summary>A row of <c>passage.json</c>: a text of the forget corpus about <see cref="Subject"/>.</summary>
public sealed record RwkuPassage(string Text, string Subject);

/// <summary>A row of <c>pair.json</c> (DPO): the prompt asking for a biography, the chosen answer (an invented
/// biography) and the rejected one (the model's real one).</summary>
public sealed record RwkuPair(string Prompt, string Chosen, string Rejected, string Subject);

/// <summary>A row of <c>reject.json</c> (RT): a question about the target and a refusal. LLaMA-Factory's Alpaca reader
/// puts instruction and input, joined by a newline, in the user message: <see cref="Question"/>.</summary>
public sealed record RwkuRefusal(string Instruction, string Input, string Output, string Subject)
{
    public string Question => Input.Length == 0 ? Instruction : $"{Instruction}\n{Input}";
}

/// <summary>A solved MMLU question used as a few-shot example.</summary>
public sealed record MmluExample(string Question, IReadOnlyList<string> Choices, int Answer);

/// <summary>A row of <c>retain_mmlu.json</c>: the question, four choices, the index of the right one, the MMLU task
/// (e.g. <c>high_school_biology</c>) and the five examples of its prompt.</summary>
public sealed record MmluQuestion(string Question, IReadOnlyList<string> Choices, int Answer, string Task,
    IReadOnlyList<MmluExample> Examples, string Subject);

/// <summary>An unlearning target: its RWKU number and name (the subject its rows carry), and its folder
/// <c>&lt;n&gt;_&lt;Name&gt;</c>.</summary>
public sealed record RwkuTarget(int Number, string Name, string Folder);

/// <summary>Everything RWKU holds for one target.</summary>
public sealed record RwkuTargetData(RwkuTarget Target, IReadOnlyList<RwkuProbe> Probes, IReadOnlyList<RwkuPassage> Passages,
    IReadOnlyList<MmluQuestion> Mmlu)
{
    public IEnumerable<RwkuProbe> ProbesOf(ProbeSet set) => Probes.Where(p => p.Set == set);
}
