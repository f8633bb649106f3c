namespace AlignThenUnlearn.Onnx;

/// <summary>A model of ONNX Runtime's BFC arena (onnxruntime/core/framework/bfc_arena.cc, the allocator of a CPU or CUDA
/// session's intermediates), to say how much memory a sequence of allocations and frees makes the process hold, which
/// is more than the most bytes alive at once:
/// <list type="bullet">
/// <item>requests are rounded up to 256 bytes; a request takes the smallest free chunk that fits (lowest address among
/// equal sizes), and the chunk is split only when it is at least twice the request or the rest is at least 128 MiB, so a
/// request can hold up to twice its size;</item>
/// <item>freed chunks merge with free neighbours of the same region, never across regions;</item>
/// <item>when nothing fits, the arena adds a region of the next power of two (kNextPowerOfTwo: 1 MiB first, the region
/// size doubling at each extension, capped at 1 GiB per step) and never gives it back.</item>
/// </list>
/// Regions come from malloc and their pages become resident only when written, so what the process holds is every byte
/// that some chunk ever handed out (<see cref="TouchedBytes"/>), not the regions' size.</summary>
public sealed class ArenaModel
{
    const long MinAllocation = 256, MaxDeadBytesPerChunk = 128L << 20, MaxPowerOfTwoExtend = 1L << 30;

    sealed class Chunk
    {
        public long Address, Size;
        public bool InUse;
        public Chunk? Prev, Next;
    }

    sealed class BySizeThenAddress : IComparer<Chunk>
    {
        public int Compare(Chunk? a, Chunk? b) => a!.Size != b!.Size ? a.Size.CompareTo(b.Size) : a.Address.CompareTo(b.Address);
    }

    readonly SortedSet<Chunk> _free = new(new BySizeThenAddress());
    readonly Dictionary<long, Chunk> _inUse = [];
    readonly List<(long Start, long End)> _touched = [];   // disjoint, sorted
    long _regionBytes = 1L << 20, _nextAddress;

    /// <summary>Bytes of all regions the arena has taken from the system.</summary>
    public long RegionBytes { get; private set; }
    /// <summary>Bytes ever handed out (the union of every chunk's requested range): what stays resident.</summary>
    public long TouchedBytes { get; private set; }

    /// <summary>Allocates <paramref name="bytes"/>; returns the chunk's address (a handle for <see cref="Free"/>).</summary>
    public long Allocate(long bytes)
    {
        long rounded = Math.Max(MinAllocation, (bytes + MinAllocation - 1) / MinAllocation * MinAllocation);
        var chunk = Find(rounded) ?? Extend(rounded);
        _free.Remove(chunk);
        if (chunk.Size >= 2 * rounded || chunk.Size - rounded >= MaxDeadBytesPerChunk)
        {
            var rest = new Chunk { Address = chunk.Address + rounded, Size = chunk.Size - rounded, Prev = chunk, Next = chunk.Next };
            if (chunk.Next is not null) chunk.Next.Prev = rest;
            chunk.Next = rest;
            chunk.Size = rounded;
            _free.Add(rest);
        }
        chunk.InUse = true;
        _inUse[chunk.Address] = chunk;
        Touch(chunk.Address, chunk.Address + rounded);
        return chunk.Address;
    }

    public void Free(long address)
    {
        if (!_inUse.Remove(address, out var chunk)) throw new ArgumentException($"no chunk in use at {address}");
        chunk.InUse = false;
        if (chunk.Next is { InUse: false } next)
        {
            _free.Remove(next);
            chunk.Size += next.Size;
            chunk.Next = next.Next;
            if (next.Next is not null) next.Next.Prev = chunk;
        }
        if (chunk.Prev is { InUse: false } prev)
        {
            _free.Remove(prev);
            prev.Size += chunk.Size;
            prev.Next = chunk.Next;
            if (chunk.Next is not null) chunk.Next.Prev = prev;
            chunk = prev;
        }
        _free.Add(chunk);
    }

    Chunk? Find(long rounded)
    {
        var view = _free.GetViewBetween(new Chunk { Size = rounded, Address = long.MinValue }, new Chunk { Size = long.MaxValue, Address = long.MaxValue });
        return view.Count == 0 ? null : view.Min;
    }

    Chunk Extend(long rounded)
    {
        bool increased = false;
        while (rounded > _regionBytes) { _regionBytes *= 2; increased = true; }
        long bytes = _regionBytes;
        if (!increased) _regionBytes = Math.Min(_regionBytes * 2, Math.Max(MaxPowerOfTwoExtend, _regionBytes));
        // Regions are separate allocations: a gap keeps chunks of two regions from merging.
        var region = new Chunk { Address = _nextAddress, Size = bytes };
        _nextAddress += bytes + MinAllocation;
        RegionBytes += bytes;
        _free.Add(region);
        return region;
    }

    void Touch(long start, long end)
    {
        // Merge [start, end) into the sorted disjoint list and keep the total.
        int i = _touched.FindIndex(t => t.End >= start);
        if (i < 0) { _touched.Add((start, end)); TouchedBytes += end - start; return; }
        long newStart = start, newEnd = end, removed = 0;
        int j = i;
        while (j < _touched.Count && _touched[j].Start <= end)
        {
            newStart = Math.Min(newStart, _touched[j].Start);
            newEnd = Math.Max(newEnd, _touched[j].End);
            removed += _touched[j].End - _touched[j].Start;
            j++;
        }
        _touched.RemoveRange(i, j - i);
        _touched.Insert(i, (newStart, newEnd));
        TouchedBytes += newEnd - newStart - removed;
    }
}
