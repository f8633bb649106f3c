using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;
using AlignThenUnlearn.Tests.Support;

namespace AlignThenUnlearn.Tests.Runtime.Placement;

/// <summary>How ONNX Runtime's CUDA provider partitions one graph: nodes per provider (from its verbose "Node
/// placements" log), the CPU nodes by op type and name, and the copy nodes it inserted (from the optimised model).</summary>
public sealed record Partition(string Model, string? Error, int CudaNodes, IReadOnlyList<(string OpType, string Name)> CpuNodes,
    int CopiesToHost, int CopiesFromHost, IReadOnlyList<string> Copied, string OptimizedModelPath)
{
    public int Copies => CopiesToHost + CopiesFromHost;
}

/// <summary>Opens graphs with the real CUDA provider library of the ONNX Runtime package on a machine without a GPU: a
/// child process (placement_probe.c) loads the package's libonnxruntime.so with LD_LIBRARY_PATH on no-op stand-ins for
/// the CUDA libraries the provider links (compiled here from the provider's undefined symbols, with their sonames and
/// symbol versions; cudaGetDeviceCount reports one device, allocations come from malloc). ONNX Runtime then assigns
/// nodes and inserts its copy nodes while it creates the session; no kernel runs. A child, because the stand-ins would
/// otherwise make this test process believe it has CUDA.</summary>
public sealed class CudaPlacementProbe
{
    const string ProbeSource = "placement_probe.c";
    readonly string _folder, _probe, _stubs, _onnxRuntime;

    CudaPlacementProbe(string folder, string probe, string stubs, string onnxRuntime) =>
        (_folder, _probe, _stubs, _onnxRuntime) = (folder, probe, stubs, onnxRuntime);

    /// <summary>The package's native folder beside the test binaries (where the product loads ONNX Runtime from).</summary>
    public static string NativeFolder => Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native");

    /// <summary>Builds the stand-ins and the probe under <paramref name="folder"/>, or says why it cannot here.</summary>
    public static CudaPlacementProbe Build(string folder, out string? cannot)
    {
        cannot = null;
        var provider = Path.Combine(NativeFolder, "libonnxruntime_providers_cuda.so");
        var onnxRuntime = Path.Combine(NativeFolder, "libonnxruntime.so");
        var headers = HeaderFolder();
        if (!OperatingSystem.IsLinux()) cannot = "the CUDA provider library is a Linux one";
        else if (!File.Exists(provider)) cannot = $"the CUDA provider library '{provider}' is not in this build";
        else if (headers is null) cannot = "ONNX Runtime's C headers (package microsoft.ml.onnxruntime.gpu.linux 1.31.0, buildTransitive/native/include) are not in the NuGet cache";
        else if (Which("gcc") is null) cannot = "gcc is not installed";
        else if (Which("nm") is null) cannot = "nm (binutils) is not installed";
        if (cannot is not null) return null!;

        var stubs = Directory.CreateDirectory(Path.Combine(folder, "stand-ins")).FullName;
        foreach (var (library, symbols) in ProviderImports(provider))
            CompileStandIn(stubs, library, symbols);
        var probe = Path.Combine(folder, "placement_probe");
        Run("gcc", ["-O1", "-o", probe, RepositoryFiles.Path("tests", "AlignThenUnlearn.Tests", "Runtime", "Placement", ProbeSource), "-I", headers!, "-ldl"]);
        return new CudaPlacementProbe(folder, probe, stubs, onnxRuntime);
    }

    /// <summary>The libraries the provider needs that are CUDA's (not the C and C++ runtimes), each with the symbols
    /// the provider imports from it: versioned symbols name their library; the unversioned driver entry points
    /// (<c>cu*</c>) are libcuda's.</summary>
    static Dictionary<string, List<string>> ProviderImports(string provider)
    {
        var needed = Run("readelf", ["-d", provider]).Split('\n')
            .Select(l => Regex.Match(l, @"\(NEEDED\)\s+Shared library: \[(.+)\]")).Where(m => m.Success).Select(m => m.Groups[1].Value)
            .Where(l => Regex.IsMatch(l, @"^lib(cu|nv)")).ToDictionary(l => l, _ => new List<string>());
        foreach (var line in Run("nm", ["-D", "--undefined-only", "--with-symbol-versions", provider]).Split('\n'))
        {
            var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (parts is not ["U", var symbol]) continue;
            var at = symbol.IndexOf('@');
            string name = at < 0 ? symbol : symbol[..at], version = at < 0 ? "" : symbol[(at + 1)..].TrimStart('@');
            if (needed.TryGetValue(version, out var list)) list.Add(name);
            else if (at < 0 && name.StartsWith("cu") && needed.TryGetValue("libcuda.so.1", out var driver)) driver.Add(name);
        }
        if (!needed.ContainsKey("libcudart.so.13")) throw new InvalidOperationException($"'{provider}' does not link libcudart.so.13: not the CUDA 13 provider this check expects");
        return needed;
    }

