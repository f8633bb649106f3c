namespace AlignThenUnlearn.Evaluation;

/// <summary>A row of <c>retain_bbh.json</c>: a BIG-Bench Hard question of one subtask with its 3-shot chain-of-thought
/// prompt <c>cot</c>. <see cref="References"/> are what RWKU's exact match iterates over: the <c>answer</c> list, or
/// the characters of an answer string (<see cref="SquadScores.ReferencesOfString"/>).</summary>
public sealed record BbhQuestion(string Task, string Cot, string Question, string Answer, IReadOnlyList<string> References, string Subject);

/// <summary>One of TruthfulQA's answer sets: the choices and which of them are true (label 1).</summary>
public sealed record TruthfulQaTargets(IReadOnlyList<string> Choices, IReadOnlyList<int> Labels)
{
    public IEnumerable<string> True => Choices.Where((_, i) => Labels[i] == 1);
    public IEnumerable<string> False => Choices.Where((_, i) => Labels[i] != 1);
}

/// <summary>A row of <c>truthful.json</c>: a TruthfulQA question with its single-true (<c>mc1_targets</c>) and
/// multiple-true (<c>mc2_targets</c>) answer sets.</summary>
public sealed record TruthfulQaQuestion(string Question, TruthfulQaTargets Mc1, TruthfulQaTargets Mc2, string Subject);

/// <summary>A row of <c>triviaqa.json</c>: a question and its accepted answers (see <see cref="BbhQuestion"/> for a
/// string <c>answers</c>).</summary>
public sealed record TriviaQaQuestion(string Question, IReadOnlyList<string> Answers, string Subject);

/// <summary>A row of <c>fluency.json</c>: an AlpacaEval instruction.</summary>
public sealed record FluencyInstruction(string Instruction, string Subject);

/// <summary>Which texts a membership-inference file holds: the target's (forget members) or other knowledge the model
/// was trained on (retain members).</summary>
public enum MiaSet { Forget, Retain }

/// <summary>A row of <c>forget_mia.json</c> or <c>retain_mia.json</c>.</summary>
public sealed record MiaText(MiaSet Set, string Text, string Subject);

/// <summary>RWKU's utility and membership-inference data of one target.</summary>
public sealed record RwkuUtilityData(RwkuTarget Target, IReadOnlyList<BbhQuestion> Bbh, IReadOnlyList<TruthfulQaQuestion> TruthfulQa,
    IReadOnlyList<TriviaQaQuestion> TriviaQa, IReadOnlyList<FluencyInstruction> Fluency, IReadOnlyList<MiaText> Mia);
