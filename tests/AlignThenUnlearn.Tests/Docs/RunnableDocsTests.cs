using System.Diagnostics;
using System.Text.RegularExpressions;
using AlignThenUnlearn.Tests.Support;

namespace AlignThenUnlearn.Tests.Docs;

/// <summary>Every command block of README.md and docs/ marked runnable (a ```sh block right after a
/// <c>&lt;!-- runnable --&gt;</c> line) runs, in the order of <see cref="Pages"/>, in one empty folder, with `atu` this
/// build's program; each `--out PATH` a block names must exist afterwards. The blocks are written for the toy world;
/// to keep this test short, `atu toy pretrain` gets --steps 30 and `--preset toy` a copy of the toy preset with a few
/// steps per phase (the commands, files and folders are what is checked here, not the figures: the toy job checks those).</summary>
public static partial class RunnableDocs
{
    public const string Marker = "<!-- runnable -->";

    /// <summary>The pages in the order a reader takes them: each may use what the blocks before it wrote.</summary>
    public static readonly string[] Pages = ["README.md", "docs/operator-guide.md", "docs/deployment.md"];

    public sealed record Block(string Page, int Line, string Text);

    public static IReadOnlyList<Block> Blocks(string root)
    {
        var blocks = new List<Block>();
        foreach (var page in Pages)
        {
            var lines = File.ReadAllLines(Path.Combine(root, page));
            for (int i = 0; i < lines.Length; i++)
            {
                if (lines[i].Trim() != Marker) continue;
                if (i + 1 >= lines.Length || lines[i + 1].Trim() != "```sh")
                    throw new InvalidDataException($"{page}:{i + 1}: {Marker} must stand right before a ```sh block");
                int end = Array.FindIndex(lines, i + 2, l => l.Trim() == "```");
                if (end < 0) throw new InvalidDataException($"{page}:{i + 2}: the runnable block is not closed");
                blocks.Add(new Block(page, i + 2, string.Join("\n", lines[(i + 2)..end])));
                i = end;
            }
        }
        return blocks;
    }

    /// <summary>The paths a block writes: the value of every --out.</summary>
    public static IEnumerable<string> Outputs(string block) => OutOption().Matches(block).Select(m => m.Groups[1].Value.Trim('"'));

    [GeneratedRegex("""--out\s+("[^"]+"|\S+)""")]
    private static partial Regex OutOption();
}

public sealed class RunnableDocsTests : IDisposable
{
    readonly TempFolder _temp = new();
    public void Dispose() => _temp.Dispose();

    [Fact]
    public void The_marked_blocks_are_found_and_name_their_outputs()
    {
        var blocks = RunnableDocs.Blocks(RepositoryFiles.Root);
        // README's operator path at least: the toy world, its model, a run, eval, ship --quantize int4.
        Assert.True(blocks.Count(b => b.Page == "README.md") >= 1, "README.md has no runnable block");
        var all = string.Join("\n", blocks.Select(b => b.Text));
        foreach (var verb in new[] { "atu toy world", "atu toy pretrain", "atu run", "atu eval", "atu ship", "--quantize int4" })
            Assert.Contains(verb, all);
        Assert.Equal(["toy/world", "runs/x y"], RunnableDocs.Outputs("atu toy world --out toy/world\natu eval --out \"runs/x y\""));
    }

    [Fact]
    public void Every_marked_block_runs_on_the_toy_world_and_writes_the_paths_it_names()
    {
        var quick = _temp.File("quick-toy.json");
        File.WriteAllText(quick, File.ReadAllText(RepositoryFiles.Path("src", "Unlearning", "Presets", "toy.json"))
            .Replace("\"steps\": 300", "\"steps\": 20").Replace("\"unlearn_steps\": 30, \"realign_steps\": 30", "\"unlearn_steps\": 3, \"realign_steps\": 3"));
        var work = Directory.CreateDirectory(_temp.File("work")).FullName;
        var executable = Path.Combine(AppContext.BaseDirectory, "atu");
        string program = File.Exists(executable) ? Quote(executable) : $"{Quote(AtuProcess.Host)} {Quote(AtuProcess.Dll)}";
        // `atu` as a shell function: this build, with the short training described above.
        var prelude = $$"""
            set -euo pipefail
            atu() {
              local args=("$@") i
              if [ "${1-}" = toy ] && [ "${2-}" = pretrain ]; then args+=(--steps 30); fi
              for ((i = 0; i + 1 < ${#args[@]}; i++)); do
                if [ "${args[i]}" = --preset ] && [ "${args[i+1]}" = toy ]; then args[i+1]={{Quote(quick)}}; fi
              done
              {{program}} "${args[@]}"
            }
            """;
        foreach (var block in RunnableDocs.Blocks(RepositoryFiles.Root))
        {
            var (code, output) = Bash(work, prelude + "\n" + block.Text);
            Assert.True(code == 0, $"{block.Page}:{block.Line}: the block exited with {code}:\n{block.Text}\n--- output (end) ---\n{Tail(output)}");
            foreach (var path in RunnableDocs.Outputs(block.Text))
                Assert.True(File.Exists(Path.Combine(work, path)) || Directory.Exists(Path.Combine(work, path)),
                    $"{block.Page}:{block.Line}: '{path}' was not written by:\n{block.Text}");
        }
    }

    static string Quote(string s) => "'" + s.Replace("'", "'\\''") + "'";

    static string Tail(string text) => text.Length <= 4000 ? text : text[^4000..];

    static (int Code, string Output) Bash(string folder, string script)
    {
        var start = new ProcessStartInfo("bash") { WorkingDirectory = folder, UseShellExecute = false, RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
        start.Environment["NO_COLOR"] = "1";
        using var process = Process.Start(start)!;
        var output = new System.Text.StringBuilder();
        process.OutputDataReceived += (_, e) => { lock (output) output.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { lock (output) output.AppendLine(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        process.StandardInput.Write(script);
        process.StandardInput.Close();
        if (!process.WaitForExit(TimeSpan.FromMinutes(5))) { process.Kill(entireProcessTree: true); return (-1, output.ToString()); }
        process.WaitForExit();
        lock (output) return (process.ExitCode, output.ToString());
    }
}
