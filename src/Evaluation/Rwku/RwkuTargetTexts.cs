using AlignThenUnlearn.Unlearning;

namespace AlignThenUnlearn.Evaluation;

/// <summary>A target's training texts (<see cref="ITargetTexts"/>) read from RWKU's files as published: the forget
/// corpora, <c>pair.json</c> (DPO) and <c>reject.json</c> (RT).</summary>
public sealed class RwkuTargetTexts(RwkuDataset dataset, RwkuTarget target) : ITargetTexts
{
    public int TargetNumber => target.Number;
    public string Source => dataset.Root;

    public IReadOnlyList<string> ForgetTexts(string fileName) => dataset.ForgetTexts(target, fileName);

    public IReadOnlyList<string> OtherTargetsTexts(string fileName, int count, int seed) =>
        [.. dataset.Draw(count, seed, except: target).SelectMany(t => dataset.ForgetTexts(t, fileName))];

    public IReadOnlyList<PreferencePair> Pairs() => [.. dataset.Pairs(target).Select(p => new PreferencePair(p.Prompt, p.Chosen, p.Rejected))];

    public IReadOnlyList<Refusal> Refusals() => [.. dataset.Refusals(target).Select(r => new Refusal(r.Question, r.Output))];
}
