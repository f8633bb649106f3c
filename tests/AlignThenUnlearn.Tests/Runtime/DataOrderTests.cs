using System.Text.Json.Nodes;
using AlignThenUnlearn.Runtime;

namespace AlignThenUnlearn.Tests.Runtime;

/// <summary>The random generator against its published test vector; data order and batches by their properties:
/// permutations, reproducibility from seed and cursor, padding and loss masks.</summary>
public class DataOrderTests
{
    [Fact]
    public void SplitMix64_matches_the_reference_implementation()
    {
        // Outputs of Vigna's splitmix64.c for seeds 0 and 1234567.
        var zero = new SplitMix64(0);
        Assert.Equal([16294208416658607535UL, 7960286522194355700UL, 487617019471545679UL], [zero.Next(), zero.Next(), zero.Next()]);
        var other = new SplitMix64(1234567);
        Assert.Equal([6457827717110365317UL, 3203168211198807973UL, 9817491932198370423UL], [other.Next(), other.Next(), other.Next()]);
    }

    [Fact]
    public void SplitMix64_continues_from_a_saved_state()
    {
        var a = new SplitMix64(42);
        a.Next(); a.Next();
        var b = new SplitMix64(a.State);
        Assert.Equal(Enumerable.Range(0, 5).Select(_ => a.Next(10)), Enumerable.Range(0, 5).Select(_ => b.Next(10)));
    }

    [Fact]
    public void Every_epoch_is_a_permutation_and_epochs_differ()
    {
        var order = new DataOrder(50, seed: 7);
        var epochs = Enumerable.Range(0, 4).Select(e => order.Permutation(e).ToArray()).ToList();
        foreach (var p in epochs) Assert.Equal(Enumerable.Range(0, 50), p.Order());
        Assert.Equal(4, epochs.Select(p => string.Join(",", p)).Distinct().Count());
        Assert.NotEqual(Enumerable.Range(0, 50), epochs[0]);   // shuffled (identity has probability 1/50!)
    }

    [Fact]
    public void The_stream_depends_only_on_seed_and_position()
    {
        var first = new DataOrder(7, seed: 3);
        var stream = Enumerable.Range(0, 30).Select(k => first[k]).ToArray();
        var fresh = new DataOrder(7, seed: 3);
        Assert.Equal(stream[17..], Enumerable.Range(17, 13).Select(k => fresh[k]));   // started at a cursor in epoch 2
        Assert.NotEqual(stream, Enumerable.Range(0, 30).Select(k => new DataOrder(7, seed: 4)[k]));
    }

    static readonly int[][] Sequences = [[1, 2, 3], [4, 5], [6, 7, 8, 9], [10], [11, 12]];

    [Fact]
    public void Batches_are_right_padded_and_mask_the_positions_that_have_a_next_token()
    {
        var batcher = new TokenBatcher(Sequences, batchSize: 5, seed: 1, maxLength: 4, padId: 0);
        var batch = batcher.Next();
        var ids = batch[TokenBatcher.InputIds];
        var mask = batch[TokenBatcher.LossMask];
        Assert.Equal([5L, 4L], ids.Shape);
        Assert.Equal([5L, 4L], mask.Shape);
        for (int b = 0; b < 5; b++)
        {
            var row = ids.Longs[(b * 4)..((b + 1) * 4)];
            var sequence = Sequences.Single(s => s[0] == row[0]);   // first tokens are distinct
            Assert.Equal(sequence.Select(t => (long)t).Concat(Enumerable.Repeat(0L, 4 - sequence.Length)), row);
            Assert.Equal(Enumerable.Range(0, 4).Select(t => t < sequence.Length - 1 ? 1f : 0f), mask.Floats[(b * 4)..((b + 1) * 4)]);
        }
        Assert.Equal(Enumerable.Range(0, 5).Select(i => Sequences[i][0]).Order(), Enumerable.Range(0, 5).Select(b => (int)ids.Longs[b * 4]).Order());   // one epoch
    }

    [Fact]
    public void A_restored_batcher_continues_with_the_same_batches()
    {
        var a = new TokenBatcher(Sequences, batchSize: 2, seed: 9, maxLength: 4);
        for (int i = 0; i < 3; i++) a.Next();   // crosses into the second epoch
        var state = a.SaveState();
        var b = new TokenBatcher(Sequences, batchSize: 2, seed: 9, maxLength: 4);
        b.RestoreState(JsonNode.Parse(state.ToJsonString())!.AsObject());
        for (int i = 0; i < 6; i++) Assert.Equal(a.Next()[TokenBatcher.InputIds].Longs, b.Next()[TokenBatcher.InputIds].Longs);
    }

    [Fact]
    public void A_state_of_other_data_or_seed_is_refused()
    {
        var state = new TokenBatcher(Sequences, batchSize: 2, seed: 9, maxLength: 4).SaveState();
        var otherSeed = new TokenBatcher(Sequences, batchSize: 2, seed: 10, maxLength: 4);
        Assert.Contains("seed", Assert.Throws<InvalidOperationException>(() => otherSeed.RestoreState(state)).Message);
        int[][] changed = [[1, 2, 3], [4, 5], [6, 7, 8, 9], [10], [11, 13]];
        var otherData = new TokenBatcher(changed, batchSize: 2, seed: 9, maxLength: 4);
        Assert.Contains("fingerprint", Assert.Throws<InvalidOperationException>(() => otherData.RestoreState(state)).Message);
    }

    [Fact]
    public void A_sequence_longer_than_the_maximum_is_refused_before_training()
    {
        var e = Assert.Throws<ArgumentException>(() => new TokenBatcher(Sequences, batchSize: 2, seed: 1, maxLength: 3));
        Assert.Contains("sequence 2 has 4 tokens, more than the maximum length 3", e.Message);
    }
}
