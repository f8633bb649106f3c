using System.Diagnostics;
using AlignThenUnlearn.Sweeps;
using AlignThenUnlearn.Tests.Support;

namespace AlignThenUnlearn.Tests.Sweeps;

/// <summary>`atu sweep plan` without --atu: the cells run the very program that planned them, as a node without the
/// .NET SDK can start it: the executable itself, or `dotnet atu.dll` when it was started that way; never `dotnet run`.
/// Its table, written to a pipe, is not wrapped at 80 columns.</summary>
public sealed class SweepProgramTests : IDisposable
{
    readonly TempFolder _temp = new();
    public void Dispose() => _temp.Dispose();

    SweepManifest Plan(string program, params string[] prefix)
    {
        File.WriteAllText(_temp.File("sweep.json"), """{ "artifacts": "/m", "rwku": "/r", "targets": "1", "presets": ["toy"], "device": "cpu" }""");
        var folder = _temp.File($"sweep-{Path.GetFileName(program)}");
        var start = new ProcessStartInfo(program) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in (string[])[.. prefix, "sweep", "plan", "--file", _temp.File("sweep.json"), "--out", folder]) start.ArgumentList.Add(a);
        start.Environment["NO_COLOR"] = "1";
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEnd();
        Assert.True(process.WaitForExit(TimeSpan.FromMinutes(2)), "atu sweep plan did not end");
        Assert.True(process.ExitCode == 0, $"atu sweep plan: exit {process.ExitCode}: {error}{output.Result}");
        // Output to a pipe keeps table rows whole (Spectre.Console would wrap them at 80 columns): the cell's name and
        // the end of its command stand on one line.
        Assert.Contains(output.Result.Split('\n'), line => line.Contains("atu_toy_t001", StringComparison.Ordinal) && line.Contains("--device cpu", StringComparison.Ordinal));
        return SweepManifest.Read(folder);
    }

    [Fact]
    public void Run_as_dotnet_atu_dll_the_cells_run_dotnet_with_the_same_atu_dll()
    {
        var (dll, host) = (AtuProcess.Dll, AtuProcess.Host);
        var manifest = Plan(host, dll);
        Assert.Equal(2, manifest.Atu.Length);
        Assert.Equal("dotnet", Path.GetFileNameWithoutExtension(manifest.Atu[0]));
        Assert.True(Path.IsPathRooted(manifest.Atu[0]), $"the dotnet host '{manifest.Atu[0]}' is not an absolute path");
        Assert.Equal(dll, manifest.Atu[1]);
    }

    [Fact]
    public void Run_as_its_own_executable_the_cells_run_that_executable()
    {
        var executable = Path.Combine(AppContext.BaseDirectory, "atu");
        Assert.True(File.Exists(executable), $"no apphost '{executable}' beside the tests");
        Assert.Equal([executable], Plan(executable).Atu);
    }
}
