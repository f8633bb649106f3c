using System.Diagnostics;

namespace AlignThenUnlearn.Tests.Support;

/// <summary>This build's atu as a separate process (the test binaries' folder holds atu.dll with its runtime files), for
/// tests that kill a command or run it as an operator would.</summary>
public static class AtuProcess
{
    /// <summary>The dotnet host running the tests (the SDK's, under `dotnet test`).</summary>
    public static string Host => Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet";

    public static string Dll => Path.Combine(AppContext.BaseDirectory, "atu.dll");

    /// <summary>`dotnet atu.dll ARGUMENTS`, its output read (and dropped) so that it never blocks on a full pipe.</summary>
    public static Process Start(params string[] arguments)
    {
        var start = new ProcessStartInfo(Host) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(Dll);
        foreach (var a in arguments) start.ArgumentList.Add(a);
        start.Environment["NO_COLOR"] = "1";
        var process = Process.Start(start)!;
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    /// <summary>The exit code of <paramref name="process"/>, failing the test when it runs past <paramref name="minutes"/>.</summary>
    public static int Wait(Process process, int minutes = 5)
    {
        Assert.True(process.WaitForExit(TimeSpan.FromMinutes(minutes)), $"atu (process {process.Id}) did not end within {minutes} min");
        return process.ExitCode;
    }
}
