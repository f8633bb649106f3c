using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Models.Checkpoints;
using AlignThenUnlearn.Tests.Support;

namespace AlignThenUnlearn.Tests.Models;

/// <summary>safetensors files: the writer's bytes against the format written out by hand, round trips,
/// dtype conversions against hand-computed values, and refusal of every kind of broken header.</summary>
public sealed class SafetensorsTests : IDisposable
{
    private readonly TempFolder temp = new();

    public void Dispose() => temp.Dispose();

    // ---- the format ------------------------------------------------------------------------------

    [Fact]
    public void Written_file_matches_the_format_spelled_out_by_hand()
    {
        var path = temp.File("two.safetensors");
        SafetensorsWriter.Write(path,
        [
            TensorSource.FromArray("b", [2], new[] { 1f, -2f }),
            TensorSource.FromArray("a", [1], new[] { 7L }),
        ], new Dictionary<string, string> { ["format"] = "pt" });

        // Tensors in the order given, offsets relative to the data buffer, header padded with spaces to a multiple of 8.
        var json = """{"__metadata__":{"format":"pt"},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"I64","shape":[1],"data_offsets":[8,16]}}""";
        var header = json + new string(' ', (8 - json.Length % 8) % 8);
        var expected = new List<byte>();
        expected.AddRange(BitConverter.GetBytes((ulong)header.Length));
        expected.AddRange(Encoding.ASCII.GetBytes(header));
        expected.AddRange([0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x00, 0xC0]); // 1.0f, -2.0f little-endian
        expected.AddRange([7, 0, 0, 0, 0, 0, 0, 0]);
        Assert.Equal(expected.ToArray(), File.ReadAllBytes(path));
        Assert.Equal(0, header.Length % 8);
    }

    [Theory]
    [InlineData(SafetensorsDType.F32)]
    [InlineData(SafetensorsDType.F16)]
    [InlineData(SafetensorsDType.BF16)]
    [InlineData(SafetensorsDType.I64)]
    [InlineData(SafetensorsDType.I32)]
    public void Every_dtype_round_trips_byte_for_byte(SafetensorsDType dtype)
    {
        var random = new Random((int)dtype + 11);
        var tensors = new (string Name, long[] Shape)[] { ("matrix", [3, 5]), ("scalar", []), ("empty", [0, 4]), ("vector", [7]) };
        var data = tensors.Select(t => RandomBytes(random, t.Shape.Aggregate(1L, (p, d) => p * d) * dtype.ByteSize())).ToArray();
        var path = temp.File("all.safetensors");
        SafetensorsWriter.Write(path, tensors.Select((t, i) => TensorSource.FromBytes(t.Name, dtype, t.Shape, data[i])).ToList(),
            new Dictionary<string, string> { ["note"] = "round trip" });

        using var file = SafetensorsFile.Open(path);
        Assert.Equal(tensors.Select(t => t.Name), file.Entries.Select(e => e.Name));
        Assert.Equal("round trip", file.Metadata["note"]);
        for (int i = 0; i < tensors.Length; i++)
        {
            var entry = file.Entry(tensors[i].Name);
            Assert.Equal(dtype, entry.DType);
            Assert.Equal(tensors[i].Shape, entry.Shape);
            var back = new byte[data[i].Length];
            file.ReadBytes(tensors[i].Name, back);
            Assert.Equal(data[i], back);
        }
    }

    [Fact]
    public void Integer_tensors_read_back_as_written()
    {
        var path = temp.File("ints.safetensors");
        long[] positions = [0, -1, long.MaxValue, 42];
        int[] ids = [5, int.MinValue, 9];
        SafetensorsWriter.Write(path, [TensorSource.FromArray("positions", [2, 2], positions), TensorSource.FromArray("ids", [3], ids)]);
        using var checkpoint = SafetensorsCheckpoint.Open(path);
        var longs = new long[4];
        var ints = new int[3];
        checkpoint.Read("positions", longs);
        checkpoint.Read("ids", ints);
        Assert.Equal(positions, longs);
        Assert.Equal(ids, ints);
        // An integer tensor is not silently reinterpreted as floats.
        var error = Assert.Throws<ModelFormatException>(() => checkpoint.Read("ids", new float[3]));
        Assert.Contains("'ids'", error.Message);
    }

