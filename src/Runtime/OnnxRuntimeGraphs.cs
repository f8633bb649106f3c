using System.Runtime.CompilerServices;
using AlignThenUnlearn.Onnx;
using Onnx;

namespace AlignThenUnlearn.Runtime;

/// <summary>The graph ONNX Runtime really runs for a model: what its optimiser (at the level <see cref="ExecutionDevice"/>
/// opens sessions with) makes of it, as it saves it (<c>SessionOptions.OptimizedModelFilePath</c>): Transpose + MatMul
/// fused into FusedMatMul, Identity nodes removed, shape-independent constants (the zeros of an embedding gradient)
/// folded into initializers the session holds, and its nodes written in the order it executes them (Graph::ToGraphProto
/// walks GraphViewer's topological order). Opened on the CPU provider, without weights (parameters are graph inputs);
/// a CUDA session's graph differs in the fusions that provider has. Each model is optimised once per process.</summary>
public static class OnnxRuntimeGraphs
{
    static readonly ConditionalWeakTable<ModelProto, ModelProto> Cache = new();

    public static ModelProto Optimized(ModelProto model)
    {
        lock (Cache)
        {
            if (Cache.TryGetValue(model, out var known)) return known;
            var path = Path.Combine(Path.GetTempPath(), $"atu-optimized-{Environment.ProcessId}-{Guid.NewGuid():N}.onnx");
            try
            {
                using (var device = ExecutionDevice.Create("cpu", 1))
                using (device.Open(model, path)) { }
                var optimized = ModelFile.Load(path);
                Cache.Add(model, optimized);
                return optimized;
            }
            finally { File.Delete(path); }
        }
    }
}
