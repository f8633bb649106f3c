using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Onnx;

/// <summary>One dimension: a known size, a named symbol (batch, sequence) or unknown.</summary>
public readonly record struct Dim(long Size, string? Symbol)
{
    public static readonly Dim Unknown = new(-1, null);
    public bool IsStatic => Size >= 0;
    public bool IsSymbolic => Symbol is not null;
    public bool IsKnown => IsStatic || IsSymbolic;

    public static implicit operator Dim(long size) => new(size, null);
    public static implicit operator Dim(int size) => new(size, null);
    public static implicit operator Dim(string symbol) => new(-1, symbol);

    /// <summary>True only when both are provably the same size.</summary>
    public bool SameAs(Dim other) => (IsStatic && other.IsStatic && Size == other.Size) || (IsSymbolic && other.IsSymbolic && Symbol == other.Symbol);

    public override string ToString() => IsStatic ? Size.ToString() : Symbol ?? "?";
}

/// <summary>Element type and (possibly partial) shape of a value; Shape null means the rank is unknown.</summary>
public sealed record TensorInfo(DataType ElementType, Dim[]? Shape)
{
    public int Rank => Shape?.Length ?? -1;
    public bool HasRank => Shape is not null;
    public bool IsFullyStatic => Shape is not null && Shape.All(d => d.IsStatic);
    public override string ToString() => $"{ElementType}[{(Shape is null ? "?" : string.Join(",", Shape))}]";
}