    // ---- conversions against hand-computed values ----------------------------------------------------

    [Fact]
    public void BF16_and_F16_convert_to_float32_exactly()
    {
        // bf16 is the top half of a float32: 0x3F80 = 1, 0xC000 = -2, 0x0001 = 2^-133 (a float32 subnormal),
        // 0x7F80 = +inf, 0x3EAB = 2^-2 * (1 + 43/128), 0x8000 = -0.
        ushort[] bf16 = [0x3F80, 0xC000, 0x0001, 0x7F80, 0x3EAB, 0x8000];
        float[] bf16Expected = [1f, -2f, MathF.Pow(2, -133), float.PositiveInfinity, 0.333984375f, -0f];
        // f16: 0x3C00 = 1, 0xC000 = -2, 0x0001 = 2^-24 (the smallest subnormal), 0x7BFF = 65504 (largest finite),
        // 0x3555 = 2^-2 * (1 + 341/1024), 0xFC00 = -inf.
        ushort[] f16 = [0x3C00, 0xC000, 0x0001, 0x7BFF, 0x3555, 0xFC00];
        float[] f16Expected = [1f, -2f, MathF.Pow(2, -24), 65504f, 0.333251953125f, float.NegativeInfinity];

        var path = temp.File("halves.safetensors");
        SafetensorsWriter.Write(path,
        [
            TensorSource.FromBytes("bf16", SafetensorsDType.BF16, [6], Bytes(bf16)),
            TensorSource.FromBytes("f16", SafetensorsDType.F16, [6], Bytes(f16)),
        ]);
        using var file = SafetensorsFile.Open(path);
        AssertBitsEqual(bf16Expected, file.ReadSingles("bf16"));
        AssertBitsEqual(f16Expected, file.ReadSingles("f16"));
    }

    [Fact]
    public void Every_float_dtype_converts_to_float16()
    {
        var path = temp.File("to-half.safetensors");
        SafetensorsWriter.Write(path,
        [
            // 65504 is the largest finite half; 1e6 overflows to +inf; 2^-24 is the smallest subnormal half.
            TensorSource.FromArray("f32", [5], new[] { 1f, -2f, 65504f, MathF.Pow(2, -24), 1e6f }),
            // 0x3EAB = 0.333984375 = 2^-2 * (1 + 344/1024): half 0x3400 + 344 = 0x3558.
            TensorSource.FromBytes("bf16", SafetensorsDType.BF16, [2], Bytes([0x3F80, 0x3EAB])),
            TensorSource.FromBytes("f16", SafetensorsDType.F16, [2], Bytes([0x3555, 0x8001])),
        ]);
        using var file = SafetensorsFile.Open(path);
        Assert.Equal(new ushort[] { 0x3C00, 0xC000, 0x7BFF, 0x0001, 0x7C00 }, HalfBits(file, "f32", 5));
        Assert.Equal(new ushort[] { 0x3C00, 0x3558 }, HalfBits(file, "bf16", 2));
        Assert.Equal(new ushort[] { 0x3555, 0x8001 }, HalfBits(file, "f16", 2));
    }

