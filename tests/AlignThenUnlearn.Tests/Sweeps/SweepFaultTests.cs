using System.Diagnostics;
using AlignThenUnlearn.Cli;
using AlignThenUnlearn.Sweeps;
using AlignThenUnlearn.Tests.Support;

namespace AlignThenUnlearn.Tests.Sweeps;

/// <summary>Issue 29, group 8: sweeps under faults. `atu sweep run` killed with SIGKILL leaves no orphan and its rerun ends
/// as an uninterrupted run; a command of a killed runner still holding the run's lock, and a second runner on the same
/// sweep, cause no false failure; `atu sweep retry`; what the plan can check, it checks. The stand-in for `atu run` is a
/// shell script that takes the run folder's lock as `atu run` does (flock on DIR/.lock), works three steps a resumed call
/// continues, then writes its result.</summary>
[Collection(ConsoleCollection.Name)]
public sealed class SweepFaultTests : IDisposable
{
    readonly TempFolder _temp = new();
    public void Dispose() => _temp.Dispose();

    const string FakeAtu = """
        #!/bin/bash
        while [ $# -gt 0 ]; do case "$1" in --target) target=$2; shift;; --out) out=$2; shift;; esac; shift; done
        mkdir -p "$out"
        exec 9>>"$out/.lock"
        flock -n 9 || { echo "another process is running in '$out'" >&2; exit 1; }
        echo "$$" > "$out/pid"; echo call >> "$out/calls"
        if [ "$target" = 3 ] && [ -e "$out/../../../fail3" ]; then echo "boom: target 3 cannot be unlearned" >&2; exit 4; fi
        step=$(cat "$out/step" 2>/dev/null || echo 0)
        while [ "$step" -lt 3 ]; do sleep 0.4; step=$((step + 1)); echo "$step" > "$out/step"; done
        echo "unlearned target $target" > "$out/result"
        """;