    /// <summary>A library with the given soname exporting every symbol under a version node of that name (as CUDA's
    /// libraries do), each a no-op that succeeds; the few whose outputs the provider reads at session creation fill them.</summary>
    static void CompileStandIn(string folder, string library, List<string> symbols)
    {
        var c = new StringBuilder("""
            #include <stdlib.h>
            #include <string.h>
            typedef long L;
            static char handle[4096];
            static void* fat_binary[16];

            """);
        foreach (var s in symbols) c.AppendLine(Body(s));
        if (symbols.Count == 0) c.AppendLine("int atu_stand_in;");
        var source = Path.Combine(folder, library + ".c");
        File.WriteAllText(source, c.ToString());
        var args = new List<string> { "-shared", "-fPIC", "-O1", "-w", "-o", Path.Combine(folder, library), source, $"-Wl,-soname,{library}" };
        if (symbols.Count > 0)
        {
            var map = Path.Combine(folder, library + ".map");
            File.WriteAllText(map, $"{library} {{ global: {string.Join(" ", symbols.Select(s => s + ";"))} local: *; }};\n");
            args.Add($"-Wl,--version-script,{map}");
        }
        Run("gcc", args);
    }

    static string Body(string s) => s switch
    {
        "cudaGetDeviceCount" => "L cudaGetDeviceCount(int* n) { *n = 1; return 0; }",
        "cudaGetDevice" => "L cudaGetDevice(int* d) { *d = 0; return 0; }",
        // cudaDeviceProp: name[256], uuid, luid, ... up to maxGridSize at the same offsets in CUDA 12 and 13; the
        // rest stays zero (the struct is larger than 512 bytes in both).
        "cudaGetDeviceProperties" => """
            L cudaGetDeviceProperties(char* p, int d) { memset(p, 0, 512); strcpy(p, "atu stand-in");
              *(size_t*)(p + 288) = 80UL << 30; *(size_t*)(p + 296) = 49152; *(int*)(p + 304) = 65536; *(int*)(p + 308) = 32;
              *(int*)(p + 320) = 1024; for (int i = 0; i < 3; i++) { *(int*)(p + 324 + 4 * i) = 1024; *(int*)(p + 336 + 4 * i) = 65535; } return 0; }
            """,
        // Compute capability 9.0 (attributes 75 and 76), 1 for every other attribute.
        "cudaDeviceGetAttribute" => "L cudaDeviceGetAttribute(int* v, int a, int d) { *v = a == 75 ? 9 : a == 76 ? 0 : 1; return 0; }",
        "cudaMemGetInfo" => "L cudaMemGetInfo(size_t* f, size_t* t) { *f = *t = 80UL << 30; return 0; }",
        "cudaDriverGetVersion" or "cudaRuntimeGetVersion" => $"L {s}(int* v) {{ *v = 13000; return 0; }}",
        "cudaMalloc" or "cudaMallocHost" or "cudaHostAlloc" or "cudaMallocFromPoolAsync" => $"L {s}(void** p, size_t n) {{ *p = malloc(n ? n : 1); return 0; }}",
        "cudaGetErrorString" or "cudaGetErrorName" or "cublasGetStatusName" or "cublasGetStatusString" => $"const char* {s}(int e) {{ return \"atu stand-in\"; }}",
        "cudaStreamIsCapturing" => "L cudaStreamIsCapturing(void* s, int* status) { *status = 0; return 0; }",
        "cudaPointerGetAttributes" => "L cudaPointerGetAttributes(void* a, void* p) { memset(a, 0, 24); return 0; }",
        "cudaFuncGetAttributes" => "L cudaFuncGetAttributes(void* a, void* f) { memset(a, 0, 48); return 0; }",
        "cudaOccupancyMaxActiveBlocksPerMultiprocessorWithFlags" => $"L {s}(int* n) {{ *n = 1; return 0; }}",
        "cudaMemPoolGetAttribute" => "L cudaMemPoolGetAttribute(void* pool, int a, void* v) { *(unsigned long*)v = 0; return 0; }",
        "cublasGetMathMode" => "L cublasGetMathMode(void* h, int* m) { *m = 0; return 0; }",
        "__cudaRegisterFatBinary" => "void** __cudaRegisterFatBinary(void* f) { return fat_binary; }",
        // Functions that create an object return it through their first argument.
        _ when s.Contains("Create") || s is "cudaGraphInstantiate" or "cudaLibraryLoadData" or "cudaLibraryGetKernel" or "cudaGetDriverEntryPointByVersion"
            => $"L {s}(void** out) {{ if (out) *out = handle; return 0; }}",
        _ => $"L {s}(void) {{ return 0; }}",
    };