    [Fact]
    public void Float32_values_are_stored_rounded_to_nearest_even()
    {
        float tieDown = 1 + MathF.Pow(2, -8);                    // halfway between bf16 1.0 (even) and 1 + 2^-7
        float tieUp = 1 + 3 * MathF.Pow(2, -8);                  // halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even)
        float aboveTie = 1 + MathF.Pow(2, -8) + MathF.Pow(2, -20);
        var path = temp.File("rounded.safetensors");
        SafetensorsWriter.Write(path,
        [
            TensorSource.FromValues("bf16", SafetensorsDType.BF16, [7], new[] { 1f, tieDown, tieUp, aboveTie, -2f, float.MaxValue, float.NaN }),
            // f16 has 10 mantissa bits: 1 + 2^-11 ties to 1.0, 1 + 3 * 2^-11 ties to 1 + 2^-9.
            TensorSource.FromValues("f16", SafetensorsDType.F16, [2], new[] { 1 + MathF.Pow(2, -11), 1 + 3 * MathF.Pow(2, -11) }),
        ]);
        using var file = SafetensorsFile.Open(path);
        var bf16 = StoredWords(file, "bf16", 7);
        Assert.Equal(new ushort[] { 0x3F80, 0x3F80, 0x3F82, 0x3F81, 0xC000, 0x7F80 }, bf16[..6]);
        Assert.True((bf16[6] & 0x7F80) == 0x7F80 && (bf16[6] & 0x007F) != 0, $"NaN stored as 0x{bf16[6]:X4}");
        Assert.Equal(new ushort[] { 0x3C00, 0x3C02 }, StoredWords(file, "f16", 2));
    }

    [Theory]
    [InlineData(8)]
    [InlineData(16)]
    [InlineData(SafetensorsFile.DefaultWindowBytes)]
    public void Reads_and_slices_agree_whatever_the_mapping_window(int windowBytes)
    {
        // Values k/8 with |k| <= 128 are exact in bf16, so the stored bits are the top half of the float32 bits.
        const int count = 1001;
        float Expected(long i) => ((int)(i % 256) - 128) / 8f;
        var bits = Enumerable.Range(0, count).Select(i => (ushort)(BitConverter.SingleToUInt32Bits(Expected(i)) >> 16)).ToArray();
        var path = temp.File("window.safetensors");
        SafetensorsWriter.Write(path,
        [
            TensorSource.FromBytes("bf16", SafetensorsDType.BF16, [7, 143], Bytes(bits)),
            TensorSource.FromArray("f32", [count], Enumerable.Range(0, count).Select(i => Expected(i)).ToArray()),
        ]);
        using var checkpoint = SafetensorsCheckpoint.Open(path, windowBytes);
        foreach (var name in new[] { "bf16", "f32" })
        {
            Assert.Equal(Enumerable.Range(0, count).Select(i => Expected(i)), checkpoint.ReadSingles(name));
            var slice = new float[500];
            checkpoint.ReadSlice(name, 333, slice);
            Assert.Equal(Enumerable.Range(333, 500).Select(i => Expected(i)), slice);
            var halves = new Half[500];
            checkpoint.ReadSlice(name, 333, halves);
            Assert.Equal(Enumerable.Range(333, 500).Select(i => (Half)Expected(i)), halves);
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => checkpoint.ReadSlice("f32", 600, new float[402]));
        Assert.Throws<ArgumentException>(() => checkpoint.Read("f32", new float[count - 1]));
    }

    // ---- writing lazily, sharding, and failing cleanly -------------------------------------------------

    [Fact]
    public void A_generator_is_asked_for_every_element_once_in_bounded_chunks()
    {
        const long count = 200_003;
        var calls = new List<(long First, int Length)>();
        // (i mod 251) - 125 is exact in bf16, f16 and f32.
        static float Pattern(long i) => i % 251 - 125;
        var path = temp.File("lazy.safetensors");
        SafetensorsWriter.Write(path,
        [
            TensorSource.FromGenerator("lazy", SafetensorsDType.BF16, [count], (first, values) =>
            {
                calls.Add((first, values.Length));
                for (int i = 0; i < values.Length; i++) values[i] = Pattern(first + i);
            }),
        ]);
        long next = 0;
        foreach (var (first, length) in calls)
        {
            Assert.Equal(next, first);
            Assert.InRange(length, 1, 1 << 16);
            next += length;
        }
        Assert.Equal(count, next);
        using var file = SafetensorsFile.Open(path);
        var values = file.ReadSingles("lazy");
        Assert.All(new long[] { 0, 1, 65535, 65536, 131072, count - 1 }, i => Assert.Equal(Pattern(i), values[i]));
        Assert.Equal(Enumerable.Range(0, (int)count).Select(i => Pattern(i)), values);
    }