    /// <summary>A sweep of targets 1-3 (one cell each) run by the stand-in; with <paramref name="failTarget3"/> target 3 fails.</summary>
    (string Folder, SweepManifest Manifest) Plan(string name, bool failTarget3 = false)
    {
        var atu = _temp.File("fake-atu");
        if (!File.Exists(atu))
        {
            File.WriteAllText(atu, FakeAtu.ReplaceLineEndings("\n"));
            if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(atu, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
        File.WriteAllText(_temp.File("sweep.json"), """{ "artifacts": "/m", "rwku": "/r", "targets": "1-3", "presets": ["toy"], "device": "cpu" }""");
        var folder = _temp.File(name);
        var manifest = SweepPlanner.Plan(_temp.File("sweep.json"), folder, [atu]);
        if (failTarget3) File.WriteAllText(Path.Combine(folder, "fail3"), "");
        return (folder, manifest);
    }

    static int Calls(SweepCell cell) => File.Exists(Path.Combine(cell.Run, "calls")) ? File.ReadAllLines(Path.Combine(cell.Run, "calls")).Length : 0;

    static int Failures(string folder, SweepCell cell) => CellState.Read(Path.Combine(folder, cell.Folder)).Failures;

    static Process StartAtu(params string[] arguments) => AtuProcess.Start(arguments);

    static int RunAtu(params string[] arguments)
    {
        using var process = AtuProcess.Start(arguments);
        return AtuProcess.Wait(process, minutes: 3);
    }

    /// <summary>Whether a process is alive: it exists and is no zombie (a dead child its new parent has not reaped).</summary>
    static bool Alive(int pid)
    {
        var stat = $"/proc/{pid}/stat";
        try { return File.Exists(stat) && File.ReadAllText(stat).Split(')')[^1].Trim()[0] != 'Z'; }
        catch (IOException) { return false; }
    }

    static void WaitFor(Func<bool> condition, string what, int seconds = 120)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(seconds), $"timed out waiting for {what}");
            Thread.Sleep(50);
        }
    }

    /// <summary>Every file of a sweep's cells (relative paths), and the contents of the files that the commands' work
    /// decides (results, steps, done markers aside of their time).</summary>
    static (string[] Files, string[] Results) Outputs(string folder, SweepManifest manifest) => (
        [.. Directory.GetFiles(Path.Combine(folder, SweepManifest.CellsFolder), "*", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(folder, f)).Order(StringComparer.Ordinal)],
        [.. manifest.Cells.SelectMany(c => new[] { File.ReadAllText(Path.Combine(c.Run, "result")), File.ReadAllText(Path.Combine(c.Run, "step")),
            File.Exists(Path.Combine(folder, c.Folder, CellState.DoneFile)).ToString() })]);

    [SkippableFact]
    public void A_sweep_run_killed_with_SIGKILL_leaves_no_orphan_and_its_rerun_ends_as_an_uninterrupted_run()
    {
        if (!OperatingSystem.IsLinux()) throw new SkipTestException("the parent-death signal (prctl) is Linux's");
        var (whole, wholeManifest) = Plan("whole");
        Assert.Equal(0, RunAtu("sweep", "run", whole, "--local"));

        var (cut, manifest) = Plan("cut");
        var middle = manifest.Cells[1];
        using (var runner = StartAtu("sweep", "run", cut, "--local"))
        {
            // Mid-way: the second cell's command has done a step of three.
            WaitFor(() => File.Exists(Path.Combine(middle.Run, "step")) && File.Exists(Path.Combine(middle.Run, "pid")), "the second cell to start");
            int child = int.Parse(File.ReadAllText(Path.Combine(middle.Run, "pid")).Trim());
            Assert.True(Alive(child));
            runner.Kill();   // SIGKILL: the runner runs no code of its own any more
            runner.WaitForExit();
            // The command dies with its runner (it used to keep running, orphaned, holding the run's lock).
            WaitFor(() => !Alive(child), $"the orphaned command (pid {child}) to end", seconds: 10);
        }
        Assert.False(File.Exists(Path.Combine(middle.Run, "result")));

        Assert.Equal(0, RunAtu("sweep", "run", cut, "--local"));
        Assert.All(manifest.Cells, c => Assert.Equal(0, Failures(cut, c)));
        Assert.Equal(Outputs(whole, wholeManifest).Files.Select(f => f.Replace("whole", "")), Outputs(cut, manifest).Files.Select(f => f.Replace("cut", "")));
        Assert.Equal(Outputs(whole, wholeManifest).Results, Outputs(cut, manifest).Results);
        Assert.Equal(2, Calls(middle));   // the interrupted command, then its resume
        Assert.Equal([1, 1], new[] { manifest.Cells[0], manifest.Cells[2] }.Select(Calls));
        // No leftover beside the sweep either (staging folders and the like).
        Assert.DoesNotContain(Directory.GetFileSystemEntries(cut).Select(Path.GetFileName), n => n!.StartsWith('.'));
    }

    [Fact]
    public void A_run_folder_still_locked_by_a_dying_command_is_waited_for_and_no_failure_is_recorded()
    {
        var (folder, manifest) = Plan("sweep");
        var cell = manifest.Cells[0];
        Directory.CreateDirectory(cell.Run);
        // The command of a killed runner, still holding the run's lock for a moment.
        using var holder = Process.Start(new ProcessStartInfo("flock", [Path.Combine(cell.Run, ".lock"), "sleep", "1.5"]) { UseShellExecute = false })!;
        WaitFor(() => File.Exists(Path.Combine(cell.Run, ".lock")), "the lock holder");
        Thread.Sleep(300);
        Assert.Equal(0, CellRunner.Run(folder, manifest, 0));
        Assert.Equal((1, 0), (Calls(cell), Failures(folder, cell)));
        Assert.True(CellState.Read(Path.Combine(folder, cell.Folder)).Done);
    }

    [Fact]
    public async Task Two_runners_on_one_sweep_share_the_cells_without_false_failures()
    {
        var (folder, manifest) = Plan("sweep");
        var lines = new List<string>();
        void Say(string line) { lock (lines) lines.Add(line); }
        var first = Task.Run(() => CellRunner.RunLocal(folder, 2, Say));
        var second = Task.Run(() => CellRunner.RunLocal(folder, 2, Say));
        int[] left = await Task.WhenAll(first, second);
        Assert.Equal([0, 0], left);   // each ends with every cell done
        Assert.All(manifest.Cells, c => Assert.Equal((1, 0), (Calls(c), Failures(folder, c))));   // each cell ran once
    }

    [Fact]
    public void Sweep_retry_starts_a_cell_that_failed_twice_again_by_name_index_or_failed()
    {
        var (folder, manifest) = Plan("sweep", failTarget3: true);
        var third = manifest.Cells[2];
        Assert.Equal(1, CellRunner.RunLocal(folder, 1, _ => { }));
        Assert.Equal(1, CellRunner.RunLocal(folder, 1, _ => { }));
        Assert.Equal(1, CellRunner.RunLocal(folder, 1, _ => { }));
        Assert.Equal(2, Calls(third));   // given up after two failures
        Assert.True(CellState.Read(Path.Combine(folder, third.Folder)).GivenUp);

        Assert.Equal(0, AtuProgram.Run(["sweep", "retry", folder, third.Name], TextWriter.Null, TextWriter.Null));
        Assert.False(CellState.Read(Path.Combine(folder, third.Folder)).GivenUp);
        Assert.Equal(1, CellRunner.RunLocal(folder, 1, _ => { }));
        Assert.Equal(3, Calls(third));
        Assert.Equal(0, AtuProgram.Run(["sweep", "retry", folder, "2"], TextWriter.Null, TextWriter.Null));   // by index
        File.Delete(Path.Combine(folder, "fail3"));
        Assert.Equal(0, AtuProgram.Run(["sweep", "retry", folder, "--failed"], TextWriter.Null, TextWriter.Null));
        Assert.Equal(0, CellRunner.RunLocal(folder, 1, _ => { }));
        Assert.Equal(4, Calls(third));
        Assert.Equal(["done", "done", "done"], SweepStatus.Of(folder, manifest, null).Select(s => s.State));
        // A done cell and an unknown one are no retry.
        Assert.Throws<InvalidOperationException>(() => CellRetry.Mark(folder, manifest.Cells[0].Name));
        Assert.Throws<ArgumentException>(() => CellRetry.Mark(folder, "no-such-cell"));
    }

    [Theory]
    [InlineData("\"layers\": [3]", "layer(s) 3 are beyond")]
    [InlineData("\"layers\": [99]", "layer(s) 99 are beyond")]
    [InlineData("\"device\": \"tpu\"", "\"device\" is \"tpu\"")]
    [InlineData("\"threads\": 100000", "\"threads\" is 100000")]
    [InlineData("\"threads\": -1", "\"threads\" is -1")]
    public void The_plan_refuses_what_would_fail_only_when_run(string setting, string expected)
    {
        // An artifact folder's configuration with 2 layers: hidden-state indexes 0-2.
        Directory.CreateDirectory(_temp.File("model"));
        File.Copy(RepositoryFiles.Path("models", "tiny-llama-gqa.json"), _temp.File("model/config.json"));
        File.WriteAllText(_temp.File("bad.json"), $$"""{ "artifacts": "model", "rwku": "/r", "targets": "1", "presets": ["toy"], {{setting}} }""");
        var e = Assert.ThrowsAny<InvalidDataException>(() => SweepPlanner.Plan(_temp.File("bad.json"), _temp.File("bad"), ["atu"]));
        Assert.Contains(expected, e.Message);
        Assert.False(File.Exists(_temp.File("bad/manifest.json")));
        // The model's own layers are accepted.
        File.WriteAllText(_temp.File("good.json"), """{ "artifacts": "model", "rwku": "/r", "targets": "1", "presets": ["toy"], "layers": [0, 2], "device": "auto", "threads": 1 }""");
        Assert.Equal(2, SweepPlanner.Plan(_temp.File("good.json"), _temp.File("good"), ["atu"]).Cells.Length);
    }
}
