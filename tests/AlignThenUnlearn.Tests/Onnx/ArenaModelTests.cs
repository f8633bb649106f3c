using AlignThenUnlearn.Onnx;

namespace AlignThenUnlearn.Tests.Onnx;

/// <summary>The BFC arena model against allocations worked out by hand from onnxruntime/core/framework/bfc_arena.cc.</summary>
public sealed class ArenaModelTests
{
    const long KiB = 1024, MiB = 1024 * KiB;

    [Fact]
    public void Requests_round_to_256_bytes_and_take_the_smallest_free_chunk_that_fits()
    {
        var arena = new ArenaModel();
        long a = arena.Allocate(100);     // 256 bytes at 0 of a first region of 1 MiB, the rest split off
        long b = arena.Allocate(1000);    // 1024 bytes at 256
        Assert.Equal((0L, 256L), (a, b));
        Assert.Equal(1280, arena.TouchedBytes);
        arena.Free(a);
        // Free: [0, 256) and [1280, 1 MiB); a 200-byte request takes the smaller, so nothing new is touched.
        Assert.Equal(0, arena.Allocate(200));
        Assert.Equal(1280, arena.TouchedBytes);
        Assert.Equal(MiB, arena.RegionBytes);
    }

    [Fact]
    public void A_chunk_less_than_twice_the_request_is_not_split_and_each_new_region_doubles()
    {
        var arena = new ArenaModel();
        arena.Allocate(600 * KiB);   // the first region, 1 MiB, is less than twice 600 KiB: the request holds all of it
        Assert.Equal(MiB, arena.RegionBytes);
        arena.Allocate(KiB);         // so this one needs a second region, twice the first: 2 MiB (split: 1 KiB and the rest)
        Assert.Equal(3 * MiB, arena.RegionBytes);
        arena.Allocate(1536 * KiB);  // fits in the rest of the second region (2047 KiB), unsplit: no new region
        Assert.Equal(3 * MiB, arena.RegionBytes);
        Assert.Equal(600 * KiB + KiB + 1536 * KiB, arena.TouchedBytes);
    }

    [Fact]
    public void Freed_neighbours_merge_so_a_larger_request_reuses_touched_memory()
    {
        var arena = new ArenaModel();
        var x = arena.Allocate(256 * KiB);
        var y = arena.Allocate(256 * KiB);
        arena.Allocate(200 * KiB);   // [512 KiB, 712 KiB): leaves 312 KiB free at the end, too small for what follows
        arena.Free(x);
        arena.Free(y);
        // x and y merged into one free 512 KiB chunk at 0: a 400 KiB request fits only there (not split: 512 < 800).
        Assert.Equal(0, arena.Allocate(400 * KiB));
        Assert.Equal(712 * KiB, arena.TouchedBytes);
        Assert.Equal(MiB, arena.RegionBytes);
    }
}
