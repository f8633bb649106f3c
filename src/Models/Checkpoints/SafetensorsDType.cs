namespace AlignThenUnlearn.Models.Checkpoints;

/// <summary>The safetensors element types this project reads and writes (names as in the header).</summary>
public enum SafetensorsDType { F32, F16, BF16, I64, I32 }

public static class SafetensorsDTypes
{
    public static int ByteSize(this SafetensorsDType dtype) => dtype switch
    {
        SafetensorsDType.F32 or SafetensorsDType.I32 => 4,
        SafetensorsDType.F16 or SafetensorsDType.BF16 => 2,
        SafetensorsDType.I64 => 8,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, null),
    };

    public static bool IsFloatingPoint(this SafetensorsDType dtype) =>
        dtype is SafetensorsDType.F32 or SafetensorsDType.F16 or SafetensorsDType.BF16;

    /// <summary>The header spelling ("F32", "BF16", ...).</summary>
    public static string HeaderName(this SafetensorsDType dtype) => dtype.ToString();

    public static bool TryParse(string name, out SafetensorsDType dtype)
    {
        foreach (var candidate in Enum.GetValues<SafetensorsDType>())
            if (candidate.HeaderName() == name) { dtype = candidate; return true; }
        dtype = default;
        return false;
    }

    public static string Supported => string.Join(", ", Enum.GetValues<SafetensorsDType>().Select(d => d.HeaderName()));
}
