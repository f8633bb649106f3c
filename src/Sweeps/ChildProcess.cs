using System.Globalization;
using System.Runtime.InteropServices;

namespace AlignThenUnlearn.Sweeps;

/// <summary>A cell's command that dies with the runner that started it. A runner killed with SIGKILL (`kill -9`, the
/// OOM killer) runs no code, so it cannot stop its children; left alone, the `atu run` it started keeps training as an
/// orphan, holds the run's lock and makes the next runner record a false failure. On Linux the command is therefore
/// started through atu itself (<see cref="Verb"/>), which asks the kernel for SIGKILL when its parent dies
/// (prctl PR_SET_PDEATHSIG), checks that the parent is still the runner (it may have died before the request), and then
/// replaces itself by the command (execvp keeps the request and the process id). This needs no helper program and no
/// polling, and holds whatever the command is (a shell script as well as atu). Elsewhere the command starts as it is.</summary>
public static class ChildProcess
{
    /// <summary>The internal verb (`atu sweep-child PARENT_PID PROGRAM ARGS...`) the runner starts a command through.</summary>
    public const string Verb = "sweep-child";

    const int PrSetPdeathsig = 1, SigKill = 9;

    [DllImport("libc", SetLastError = true)]
    static extern int prctl(int option, nuint arg2, nuint arg3, nuint arg4, nuint arg5);

    [DllImport("libc")]
    static extern int getppid();

    [DllImport("libc", SetLastError = true)]
    static extern int execvp([MarshalAs(UnmanagedType.LPStr)] string file,
        [MarshalAs(UnmanagedType.LPArray, ArraySubType = UnmanagedType.LPStr)] string?[] argv);   // LPStr is UTF-8 on Unix

    /// <summary>The program line that runs <paramref name="command"/> as a child that dies with this process;
    /// <paramref name="atu"/> is this atu's own program line (e.g. ["dotnet", "atu.dll"]).</summary>
    public static string[] Wrap(string[] atu, string[] command) => OperatingSystem.IsLinux()
        ? [.. atu, Verb, Environment.ProcessId.ToString(CultureInfo.InvariantCulture), .. command]
        : command;

    /// <summary>`atu sweep-child PARENT_PID PROGRAM ARGS...`: arms the parent-death signal and becomes PROGRAM. Returns
    /// only when that fails (exit code 137 when the parent is gone already).</summary>
    public static int Exec(string[] args)
    {
        if (args.Length < 2 || !int.TryParse(args[0], NumberStyles.None, CultureInfo.InvariantCulture, out var parent))
            throw new ArgumentException($"atu {Verb}: expected PARENT_PID PROGRAM [ARGS...] (it is started by `atu sweep run`, not by hand)");
        if (!OperatingSystem.IsLinux()) throw new PlatformNotSupportedException($"atu {Verb} runs on Linux only");
        if (prctl(PrSetPdeathsig, SigKill, 0, 0, 0) != 0)
            throw new IOException($"atu {Verb}: prctl(PR_SET_PDEATHSIG) failed (errno {Marshal.GetLastPInvokeError()})");
        // The runner may have died between starting this process and the request above: then no signal will come.
        if (getppid() != parent) return 137;
        execvp(args[1], [.. args[1..], null]);
        throw new IOException($"atu {Verb}: cannot start '{args[1]}' (errno {Marshal.GetLastPInvokeError()})");
    }
}