    [Fact]
    public void Sharded_checkpoint_round_trips_through_its_index()
    {
        var random = new Random(5);
        // Bytes: a 40, b 40, c 40, d 100, e 8; limit 96 -> [a b] [c] [d] (alone, larger than the limit) [e].
        var sources = new (string Name, SafetensorsDType DType, long[] Shape)[]
        {
            ("a", SafetensorsDType.F32, [10]), ("b", SafetensorsDType.BF16, [4, 5]), ("c", SafetensorsDType.I64, [5]),
            ("d", SafetensorsDType.F16, [50]), ("e", SafetensorsDType.I32, [2]),
        };
        var data = sources.Select(s => RandomBytes(random, s.Shape.Aggregate(1L, (p, d) => p * d) * s.DType.ByteSize())).ToArray();
        var folder = temp.File("sharded");
        var written = SafetensorsWriter.WriteSharded(folder, sources.Select((s, i) => TensorSource.FromBytes(s.Name, s.DType, s.Shape, data[i])).ToList(),
            maxShardBytes: 96, new Dictionary<string, string> { ["format"] = "pt" });

        string Shard(int k) => $"model-0000{k}-of-00004.safetensors";
        Assert.Equal(new[] { Shard(1), Shard(2), Shard(3), Shard(4), "model.safetensors.index.json" }, written.Select(Path.GetFileName));
        Assert.Equal(new[] { Shard(1), Shard(2), Shard(3), Shard(4), "model.safetensors.index.json" }.Order(StringComparer.Ordinal),
            Directory.GetFiles(folder).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        using (var index = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "model.safetensors.index.json"))))
        {
            Assert.Equal(228, index.RootElement.GetProperty("metadata").GetProperty("total_size").GetInt64());
            var map = index.RootElement.GetProperty("weight_map").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString());
            Assert.Equal(new Dictionary<string, string?> { ["a"] = Shard(1), ["b"] = Shard(1), ["c"] = Shard(2), ["d"] = Shard(3), ["e"] = Shard(4) }, map);
        }

        using var checkpoint = SafetensorsCheckpoint.Open(folder);
        Assert.Equal(4, checkpoint.Files.Count);
        Assert.Equal("228", checkpoint.IndexMetadata["total_size"]);
        for (int i = 0; i < sources.Length; i++)
        {
            var back = new byte[data[i].Length];
            checkpoint.ReadBytes(sources[i].Name, back);
            Assert.Equal(data[i], back);
            Assert.Equal(sources[i].Shape, checkpoint.Entry(sources[i].Name).Shape);
        }
        Assert.Equal("pt", checkpoint.FileOf("d").Metadata["format"]);
    }

    [Fact]
    public void Everything_within_the_shard_limit_is_one_model_safetensors_without_index()
    {
        var folder = temp.File("single");
        var written = SafetensorsWriter.WriteSharded(folder, [TensorSource.FromArray("w", [3], new[] { 1f, 2f, 3f })], maxShardBytes: 1 << 20);
        Assert.Equal(new[] { "model.safetensors" }, written.Select(Path.GetFileName));
        Assert.Equal(new[] { "model.safetensors" }, Directory.GetFiles(folder).Select(Path.GetFileName));
        using var checkpoint = SafetensorsCheckpoint.Open(folder);
        Assert.Equal(new[] { 1f, 2f, 3f }, checkpoint.ReadSingles("w"));
        // A second checkpoint is not written over the first.
        Assert.Throws<IOException>(() => SafetensorsWriter.WriteSharded(folder, [TensorSource.FromArray("w", [1], new[] { 1f })], maxShardBytes: 1));
    }

    [Fact]
    public void A_failed_write_leaves_no_file_behind()
    {
        var path = temp.File("failed.safetensors");
        // The generator fails half way through the second tensor.
        Assert.Throws<InvalidDataException>(() => SafetensorsWriter.Write(path,
        [
            TensorSource.FromArray("first", [4], new[] { 1f, 2f, 3f, 4f }),
            TensorSource.FromGenerator("second", SafetensorsDType.F32, [300_000], (first, _) =>
            {
                if (first > 100_000) throw new InvalidDataException("source failed");
            }),
        ]));
        Assert.Empty(temp.FileNames());

        // A source that supplies fewer bytes than its shape needs.
        var shortSource = TensorSource.FromBytes("short", SafetensorsDType.F32, [4], new byte[12]);
        var error = Assert.Throws<InvalidOperationException>(() => SafetensorsWriter.Write(path, [shortSource]));
        Assert.Contains("'short'", error.Message);
        Assert.Empty(temp.FileNames());

        // A writer disposed before Commit, and a Commit with data missing.
        using (var writer = SafetensorsWriter.Create(path, [new TensorSpec("w", SafetensorsDType.F32, [2])]))
            writer.Append<float>([1f]);
        Assert.Empty(temp.FileNames());
        using (var writer = SafetensorsWriter.Create(path, [new TensorSpec("w", SafetensorsDType.F32, [2])]))
        {
            writer.AppendValues([1f]);
            Assert.Contains("'w'", Assert.Throws<InvalidOperationException>(writer.Commit).Message);
        }
        Assert.Empty(temp.FileNames());
    }

    [Fact]
    public void A_failed_write_over_an_existing_file_leaves_the_old_file_intact()
    {
        var path = temp.File("kept.safetensors");
        SafetensorsWriter.Write(path, [TensorSource.FromArray("w", [2], new[] { 5f, 6f })]);
        var before = File.ReadAllBytes(path);
        Assert.Throws<InvalidDataException>(() => SafetensorsWriter.Write(path,
            [TensorSource.FromGenerator("w", SafetensorsDType.F32, [2], (_, _) => throw new InvalidDataException("source failed"))]));
        Assert.Equal(before, File.ReadAllBytes(path));
        Assert.Equal(new[] { "kept.safetensors" }, temp.FileNames());
    }

    [Fact]
    public void A_failed_sharded_write_removes_the_shards_already_written()
    {
        var folder = temp.File("partial");
        Assert.Throws<InvalidDataException>(() => SafetensorsWriter.WriteSharded(folder,
        [
            TensorSource.FromArray("a", [4], new[] { 1f, 2f, 3f, 4f }),
            TensorSource.FromArray("b", [4], new[] { 1f, 2f, 3f, 4f }),
            TensorSource.FromGenerator("c", SafetensorsDType.F32, [4], (_, _) => throw new InvalidDataException("source failed")),
        ], maxShardBytes: 16));
        Assert.Empty(Directory.GetFiles(folder));
    }

    // ---- refusing broken files ----------------------------------------------------------------------

    [Fact]
    public void A_file_shorter_than_the_length_prefix_is_refused()
    {
        var path = temp.File("tiny.safetensors");
        File.WriteAllBytes(path, [1, 2, 3]);
        AssertRefused(path, "truncated");
    }

    [Fact]
    public void A_header_length_beyond_the_file_is_refused()
    {
        var path = RawFile("beyond.safetensors", """{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""", new byte[4], declaredHeaderLength: 4096);
        AssertRefused(path, "4096", "beyond");
    }

    [Fact]
    public void A_header_length_over_the_bound_is_refused()
    {
        var path = RawFile("huge.safetensors", "{}", [], declaredHeaderLength: 100_000_001);
        AssertRefused(path, "100000001", "limit");
    }

    [Fact]
    public void A_truncated_file_is_refused_naming_the_tensor_cut_off()
    {
        var path = temp.File("cut.safetensors");
        SafetensorsWriter.Write(path, [TensorSource.FromArray("first", [4], new float[4]), TensorSource.FromArray("last", [4], new float[4])]);
        using (var stream = new FileStream(path, FileMode.Open)) stream.SetLength(stream.Length - 3);
        AssertRefused(path, "'last'", "truncated");
    }

    [Fact]
    public void Offsets_outside_the_data_buffer_are_refused()
    {
        var path = RawFile("outside.safetensors", """{"w":{"dtype":"F32","shape":[2],"data_offsets":[64,72]}}""", new byte[16]);
        AssertRefused(path, "'w'", "[64, 72]");
        var reversed = RawFile("reversed.safetensors", """{"w":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}}""", new byte[16]);
        AssertRefused(reversed, "'w'", "[8, 4]");
    }

    [Fact]
    public void Overlapping_tensors_are_refused_naming_both()
    {
        var path = RawFile("overlap.safetensors",
            """{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}}""", new byte[24]);
        AssertRefused(path, "'a'", "'b'", "overlap");
    }

    [Fact]
    public void A_byte_size_that_does_not_match_dtype_and_shape_is_refused()
    {
        // A BF16 tensor labelled F32: 3 elements need 12 bytes, the offsets cover 6.
        var path = RawFile("mislabelled.safetensors", """{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,6]}}""", new byte[8]);
        AssertRefused(path, "'w'", "6 bytes", "12");
        // F32 data labelled BF16: 2 elements need 4 bytes, the offsets cover 8.
        var wider = RawFile("mislabelled-wide.safetensors", """{"w":{"dtype":"BF16","shape":[2],"data_offsets":[0,8]}}""", new byte[8]);
        AssertRefused(wider, "'w'", "8 bytes", "need 4");
    }

    [Theory]
    [InlineData("F64")]
    [InlineData("F8_E4M3")]
    [InlineData("f32")]
    public void An_unknown_dtype_is_refused(string dtype)
    {
        var path = RawFile("dtype.safetensors", $$$"""{"w":{"dtype":"{{{dtype}}}","shape":[1],"data_offsets":[0,8]}}""", new byte[8]);
        AssertRefused(path, "'w'", $"'{dtype}'");
    }

    [Theory]
    [InlineData("""{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}""", "JSON")]
    [InlineData("""[1, 2]""", "not an object")]
    [InlineData("""{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}""", "'w'")]
    [InlineData("""{"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}""", "'w'")]
    [InlineData("""{"w":{"dtype":"F32","shape":[1],"data_offsets":[0]}}""", "'w'")]
    [InlineData("""{"w":{"dtype":"F32","shape":[1]}}""", "'w'")]
    [InlineData("""{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}""", "'w' twice")]
    [InlineData("""{"__metadata__":{"format":1},"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""", "'format'")]
    [InlineData("""{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}} x""", "after its JSON")]
    public void A_malformed_header_is_refused(string header, string named)
    {
        var path = RawFile("malformed.safetensors", header, new byte[8]);
        AssertRefused(path, named);
    }

    [Fact]
    public void A_missing_shard_is_refused_naming_the_shard_and_a_tensor_in_it()
    {
        var folder = ShardedCheckpoint("missing");
        File.Delete(Path.Combine(folder, "model-00002-of-00003.safetensors"));
        var error = Assert.Throws<ModelFormatException>(() => SafetensorsCheckpoint.Open(folder));
        Assert.Contains("model-00002-of-00003.safetensors", error.Message);
        Assert.Contains("model.safetensors.index.json", error.Message);
        Assert.Contains("'b'", error.Message);
    }

    [Fact]
    public void A_tensor_missing_from_its_shard_is_refused()
    {
        var folder = ShardedCheckpoint("ghost");
        var indexPath = Path.Combine(folder, "model.safetensors.index.json");
        File.WriteAllText(indexPath, """
            {"metadata": {}, "weight_map": {"a": "model-00001-of-00003.safetensors", "ghost": "model-00001-of-00003.safetensors",
             "b": "model-00002-of-00003.safetensors", "c": "model-00003-of-00003.safetensors"}}
            """);
        var error = Assert.Throws<ModelFormatException>(() => SafetensorsCheckpoint.Open(folder));
        Assert.Contains("'ghost'", error.Message);
        Assert.Contains("model-00001-of-00003.safetensors", error.Message);
    }

    [Fact]
    public void A_shard_outside_the_index_folder_is_refused()
    {
        var folder = ShardedCheckpoint("escape");
        File.WriteAllText(Path.Combine(folder, "model.safetensors.index.json"), """{"weight_map": {"a": "../model-00001-of-00003.safetensors"}}""");
        var error = Assert.Throws<ModelFormatException>(() => SafetensorsCheckpoint.Open(folder));
        Assert.Contains("'a'", error.Message);
        Assert.Contains("not a file name", error.Message);
    }

    [Fact]
    public void A_tensor_not_in_the_checkpoint_is_a_clear_error()
    {
        var folder = ShardedCheckpoint("absent");
        using var checkpoint = SafetensorsCheckpoint.Open(folder);
        var error = Assert.Throws<ModelFormatException>(() => checkpoint.ReadSingles("lm_head.weight"));
        Assert.Contains("'lm_head.weight'", error.Message);
        Assert.Contains(folder, error.Message);
    }

    [Fact]
    public void A_broken_shard_is_refused_naming_its_file()
    {
        var folder = ShardedCheckpoint("broken");
        var shard = Path.Combine(folder, "model-00003-of-00003.safetensors");
        using (var stream = new FileStream(shard, FileMode.Open)) stream.SetLength(stream.Length - 1);
        var error = Assert.Throws<ModelFormatException>(() => SafetensorsCheckpoint.Open(folder));
        Assert.Contains(shard, error.Message);
        Assert.Contains("'c'", error.Message);
    }

    // ---- helpers ------------------------------------------------------------------------------------

    /// <summary>Three F32 tensors a, b, c of 4 elements, one per shard.</summary>
    private string ShardedCheckpoint(string name)
    {
        var folder = temp.File(name);
        SafetensorsWriter.WriteSharded(folder, new[] { "a", "b", "c" }.Select(n => TensorSource.FromArray(n, [4], new float[4])).ToList(), maxShardBytes: 16);
        return folder;
    }

    /// <summary>A file written by hand: the 8-byte length (the real one unless <paramref name="declaredHeaderLength"/>), the header, the data.</summary>
    private string RawFile(string name, string header, byte[] data, ulong? declaredHeaderLength = null)
    {
        var path = temp.File(name);
        var headerBytes = Encoding.UTF8.GetBytes(header);
        var bytes = new byte[8 + headerBytes.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, declaredHeaderLength ?? (ulong)headerBytes.Length);
        headerBytes.CopyTo(bytes, 8);
        data.CopyTo(bytes, 8 + headerBytes.Length);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    /// <summary>Opening <paramref name="path"/> fails with a message that names the file and each of <paramref name="named"/>.</summary>
    private static void AssertRefused(string path, params string[] named)
    {
        var error = Assert.Throws<ModelFormatException>(() => SafetensorsCheckpoint.Open(path));
        Assert.Contains(path, error.Message);
        foreach (var part in named) Assert.Contains(part, error.Message);
    }

    private static byte[] RandomBytes(Random random, long count)
    {
        var bytes = new byte[count];
        random.NextBytes(bytes);
        return bytes;
    }

    private static byte[] Bytes(ushort[] words) => words.SelectMany(w => new[] { (byte)w, (byte)(w >> 8) }).ToArray();

    private static ushort[] StoredWords(SafetensorsFile file, string name, int count)
    {
        var bytes = new byte[count * 2];
        file.ReadBytes(name, bytes);
        return Enumerable.Range(0, count).Select(i => (ushort)(bytes[2 * i] | bytes[2 * i + 1] << 8)).ToArray();
    }

    private static ushort[] HalfBits(SafetensorsFile file, string name, int count)
    {
        var halves = new Half[count];
        file.Read(name, halves);
        return halves.Select(BitConverter.HalfToUInt16Bits).ToArray();
    }

    private static void AssertBitsEqual(float[] expected, float[] actual) =>
        Assert.Equal(expected.Select(BitConverter.SingleToUInt32Bits), actual.Select(BitConverter.SingleToUInt32Bits));
}
