namespace AlignThenUnlearn.Evaluation;

/// <summary>A data file that does not match its schema. The message names the file, the row (0-based index into
/// the file's top-level array) and the field, so the user can find the offending value.</summary>
public sealed class DatasetFormatException(string file, int? row, string? field, string problem, Exception? inner = null)
    : Exception(Describe(file, row, field, problem), inner)
{
    public string File { get; } = file;
    public int? Row { get; } = row;
    public string? Field { get; } = field;

    static string Describe(string file, int? row, string? field, string problem)
    {
        var where = file;
        if (row is int r) where += $", row {r}";
        if (field is not null) where += $", field '{field}'";
        return $"{where}: {problem}";
    }
}
