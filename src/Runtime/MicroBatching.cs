using System.Globalization;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Onnx;
using Onnx;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Runtime;

/// <summary>What a loss averages over; the whole batch's count of it is what every micro-batch divides by.</summary>
public enum BatchCount
{
    /// <summary>The sum of a weight tensor [batch, seq] over every position (masked positions, full windows).</summary>
    Positions,
    /// <summary>The sum of a loss mask [batch, seq] over positions 0..seq-2 (next-token labels; the last position has none).</summary>
    Labels,
    /// <summary>The rows of a tensor (its first dimension).</summary>
    Rows,
    /// <summary>The rows of a loss mask with at least one label at positions 0..seq-2.</summary>
    LabelledRows,
    /// <summary>Half the rows: pairs laid out as all first members, then all second members (DPO).</summary>
    Pairs,
}

/// <summary>Micro-batching: one batch run as several pieces of at most <c>rows</c> rows whose gradients, added up, are the
/// whole batch's gradient (gradient accumulation inside one optimizer step, so a step fits a smaller device).
/// A loss that averages over the batch divides by a count (label tokens, masked positions, rows), and the mean over a
/// piece is not its share of the batch's mean: a piece must divide its sum by the whole batch's count. So a loss graph
/// takes each count it divides by as a scalar input <c>batch_total.KIND.TENSOR</c> (<see cref="TotalInput"/>), an
/// overridable initializer holding 0, and divides by max(the piece's own count, the input): left alone, a graph divides
/// by its batch's own count as before; fed the whole batch's count (<see cref="Totals"/>), a piece's loss is its exact
/// share and the pieces' losses and gradients sum to the batch's. Pieces keep the batch's sequence length.</summary>
public static class MicroBatching
{
    public const string TotalPrefix = "batch_total.";

    static readonly Dictionary<BatchCount, string> KindNames = new()
    {
        [BatchCount.Positions] = "positions", [BatchCount.Labels] = "labels", [BatchCount.Rows] = "rows",
        [BatchCount.LabelledRows] = "labelled_rows", [BatchCount.Pairs] = "pairs",
    };

    /// <summary>The scalar input that carries the whole batch's <paramref name="kind"/> count of <paramref name="tensor"/>
    /// (a graph input the batch feeds), added to the graph the first time it is asked for.</summary>
    public static string TotalInput(GraphBuilder b, BatchCount kind, string tensor)
    {
        var name = TotalPrefix + KindNames[kind] + "." + tensor;
        if (b.Graph.Input.Any(i => i.Name == name)) return name;
        b.Input(name, DataType.Float);
        var zero = Tensors.Scalar(name, DataType.Float, 0);
        zero.Name = name;
        b.Graph.Initializer.Add(zero);
        return name;
    }

    /// <summary>max(<paramref name="ownCount"/>, the whole batch's count): the denominator of a mean over the batch.</summary>
    public static string Denominator(GraphBuilder b, string ownCount, BatchCount kind, string tensor) =>
        b.Op("Max", ownCount, TotalInput(b, kind, tensor));

    /// <summary>The whole batch's counts for every <c>batch_total</c> input of <paramref name="graph"/>.</summary>
    public static Dictionary<string, HostTensor> Totals(ModelProto graph, IReadOnlyDictionary<string, HostTensor> batch)
    {
        var totals = new Dictionary<string, HostTensor>();
        foreach (var name in graph.Graph.Input.Select(i => i.Name).Where(n => n.StartsWith(TotalPrefix, StringComparison.Ordinal)))
        {
            var rest = name[TotalPrefix.Length..];
            int dot = rest.IndexOf('.');
            var kind = KindNames.Single(k => k.Value == rest[..dot]).Key;
            var tensorName = rest[(dot + 1)..];
            if (!batch.TryGetValue(tensorName, out var tensor))
                throw new ArgumentException($"micro-batching: the loss divides by the batch's {KindNames[kind]} of '{tensorName}', which the batch does not hold");
            totals[name] = HostTensor.Of([(float)Count(kind, tensor, tensorName)]);
        }
        return totals;
    }

