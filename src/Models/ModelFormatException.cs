namespace AlignThenUnlearn.Models;

/// <summary>A checkpoint or configuration file that is not what the reader expects (corrupt, truncated,
/// mislabelled or unsupported); the message names the file, the tensor or key, and what was expected.</summary>
public sealed class ModelFormatException(string message, Exception? inner = null) : Exception(message, inner);
