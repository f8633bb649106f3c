using AlignThenUnlearn.Models;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Tests.Models;
using AlignThenUnlearn.Tests.Support;
using AlignThenUnlearn.Unlearning;

namespace AlignThenUnlearn.Tests.Unlearning;

/// <summary>Reference log-probabilities computed once from the store against a direct log-softmax of the decoder's logits,
/// the batches that carry them, and NPO's and DPO's loss at the reference itself (log-ratios 0: (2/beta) ln 2 and ln 2).</summary>
public sealed class ReferenceLogProbabilitiesTests
{
    static readonly DecoderConfig Config = DecoderBuilderTests.SmallConfig(ModelFamily.Llama);

    static readonly LabelledSequence[] Sequences =
    [
        new([3, 7, 1, 9, 4]),
        LabelledSequence.PromptAndAnswer([2, 2, 5], [8, 1]),
        new([11, 0, 6]),
        LabelledSequence.PromptAndAnswer([4], [12, 13, 14, 3]),
    ];

    /// <summary>The label log-probabilities of one sequence, from the plain decoder graph's logits and a C# log-softmax.</summary>
    static double Direct(ParameterStore store, LabelledSequence s)
    {
        var decoder = DecoderBuilder.Build(Config);
        var feeds = store.Names.ToDictionary(n => n, n => HostTensor.Of(store.Read(n), store[n].Shape));
        feeds[DecoderGraph.InputIds] = HostTensor.Of(s.Tokens.Select(t => (long)t).ToArray(), 1, s.Tokens.Length);
        var logits = GradCheck.Cpu.Run(decoder.Model, feeds, [decoder.Logits!])[decoder.Logits!].Floats;
        double sum = 0;
        for (int label = s.FirstLabel; label < s.Tokens.Length; label++)
        {
            var row = logits.AsSpan((label - 1) * Config.VocabSize, Config.VocabSize).ToArray().Select(v => (double)v).ToArray();
            double max = row.Max();
            sum += row[s.Tokens[label]] - (max + Math.Log(row.Sum(x => Math.Exp(x - max))));
        }
        return sum;
    }

    [Fact]
    public void Each_sequence_gets_the_sum_of_its_label_log_probabilities_whatever_the_batch()
    {
        using var store = CausalLmTrainer.RandomParameters(GradCheck.Cpu, Config, seed: 5, std: 0.3);
        var batched = ReferenceLogProbabilities.Compute(store, Config, Sequences, batchSize: 3);
        var single = ReferenceLogProbabilities.Compute(store, Config, Sequences, batchSize: 1);
        for (int i = 0; i < Sequences.Length; i++)
        {
            Assert.Equal(Direct(store, Sequences[i]), batched[i], 1e-4);
            Assert.Equal(single[i], batched[i], 1e-5);
        }
    }

    [Fact]
    public void Pairs_are_batched_first_sequences_then_second_with_their_references_and_masks()
    {
        var examples = new[] { new[] { Sequences[0], Sequences[1] }, [Sequences[2], Sequences[3]] };
        var reference = new[] { new[] { -1.0, -2.0 }, [-3.0, -4.0] };
        var dpo = new LabelledBatches(examples, batchSize: 2, seed: 0, maxLength: 16, reference: reference).Next();
        var ids = dpo[TokenBatcher.InputIds];
        Assert.Equal([4L, 5], ids.Shape);   // four rows, the longest sequence (5 tokens)
        // Rows 0-1 are the examples' first sequences, rows 2-3 their second ones, in the same example order.
        var firstToken = Enumerable.Range(0, 4).Select(r => ids.Longs[r * 5]).ToArray();
        var order = firstToken[0] == 3 ? new[] { 0, 1 } : [1, 0];
        Assert.Equal(order.Select(e => (long)examples[e][0].Tokens[0]).Concat(order.Select(e => (long)examples[e][1].Tokens[0])), firstToken);
        Assert.Equal(order.Select(e => (float)reference[e][0]).Concat(order.Select(e => (float)reference[e][1])), dpo[TokenLossGraph.ReferenceLogProbs].Floats);
        // PromptAndAnswer([2, 2, 5], [8, 1]): labels are tokens 3 and 4, so positions 2 and 3 count.
        int row = Array.IndexOf(firstToken, 2L);
        Assert.Equal([0f, 0, 1, 1, 0], dpo[TokenBatcher.LossMask].Floats.Skip(row * 5).Take(5));

        var graddiff = new LabelledBatches(examples, batchSize: 2, seed: 0, maxLength: 16, secondMask: TokenLossGraph.RetainMask).Next();
        var forget = graddiff[TokenBatcher.LossMask].Floats;
        var retain = graddiff[TokenLossGraph.RetainMask].Floats;
        Assert.True(forget.Take(10).Sum() > 0 && forget.Skip(10).All(v => v == 0), "forget labels only in the first rows");
        Assert.True(retain.Take(10).All(v => v == 0) && retain.Skip(10).Sum() > 0, "retain labels only in the second rows");
        Assert.Equal(dpo[TokenBatcher.LossMask].Floats, forget.Zip(retain, (a, b) => a + b));
    }

    [Theory]
    [InlineData(NegativePreferenceOptimization.Id)]
    [InlineData(DirectPreferenceOptimization.Id)]
    public void At_the_reference_itself_npo_and_dpo_give_their_log_two_values(string loss)
    {
        using var store = CausalLmTrainer.RandomParameters(GradCheck.Cpu, Config, seed: 9, std: 0.3);
        var examples = loss == NegativePreferenceOptimization.Id ? Sequences.Select(s => new[] { s }).ToArray() : [[Sequences[0], Sequences[1]], [Sequences[2], Sequences[3]]];
        var reference = examples.Select(e => ReferenceLogProbabilities.Compute(store, Config, e, batchSize: 2)).ToArray();
        var batch = new LabelledBatches(examples, batchSize: 2, seed: 1, maxLength: 16, reference: reference).Next();
        var graph = ((TokenLossMethod)MethodRegistry.Get(loss)).Graph(Config, store.Names);
        using var session = new TrainSession(GradCheck.Cpu, graph.Training, store, graph.Loss);
        double value = session.Run(batch).Loss;
        // NPO: -(2/0.2) log sigmoid(0) = 10 ln 2; DPO: -log sigmoid(0) = ln 2 (float32 sums, so 1e-4).
        Assert.Equal(loss == NegativePreferenceOptimization.Id ? 10 * Math.Log(2) : Math.Log(2), value, 1e-4);
    }
}