    /// <summary>Opens every model in one child process (the provider library loads once).</summary>
    public IReadOnlyList<Partition> Open(IReadOnlyList<string> models, TimeSpan timeout)
    {
        var optimized = Directory.CreateDirectory(Path.Combine(_folder, "optimized")).FullName;
        var start = new ProcessStartInfo(_probe) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { _onnxRuntime, optimized }.Concat(models)) start.ArgumentList.Add(a);
        start.Environment["LD_LIBRARY_PATH"] = _stubs;
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        var stdout = process.StandardOutput.ReadToEndAsync();
        if (!process.WaitForExit(timeout))
        {
            process.Kill();
            throw new TimeoutException($"placement_probe did not finish {models.Count} models in {timeout}");
        }
        var log = stdout.Result;
        var partitions = Parse(log, optimized);
        if (partitions.Count != models.Count)
            throw new InvalidOperationException($"placement_probe (exit {process.ExitCode}) reported {partitions.Count} of {models.Count} models; stderr: {stderr.Result}\nlast output: {log[Math.Max(0, log.Length - 2000)..]}");
        return partitions;
    }

    static readonly Regex Placed = new(@"^ (?:All nodes|Node\(s\)) placed on \[(\w+)\]\. Number of nodes: (\d+)$");
    static readonly Regex Listed = new(@"^  (\S+) \((.*)\)$");

    /// <summary>Reads the probe's output: per model, the last "Node placements" block of ONNX Runtime's verbose log.</summary>
    static List<Partition> Parse(string log, string optimizedFolder)
    {
        var result = new List<Partition>();
        string? model = null, provider = null;
        int cuda = 0;
        var cpu = new List<(string, string)>();
        foreach (var line in log.Split('\n'))
        {
            if (line.StartsWith("=== MODEL ")) { (model, provider, cuda) = (line[10..], null, 0); cpu.Clear(); continue; }
            if (model is null) continue;
            if (line == "Node placements") { (provider, cuda) = (null, 0); cpu.Clear(); continue; }
            if (Placed.Match(line) is { Success: true } p)
            {
                provider = p.Groups[1].Value;
                if (provider == "CUDAExecutionProvider") cuda = int.Parse(p.Groups[2].Value);
                continue;
            }
            if (provider == "CPUExecutionProvider" && Listed.Match(line) is { Success: true } n) { cpu.Add((n.Groups[1].Value, n.Groups[2].Value)); continue; }
            if (!line.StartsWith("  ")) provider = null;
            if (line.StartsWith("=== OK") || line.StartsWith("=== ERROR"))
            {
                var optimized = Path.Combine(optimizedFolder, Path.GetFileName(model) + ".optimized.onnx");
                var (toHost, fromHost, copied) = line.StartsWith("=== OK") ? CopyNodes(optimized) : (0, 0, []);
                result.Add(new Partition(model, line.StartsWith("=== ERROR") ? line[10..] : null, cuda, [.. cpu], toHost, fromHost, copied, optimized));
                model = null;
            }
        }
        return result;
    }

    /// <summary>The copy nodes of the optimised model, and the values they copy ("to host: x", "to device: y").</summary>
    static (int ToHost, int FromHost, List<string> Copied) CopyNodes(string optimizedModel)
    {
        var graph = AlignThenUnlearn.Onnx.ModelFile.Load(optimizedModel, loadExternalData: false).Graph;
        var copies = graph.Node.Where(n => n.OpType is "MemcpyToHost" or "MemcpyFromHost").ToList();
        return (copies.Count(n => n.OpType == "MemcpyToHost"), copies.Count(n => n.OpType == "MemcpyFromHost"),
            copies.Select(n => (n.OpType == "MemcpyToHost" ? "to host: " : "to device: ") + n.Input[0]).ToList());
    }

    static string? HeaderFolder()
    {
        var root = Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } p ? p
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        var folder = Path.Combine(root, "microsoft.ml.onnxruntime.gpu.linux", "1.31.0", "buildTransitive", "native", "include");
        return File.Exists(Path.Combine(folder, "onnxruntime_c_api.h")) ? folder : null;
    }

    static string? Which(string program) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Select(d => Path.Combine(d, program)).FirstOrDefault(File.Exists);

    static string Run(string program, IEnumerable<string> args)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        var stdout = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0) throw new InvalidOperationException($"{program} {string.Join(' ', start.ArgumentList)} failed (exit {process.ExitCode}): {stderr.Result}");
        return stdout;
    }
}
