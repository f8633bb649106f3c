using System.Buffers.Binary;
using AlignThenUnlearn.Cli;
using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.Tests.Support;

namespace AlignThenUnlearn.Tests.Evaluation;

/// <summary>`atu report --attacks`: the robustness table of attack.json files (rows method x checkpoint, columns the
/// attacks), checked on made-up reports with hand-worked figures, and its bar chart.</summary>
[Collection(ConsoleCollection.Name)]
public sealed class RobustnessTableTests : IDisposable
{
    readonly TempFolder _temp = new();
    public void Dispose() => _temp.Dispose();

    string Attack(string name, string json)
    {
        var folder = Directory.CreateDirectory(_temp.File(name)).FullName;
        File.WriteAllText(Path.Combine(folder, RobustnessTable.ReportFile), json);
        return folder;
    }

    // ATU: before 0.9, unlearned 0.1. NF4 brings it to 0.5: recovery (0.5 - 0.1) / (0.9 - 0.1) = 0.5; relearning on
    // 0 texts leaves 0.1 (recovery 0), on 4 texts 0.7: (0.7 - 0.1) / 0.8 = 0.75.
    // GA: no earlier results, so no before, unlearned or recovery; NF4 0.3, sampling best 0.4, mean 0.2.
    string[] Reports() =>
    [
        Attack("atu-nf4", """{"attack":"quantize","label":"nf4-b64","series":"ATU","weights":"runs/atu/model.safetensors","forget_all":0.5,"neighbor_all":0.6,"aa_by_type":{},"forget_all_before":0.9,"forget_all_unlearned":0.1,"recovery":0.5}"""),
        Attack("atu-relearn", """{"attack":"relearn","label":"relearn","series":"ATU","weights":"runs/atu/model.safetensors","forget_all_k0":0.1,"neighbor_all_k0":0.6,"forget_all_before":0.9,"forget_all_unlearned":0.1,"recovery_k0":0,"forget_all_k4":0.7,"recovery_k4":0.75}"""),
        Attack("ga-nf4", """{"attack":"quantize","label":"nf4-b64","series":"GA","weights":"runs/ga/model.safetensors","forget_all":0.3}"""),
        Attack("ga-sample", """{"attack":"sample","label":"sample","series":"GA","weights":"runs/ga/model.safetensors","forget_all":0.4,"forget_all_mean":0.2}"""),
    ];

    [Fact]
    public void The_table_places_each_attack_figure_under_its_row_and_column()
    {
        var table = RobustnessTable.Read(Reports());
        Assert.Equal(["nf4-b64", "relearn k0", "relearn k4", "sample", "sample mean"], table.Attacks);
        Assert.Equal(
            """
            # Robustness

            Forget All (ROUGE-L recall %, averaged over the attacked targets; lower is better) before unlearning, after it, and after each attack.

            | Method | Checkpoint | Before | Unlearned | nf4-b64 | relearn k0 | relearn k4 | sample | sample mean |
            | :-- | :-- | --: | --: | --: | --: | --: | --: | --: |
            | ATU | runs/atu/model.safetensors | 90.0 | 10.0 | 50.0 | 10.0 | 70.0 | – | – |
            | GA | runs/ga/model.safetensors | – | – | 30.0 | – | – | 40.0 | 20.0 |

            ## Recovery

            (after attack - after unlearning) / (before - after unlearning): 0 when the attack brings nothing back, 1 when it undoes the unlearning.

            | Method | Checkpoint | nf4-b64 | relearn k0 | relearn k4 | sample | sample mean |
            | :-- | :-- | --: | --: | --: | --: | --: |
            | ATU | runs/atu/model.safetensors | 0.500 | 0.000 | 0.750 | – | – |
            | GA | runs/ga/model.safetensors | – | – | – | – | – |

            """.ReplaceLineEndings("\n"), table.Markdown());
    }

    /// <summary>Issue 29, group 9: two LoRA checkpoints of one run have the same base weights; their NF4 attacks were
    /// refused as duplicates, and the row named the base weights alone.</summary>
    [Fact]
    public void Attacks_of_two_lora_checkpoints_on_the_same_base_weights_are_two_rows_named_by_their_adapters()
    {
        string Lora(string name, string adapters, double forget) => Attack(name,
            $$"""{"attack":"quantize","label":"nf4-b64","series":"GA (LoRA)","weights":"art/weights.safetensors","adapters":"{{adapters}}","forget_all":{{forget}}}""");
        var table = RobustnessTable.Read([Lora("a", "runs/ga/forget-below-50/adapters.safetensors", 0.25), Lora("b", "runs/ga/final/adapters.safetensors", 0.125)]);
        Assert.Equal([("art/weights.safetensors + runs/ga/forget-below-50/adapters.safetensors", 0.25), ("art/weights.safetensors + runs/ga/final/adapters.safetensors", 0.125)],
            table.Rows.Select(r => (r.Checkpoint, r.Attacks["nf4-b64"].ForgetAll!.Value)));
    }

    [Fact]
    public void Report_writes_the_table_and_a_bar_chart_and_refuses_clashing_or_foreign_files()
    {
        var output = _temp.File("report");
        Assert.Equal(0, ReportCommand.Run(new ReportOptions { Attacks = Reports(), Out = output }));
        Assert.Equal(RobustnessTable.Read(Reports()).Markdown(), File.ReadAllText(Path.Combine(output, RobustnessTable.TableFile)));
        var png = File.ReadAllBytes(Path.Combine(output, RobustnessTable.PlotFile));
        Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], png.Take(4));
        Assert.Equal((1000, 600), (BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(16)), BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(20))));   // IHDR width, height
        Assert.False(File.Exists(Path.Combine(output, RwkuReports.CombinedTableFile)));   // no --runs, no results table

        var again = Attack("atu-nf4-again", """{"label":"nf4-b64","series":"ATU","weights":"runs/atu/model.safetensors","forget_all":0.4}""");
        var clash = Assert.Throws<InvalidDataException>(() => RobustnessTable.Read([.. Reports(), again]));
        Assert.Contains("both hold attack 'nf4-b64' on runs/atu/model.safetensors", clash.Message);
        var foreign = Attack("results", """{"name":"x","targets":[]}""");
        Assert.Contains("'label' is missing", Assert.Throws<InvalidDataException>(() => RobustnessTable.Read([foreign])).Message);
        Assert.Contains("needs --runs", Assert.Throws<ArgumentException>(() => ReportCommand.Run(new ReportOptions { Out = output })).Message);
    }
}
