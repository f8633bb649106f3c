using System.Text.Json.Nodes;
using AlignThenUnlearn.Cli;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Tests.Support;
using AlignThenUnlearn.Unlearning;

namespace AlignThenUnlearn.Tests.Unlearning;

/// <summary>The memory plan's buffer counts and sizes against counts worked out by hand for the tiny phi3 configuration.</summary>
public class MemoryPlanTests
{
    static MemoryPlanModel TinyPhi3() => MemoryPlanModels.FromConfig(RepositoryFiles.Path("models", "tiny-phi3.json"), "all-MiniLM-L6-v2");

    [Fact]
    public void Optimizer_and_gradient_copies_are_the_buffers_the_runtime_allocates()
    {
        Assert.Equal(5, MemoryLayout.OptimizerCopies(new AdamWSettings()));   // spare + exp_avg x2 + exp_avg_sq x2
        Assert.Equal(1, MemoryLayout.OptimizerCopies(new SgdSettings(0.1)));   // spare only
        Assert.Equal(3, MemoryLayout.OptimizerCopies(new SgdSettings(0.1, Momentum: 0.9)));
        Assert.Equal(2, MemoryLayout.GradientCopies(accumulating: true));
    }

    [Fact]
    public void The_trained_llm_is_the_embeddings_and_the_layers_up_to_the_heads_layer()
    {
        // tiny-phi3 (hidden 64, intermediate 128, vocab 512, 4 heads) read at hidden_states[2] of 2 layers (after the final
        // norm): embeddings 512x64 = 32,768; per layer qkv 192x64 + o 64x64 + gate_up 256x64 + down 64x128 + 2 norms of
        // 64 = 41,088; final norm 64. 32,768 + 2 x 41,088 + 64 = 115,008 floats.
        var plan = MemoryPlan.ForAtu(TinyPhi3(), AtuPreset.Load("toy"), new MemoryPlanOptions { DeviceBytes = 1L << 30 });
        var unlearning = plan.Phases.Single(p => p.Name == "unlearning step");
        Assert.Equal(4 * 115_008L, unlearning.Items.Single(i => i.Name.StartsWith("LLM parameters")).Bytes);
        Assert.Equal(4 * 115_008L, unlearning.Items.Single(i => i.Name.StartsWith("LLM gradients")).Bytes);
        Assert.Equal(4 * 115_008L, unlearning.Items.Single(i => i.Name.StartsWith("LLM optimizer")).Bytes);   // sgd, momentum 0: the spare
        Assert.All(plan.Phases.Where(p => p.Batch is not null), p => Assert.Equal(p.Batch, p.LargestMicroBatch));
        Assert.True(plan.Fits);
    }

    [Fact]
    public void The_largest_micro_batch_is_the_largest_that_fits()
    {
        var model = TinyPhi3();
        var preset = AtuPreset.Load("toy");
        var whole = MemoryPlan.ForAtu(model, preset, new MemoryPlanOptions { DeviceBytes = 1L << 40 });
        // A device just below the step at micro-batch 4 (with the spare gradient buffers of accumulation): 3 rows would fit,
        // but a micro-batch must divide the batch of 8, so the largest is 2.
        long At(int rows) => MemoryPlan.ForAtu(model, preset, new MemoryPlanOptions { DeviceBytes = 1L << 40, MicroBatch = rows })
            .Phases.Single(p => p.Name.StartsWith("unlearning step")).Bytes;
        Assert.Equal(8, preset.Unlearning.BatchSize);
        Assert.True(At(3) < At(4));
        var tight = MemoryPlan.ForAtu(model, preset, new MemoryPlanOptions { DeviceBytes = At(4) - 1 });
        Assert.Equal(2, tight.Phases.Single(p => p.Name == "unlearning step").LargestMicroBatch);
        // The preset's micro_batch is the step the plan sizes, unless --micro-batch names another.
        var micro = MemoryPlan.ForAtu(model, preset.WithMicroBatch(2, "test"), new MemoryPlanOptions { DeviceBytes = 1L << 40 });
        Assert.Equal(At(2), micro.Phases.Single(p => p.Name == "unlearning step (micro-batch 2)").Bytes);
        Assert.False(tight.Fits);
        Assert.True(whole.Fits);
    }

    [Fact]
    public void Atu_plan_writes_the_json_its_text_describes()
    {
        using var temp = new TempFolder();
        var json = temp.File("plan.json");
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        Assert.Equal(0, AtuProgram.Run(["plan", "--config", RepositoryFiles.Path("models", "tiny-phi3.json"), "--preset", "toy", "--layer", "2",
            "--memory-gib", "1", "--json", json], stdout, stderr));
        var plan = JsonNode.Parse(File.ReadAllText(json))!;
        Assert.Equal("toy", plan["preset"]!.GetValue<string>());
        Assert.True(plan["fits"]!.GetValue<bool>());
        var phases = plan["phases"]!.AsArray();
        long peak = phases.Max(p => p!["bytes"]!.GetValue<long>());
        Assert.Equal(peak, plan["peak_bytes"]!.GetValue<long>());
        Assert.All(phases, p => Assert.Equal(p!["bytes"]!.GetValue<long>(), p["items"]!.AsArray().Sum(i => i!["bytes"]!.GetValue<long>())));
        Assert.Contains(plan["peak_phase"]!.GetValue<string>(), phases.Select(p => p!["name"]!.GetValue<string>()));

        Assert.Equal(1, AtuProgram.Run(["plan", "--preset", "toy"], stdout, stderr));   // neither --artifacts nor --config
    }
}
