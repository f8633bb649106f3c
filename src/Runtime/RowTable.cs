using System.IO.MemoryMappedFiles;
using AlignThenUnlearn.Onnx;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using DataType = Onnx.TensorProto.Types.DataType;

namespace AlignThenUnlearn.Runtime;

/// <summary>A table of float32 rows [rows, length, width], written once in row order and then read as batches: the given
/// rows cut to their first positions, as a device tensor [batch, positions, width]. It lives in the device's memory
/// when it takes at most <c>memoryLimit</c> bytes (batches are then gathered on the device), else in a file in
/// <c>folder</c> that is memory-mapped (batches are read from the mapping and uploaded); the file is deleted when the
/// table is disposed (on Unix as soon as it is opened).</summary>
public sealed unsafe class RowTable : IDisposable
{
    const string TableInput = "table", RowsInput = "rows", PositionsInput = "positions", BatchOutput = "batch";

    readonly ExecutionDevice _device;
    readonly long _rowElements;
    long _written;
    // In memory: the table on the device (written in place on the CPU, through a host array uploaded at the end on CUDA)
    // and the session that gathers batches from it.
    DeviceTensor? _table;
    float[]? _staging;
    InferenceSession? _gather;
    // On disk: the file while it is written, then its mapping.
    FileStream? _file;
    MemoryMappedFile? _map;
    MemoryMappedViewAccessor? _view;
    byte* _mapped;

    public long Rows { get; }
    public int Length { get; }
    public int Width { get; }
    public long Bytes => Rows * _rowElements * sizeof(float);
    /// <summary>The file that holds the table (on Unix already unlinked), or null when it is in the device's memory.</summary>
    public string? FilePath { get; }
    public bool InMemory => FilePath is null;

    public RowTable(ExecutionDevice device, long rows, int length, int width, long memoryLimit, string folder)
    {
        if (rows < 1 || length < 1 || width < 1) throw new ArgumentException($"a row table needs positive sizes, not [{rows}, {length}, {width}]");
        (_device, Rows, Length, Width, _rowElements) = (device, rows, length, width, (long)length * width);
        // A span (CPU tensors, host arrays) reaches at most int.MaxValue elements.
        if (Bytes <= memoryLimit && rows * _rowElements <= int.MaxValue)
        {
            _table = device.Allocate(TensorElementType.Float, [rows, length, width]);
            if (device.Kind != DeviceKind.Cpu) _staging = new float[rows * _rowElements];
            return;
        }
        Directory.CreateDirectory(folder);
        FilePath = Path.Combine(Path.GetFullPath(folder), $"rows-{Environment.ProcessId}-{Guid.NewGuid():N}.f32");
        _file = new FileStream(FilePath, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 1 << 20,
            OperatingSystem.IsWindows() ? FileOptions.DeleteOnClose : FileOptions.None);
        // Where an open file can be unlinked, it is, at once: a killed run leaves nothing behind.
        if (!OperatingSystem.IsWindows()) File.Delete(FilePath);
    }

    /// <summary>Writes the next whole rows.</summary>
    public void Append(ReadOnlySpan<float> rows)
    {
        if (rows.Length % _rowElements != 0 || _written + rows.Length / _rowElements > Rows)
            throw new ArgumentException($"{rows.Length} values are not whole rows of [{Length}, {Width}] within the table's {Rows} rows ({_written} written)");
        if (_view is not null || (_table is not null && _gather is not null)) throw new InvalidOperationException("the table is complete");
        long start = _written * _rowElements;
        if (_file is not null) _file.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(rows));
        else if (_staging is not null) rows.CopyTo(_staging.AsSpan((int)start));
        else rows.CopyTo(_table!.Value.GetTensorMutableDataAsSpan<float>()[(int)start..]);
        _written += rows.Length / _rowElements;
    }

    /// <summary>Ends the writing: every row must have been written.</summary>
    public void Complete()
    {
        if (_written != Rows) throw new InvalidOperationException($"{_written} of the table's {Rows} rows were written");
        if (_file is not null)
        {
            _file.Flush();
            _map = MemoryMappedFile.CreateFromFile(_file, mapName: null, capacity: 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: true);
            _view = _map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            _view.SafeMemoryMappedViewHandle.AcquirePointer(ref _mapped);
            _mapped += _view.PointerOffset;
            return;
        }
        if (_staging is not null) { _device.CopyInto<float>(_table!, _staging); _staging = null; }
        _gather = _device.Open(GatherGraph());
    }

    /// <summary>The first <paramref name="positions"/> positions of the given rows, [rows.Count, positions, width], in the
    /// device's memory; the caller disposes it.</summary>
    public DeviceTensor Read(IReadOnlyList<int> rows, int positions)
    {
        if (_view is null && _gather is null) throw new InvalidOperationException("the table is being written; call Complete first");
        if (positions < 1 || positions > Length) throw new ArgumentOutOfRangeException(nameof(positions), positions, $"rows have {Length} positions");
        foreach (var r in rows) if (r < 0 || r >= Rows) throw new ArgumentOutOfRangeException(nameof(rows), r, $"the table has {Rows} rows");
        var batch = _device.Allocate(TensorElementType.Float, [rows.Count, positions, Width]);
        try
        {
            if (_view is not null) ReadMapped(rows, positions, batch);
            else Gather(rows, positions, batch);
        }
        catch { batch.Dispose(); throw; }
        return batch;
    }

    void ReadMapped(IReadOnlyList<int> rows, int positions, DeviceTensor batch)
    {
        long count = (long)positions * Width;
        _device.Fill<float>(batch, values =>
        {
            for (int i = 0; i < rows.Count; i++)
                new ReadOnlySpan<float>(_mapped + rows[i] * _rowElements * sizeof(float), (int)count).CopyTo(values.Slice((int)(i * count)));
        });
    }

    void Gather(IReadOnlyList<int> rows, int positions, DeviceTensor batch)
    {
        using var indices = OrtValue.CreateTensorValueFromMemory(rows.Select(r => (long)r).ToArray(), [rows.Count]);
        using var ends = OrtValue.CreateTensorValueFromMemory(new[] { (long)positions }, [1]);
        using var binding = _gather!.CreateIoBinding();
        binding.BindInput(TableInput, _table!.Value);
        binding.BindInput(RowsInput, indices);
        binding.BindInput(PositionsInput, ends);
        binding.BindOutput(BatchOutput, batch.Value);
        using var run = new RunOptions();
        _gather.RunWithBinding(run, binding);
        binding.SynchronizeBoundOutputs();
    }

    /// <summary>batch = table[rows, :positions].</summary>
    static global::Onnx.ModelProto GatherGraph()
    {
        var b = new GraphBuilder("row_table_gather");
        var table = b.Input(TableInput, DataType.Float, "rows", "length", "width");
        var rows = b.Input(RowsInput, DataType.Int64, "batch");
        var positions = b.Input(PositionsInput, DataType.Int64, 1);
        b.Node("Slice", [b.Gather(table, rows), b.Ints(0), positions, b.Ints(1)], 1, outputNames: [BatchOutput]);
        b.Output(BatchOutput, DataType.Float, "batch", "positions", "width");
        return b.ToModel();
    }

    public void Dispose()
    {
        if (_view is not null && _mapped is not null) { _view.SafeMemoryMappedViewHandle.ReleasePointer(); _mapped = null; }
        _view?.Dispose();
        _map?.Dispose();
        _file?.Dispose();   // the file goes with the handle
        _gather?.Dispose();
        _table?.Dispose();
    }
}
