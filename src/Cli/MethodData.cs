using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Unlearning;

namespace AlignThenUnlearn.Cli;

/// <summary>The examples of a token-level baseline from the target's RWKU files, read as published and tokenized as
/// RWKU's LLaMA-Factory does:
/// GA, NPO: the preset's forget corpus (<c>positive.json</c>), each text + EOS cut at the cut-off, the EOS not a label
/// (<see cref="LabelledSequence.TextWithEos"/>); GA*: the same on <c>passage.json</c>;
/// GradDiff: each forget text paired with a retain text, the forget corpora (same file) of
/// <see cref="MethodPreset.RetainTargets"/> other targets drawn by the seed (RWKU ships no neighbour texts; other people's
/// biographies are the nearest "retain" corpus), cycled in a seeded order;
/// DPO: the preset's pair corpus (<c>pair.json</c>; Phi-3: <c>pair_phi.json</c>), the prompt in the chat template, chosen and rejected answers each + end-of-turn, labels on the
/// answers; RT: the preset's reject corpus (<c>reject.json</c>; Phi-3: <c>reject_phi.json</c>), the question in the chat template, the refusal + end-of-turn the labels.</summary>
public static class MethodData
{
    public static List<LabelledSequence[]> Examples(MethodPreset preset, RwkuDataset dataset, RwkuTarget target, LlmTokenizer tokenizer)
    {
        int eos = tokenizer.EosId ?? throw new InvalidOperationException("the tokenizer has no EOS token, which RWKU's rows end with");
        LabelledSequence Text(string text) => LabelledSequence.TextWithEos(tokenizer.Encode(text, addSpecialTokens: false).Ids, eos, preset.Cutoff);
        switch (preset.Method)
        {
            case Methods.Ga or Methods.GaStar or Methods.Npo:
                return [.. dataset.ForgetTexts(target, preset.ForgetCorpus).Select(t => new[] { Text(t) })];
            case Methods.GradDiff:
            {
                var forget = dataset.ForgetTexts(target, preset.ForgetCorpus);
                var candidates = dataset.Targets.Where(t => t.Number != target.Number).ToList();
                if (candidates.Count == 0) throw new InvalidOperationException($"GradDiff needs other targets' texts as its retain corpus, and '{dataset.Root}' holds only target {target.Number}");
                var others = new DataOrder(candidates.Count, preset.Seed).Permutation(0).Take(Math.Min(preset.RetainTargets, candidates.Count)).Select(i => candidates[i]);
                var retain = others.SelectMany(t => dataset.ForgetTexts(t, preset.ForgetCorpus)).ToList();
                var order = new DataOrder(retain.Count, preset.Seed + 1).Permutation(0);
                return [.. forget.Select((t, i) => new[] { Text(t), Text(retain[order[i % retain.Count]]) })];
            }
            case Methods.Dpo:
            {
                var pairs = dataset.Pairs(target, preset.PairCorpus);
                return [.. pairs.Select(p => { var prompt = Prompt(p.Prompt); return new[] { Answer(prompt, p.Chosen), Answer(prompt, p.Rejected) }; })];
            }
            case Methods.Rt:
                return [.. dataset.Refusals(target, preset.RejectCorpus).Select(r => new[] { Answer(Prompt(r.Question), r.Output) })];
            default:
                throw new ArgumentException($"method '{preset.Method}' has no training data");
        }

        int[] Prompt(string message)
        {
            var prompt = tokenizer.Encode(ChatTemplate.Format(tokenizer.ChatFormat, message)).Ids.ToArray();
            if (prompt.Length >= preset.Cutoff)
                throw new ArgumentException($"a prompt of target {target.Number} has {prompt.Length} tokens, the cut-off {preset.Cutoff} leaves no answer");
            return prompt;
        }

        LabelledSequence Answer(int[] prompt, string answer)
        {
            var endOfTurn = ChatTemplate.EndOfTurnToken(tokenizer.ChatFormat) is { } token ? tokenizer.Encode(token, addSpecialTokens: false).Ids.Single() : eos;
            var tokens = tokenizer.Encode(answer, addSpecialTokens: false).Ids.Append(endOfTurn).Take(preset.Cutoff - prompt.Length).ToArray();
            return LabelledSequence.PromptAndAnswer(prompt, tokens);
        }
    }
}