    static double Count(BatchCount kind, HostTensor tensor, string name)
    {
        long rows = tensor.Shape[0];
        if (kind == BatchCount.Rows) return rows;
        if (kind == BatchCount.Pairs) return rows / 2;
        if (tensor.Shape.Length != 2 || tensor.Data is not float[] values)
            throw new ArgumentException($"micro-batching: '{name}' is {tensor}, expected a float mask [batch, seq]");
        int length = (int)tensor.Shape[1];
        int end = kind == BatchCount.Positions ? length : length - 1;
        double total = 0;
        for (long r = 0; r < rows; r++)
        {
            double row = 0;
            for (int t = 0; t < end; t++) row += values[r * length + t];
            total += kind == BatchCount.LabelledRows ? (row > 0 ? 1 : 0) : row;
        }
        return total;
    }

    /// <summary>The rows of each piece: consecutive runs of <paramref name="rowsPerPiece"/> rows; with
    /// <paramref name="pairedHalves"/> the batch holds every example's first sequence, then every second one (DPO's
    /// chosen and rejected, GradDiff's forget and retain), a piece takes the same examples from both halves, and
    /// <paramref name="rowsPerPiece"/> counts examples.</summary>
    public static List<int[]> PieceRows(int rows, int rowsPerPiece, bool pairedHalves)
    {
        if (rowsPerPiece < 1) throw new ArgumentOutOfRangeException(nameof(rowsPerPiece), rowsPerPiece, "a micro-batch holds at least one row");
        if (pairedHalves && rows % 2 != 0) throw new ArgumentException($"a batch of paired sequences has an even number of rows, not {rows}");
        int examples = pairedHalves ? rows / 2 : rows;
        var pieces = new List<int[]>();
        for (int start = 0; start < examples; start += rowsPerPiece)
        {
            var first = Enumerable.Range(start, Math.Min(rowsPerPiece, examples - start)).ToArray();
            pieces.Add(pairedHalves ? [.. first, .. first.Select(r => r + examples)] : first);
        }
        return pieces;
    }

    /// <summary>The inputs of <paramref name="graph"/> whose first dimension is the batch (<see cref="DecoderGraph.Batch"/>).</summary>
    public static List<string> BatchedInputs(ModelProto graph) =>
        [.. graph.Graph.Input.Where(i => GraphBuilder.InfoOf(i)?.Shape is [var first, ..] && first.SameAs(DecoderGraph.Batch)).Select(i => i.Name)];

    /// <summary>The batch's rows <paramref name="rows"/> of every tensor that is a <see cref="BatchedInputs"/> of
    /// <paramref name="graph"/>; other tensors (a target embedding, tau) as they are.</summary>
    public static Dictionary<string, HostTensor> Piece(ModelProto graph, IReadOnlyDictionary<string, HostTensor> batch, int[] rows)
    {
        var batched = BatchedInputs(graph).ToHashSet();
        var piece = new Dictionary<string, HostTensor>();
        foreach (var (name, tensor) in batch)
            piece[name] = batched.Contains(name) ? Rows(tensor, rows) : tensor;
        return piece;
    }

    static HostTensor Rows(HostTensor tensor, int[] rows)
    {
        long rowSize = tensor.Shape.Skip(1).Aggregate(1L, (p, d) => p * d);
        var data = Array.CreateInstance(tensor.Data.GetType().GetElementType()!, rows.Length * rowSize);
        for (int i = 0; i < rows.Length; i++) Array.Copy(tensor.Data, rows[i] * rowSize, data, i * rowSize, rowSize);
        return new HostTensor(data, [rows.Length, .. tensor.Shape.Skip(1)]);
    }

    /// <summary>The check of a preset's micro-batch size against a batch size (0: the whole batch).</summary>
    public static string? Refusal(string key, int microBatch, string batchKey, int batchSize) =>
        microBatch < 0 ? string.Create(CultureInfo.InvariantCulture, $"{key} {microBatch} must be 0 (the whole batch) or positive")
        : microBatch > 0 && batchSize % microBatch != 0
            ? string.Create(CultureInfo.InvariantCulture, $"{key} {microBatch} does not divide {batchKey} {batchSize}; a micro-batch size must divide the batch (0: the whole batch)")
        : null;
}
