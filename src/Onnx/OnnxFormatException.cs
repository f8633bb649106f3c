namespace AlignThenUnlearn.Onnx;

/// <summary>A model, graph or tensor that is not what the reader expects; the message names
/// the file, node or tensor and what was expected.</summary>
public sealed class OnnxFormatException(string message, Exception? inner = null) : Exception(message, inner);
