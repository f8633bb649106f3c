using AlignThenUnlearn.Sweeps;
using AlignThenUnlearn.Tests.Support;

namespace AlignThenUnlearn.Tests.Sweeps;

/// <summary>`atu sweep run --local` and `atu sweep status` with a stand-in for atu: a shell script that records each
/// call in the run folder, fails for target 3, and otherwise exits 0.</summary>
public sealed class SweepRunTests : IDisposable
{
    readonly TempFolder _temp = new();
    public void Dispose() => _temp.Dispose();

    const string FakeAtu = """
        #!/bin/bash
        # atu run ... --target N ... --out DIR --resume: one line per call in DIR/calls
        while [ $# -gt 0 ]; do case "$1" in --target) target=$2; shift;; --out) out=$2; shift;; --resume) resume=yes;; esac; shift; done
        mkdir -p "$out"; echo "call resume=$resume" >> "$out/calls"
        if [ "$target" = 3 ]; then echo "boom: target 3 cannot be unlearned" >&2; exit 4; fi
        echo "unlearned target $target"
        """;

    SweepManifest Plan(int parallelTargets = 3)
    {
        var atu = _temp.File("fake-atu");
        File.WriteAllText(atu, FakeAtu.ReplaceLineEndings("\n"));
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(atu, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        File.WriteAllText(_temp.File("sweep.json"), $$"""{ "artifacts": "/m", "rwku": "/r", "targets": "1-{{parallelTargets}}", "presets": ["toy"], "layers": [1, 2] }""");
        return SweepPlanner.Plan(_temp.File("sweep.json"), _temp.File("sweep"), [atu]);
    }

    int Calls(SweepCell cell) => File.Exists(Path.Combine(cell.Run, "calls")) ? File.ReadAllLines(Path.Combine(cell.Run, "calls")).Length : 0;

    [Fact]
    public void Finished_cells_are_skipped_and_a_cell_failing_twice_is_not_started_again()
    {
        var manifest = Plan();   // targets 1-3 x layers 1, 2: 6 cells, the 2 of target 3 fail
        var sweep = _temp.File("sweep");
        var lines = new List<string>();
        void Say(string line) { lock (lines) lines.Add(line); }

        Assert.Equal(2, CellRunner.RunLocal(sweep, parallel: 3, Say));
        Assert.All(manifest.Cells, c => Assert.Equal(1, Calls(c)));
        Assert.All(manifest.Cells, c => Assert.Equal(c.Target != 3, File.Exists(Path.Combine(sweep, c.Folder, CellState.DoneFile))));
        // every command was given --resume (an interrupted run continues), and its output went to the cell's log
        Assert.All(manifest.Cells, c => Assert.Equal("call resume=yes", File.ReadAllLines(Path.Combine(c.Run, "calls"))[0]));
        Assert.Contains("unlearned target 1", File.ReadAllText(Path.Combine(sweep, manifest.Cells[0].Folder, CellState.LogFile)));

        var status = SweepStatus.Of(sweep, manifest, null);
        Assert.Equal(["done", "done", "done", "done", "failed", "failed"], status.Select(s => s.State));
        Assert.Contains("failed once", status[4].Detail);
        Assert.Contains("boom: target 3 cannot be unlearned", status[4].Detail);

        // Second run: the done cells are not called again, the failed ones once more; a third run starts nothing.
        Assert.Equal(2, CellRunner.RunLocal(sweep, parallel: 2, Say));
        Assert.Equal([1, 1, 1, 1, 2, 2], manifest.Cells.Select(Calls));
        Assert.Equal(2, CellRunner.RunLocal(sweep, parallel: 2, Say));
        Assert.Equal([1, 1, 1, 1, 2, 2], manifest.Cells.Select(Calls));
        Assert.Contains(lines, l => l.Contains("atu_toy_t003_L1: failed 2 times, not started again", StringComparison.Ordinal));
        status = SweepStatus.Of(sweep, manifest, null);
        // the log tail is the command's output, without the lines that head each attempt
        Assert.Equal("failed 2 times, not retried: boom: target 3 cannot be unlearned | boom: target 3 cannot be unlearned", status[4].Detail);
        Assert.Equal((2, 2), (status[4].Attempts, status[4].Failures));
    }

    [Fact]
    public void Status_takes_running_and_queued_from_slurm_and_a_terminated_attempt_is_not_a_failure()
    {
        var manifest = Plan(parallelTargets: 2);   // 4 cells
        var sweep = _temp.File("sweep");
        Assert.Equal(0, CellRunner.Run(sweep, manifest, 0));
        // cell 1: an attempt that a requeue terminated; cell 2: an attempt still open (its task is running)
        File.WriteAllText(Path.Combine(sweep, manifest.Cells[1].Folder, CellState.AttemptsFile), "start 2026-01-01T00:00:00Z vm slurm 5_1\nterminated 2026-01-01T00:01:00Z exit 143\n");
        File.WriteAllText(Path.Combine(sweep, manifest.Cells[2].Folder, CellState.AttemptsFile), "start 2026-01-01T00:00:00Z vm slurm 5_2\n");
        var slurm = new Dictionary<int, string> { [0] = "COMPLETED", [1] = "PENDING", [2] = "RUNNING" };
        var status = SweepStatus.Of(sweep, manifest, slurm);
        Assert.Equal(["done", "left", "running", "left"], status.Select(s => s.State));
        Assert.Equal(["", "queued (slurm pending)", "slurm running", "not started"], status.Select(s => s.Detail));
        Assert.Equal(0, CellState.Read(Path.Combine(sweep, manifest.Cells[1].Folder)).Failures);
    }
}
