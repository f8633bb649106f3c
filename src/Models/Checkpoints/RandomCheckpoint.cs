namespace AlignThenUnlearn.Models.Checkpoints;

/// <summary>Writes a Hugging Face-style snapshot (config.json and safetensors shards) of random weights for any
/// decoder configuration: uniform values with standard deviation <c>std</c>, norm weights one. Tensors are generated
/// while they are written, so a checkpoint of any size costs a few megabytes of memory.</summary>
public static class RandomCheckpoint
{
    public static void Write(DecoderConfig config, string folder, ulong seed, SafetensorsDType dtype = SafetensorsDType.BF16,
        double std = 0.02, long maxShardBytes = 4L << 30)
    {
        var parameters = DecoderBuilder.Parameters(config);
        StagingArea.RequireFreeSpace(folder, parameters.Sum(p => p.ElementCount * dtype.ByteSize()), $"a random checkpoint of {parameters.Sum(p => p.ElementCount):N0} parameters");
        Directory.CreateDirectory(folder);
        float scale = (float)(std * Math.Sqrt(3));   // uniform on [-a, a] has standard deviation a / sqrt(3)
        var sources = parameters.Select(p =>
            p.Shape.Length == 1 && p.Name.EndsWith("norm.weight", StringComparison.Ordinal)
                ? TensorSource.FromGenerator(p.Name, dtype, p.Shape, (_, values) => values.Fill(1f))
                : SyntheticTensors.Tensor(p.Name, dtype, p.Shape, seed, scale)).ToList();
        SafetensorsWriter.WriteSharded(folder, sources, maxShardBytes);
        HfConfig.Save(config, Path.Combine(folder, HfConfig.FileName));
    }
}
