using System.Text.Json;
using AlignThenUnlearn.Tests.Support;
using AlignThenUnlearn.Unlearning;

namespace AlignThenUnlearn.Tests.Unlearning;

/// <summary>The method registry: every list of methods is derived from it, so what it says must hold for each method.</summary>
public sealed class MethodRegistryTests
{
    [Fact]
    public void Names_and_display_names_are_each_spelled_once()
    {
        Assert.Equal(MethodRegistry.All.Count, MethodRegistry.Names.Distinct().Count());
        Assert.Equal(MethodRegistry.All.Count, MethodRegistry.All.Select(m => m.DisplayName).Distinct().Count());
        Assert.All(MethodRegistry.All, m => Assert.Same(m, MethodRegistry.Get(m.Name)));
        var e = Assert.Throws<ArgumentException>(() => MethodRegistry.Get("gd"));
        Assert.Contains("'gd'", e.Message);
        Assert.Contains(GradientAscentStar.Id, e.Message);
        Assert.Contains("trains no model", Assert.Throws<ArgumentException>(() => MethodRegistry.GetTrained(InContextUnlearning.Id)).Message);
    }

    [Fact]
    public void Every_trained_method_ships_a_preset_per_family_and_each_names_the_method()
    {
        foreach (var method in MethodRegistry.Trained)
        {
            // Full fine-tuning presets for RWKU's Llama-3 and Phi-3 and for the toy world; LoRA ones beside them where the
            // method trains adapters (RMU trains chosen down-projections only).
            foreach (var family in new[] { "rwku-llama3", "rwku-phi3", "toy" })
                Assert.Contains($"{family}-{method.Name}", method.PresetNames);
            Assert.All(method.PresetNames, name => Assert.Matches($"^(rwku-llama3|rwku-phi3|toy)-{method.Name}(-lora)?$", name));
            foreach (var name in method.PresetNames)
            {
                var preset = MethodPreset.Load(name);
                Assert.Equal((name, method.Name, name.EndsWith("-lora", StringComparison.Ordinal)), (preset.Name, preset.Method, preset.Lora));
                Assert.Same(method, preset.TrainedMethod);
            }
        }
        Assert.Equal(MethodRegistry.Trained.Sum(m => m.PresetNames.Count), MethodPreset.Builtin.Distinct().Count());
    }

    [Fact]
    public void Report_labels_are_the_papers_names()
    {
        Assert.Equal("GA (F)", MethodRegistry.Get(GradientAscent.Id).Label(lora: false));
        Assert.Equal("GA* (L)", MethodRegistry.Get(GradientAscentStar.Id).Label(lora: true));
        Assert.Equal("GradDiff (F)", MethodRegistry.Get(GradientDifference.Id).Label(lora: false));
        Assert.Equal("ATU", MethodRegistry.Get(AlignThenUnlearnMethod.Id).Label(lora: false));
        Assert.Equal("ICU", MethodRegistry.Get(InContextUnlearning.Id).Label(lora: false));
    }

    [Fact]
    public void A_presets_json_holds_its_values_and_not_the_method_derived_from_them()
    {
        var preset = MethodPreset.Load("toy-npo");
        using var json = JsonDocument.Parse(preset.ToJson());
        Assert.False(json.RootElement.TryGetProperty("trained_method", out _));
        using var temp = new TempFolder().Write("npo.json", preset.ToJson());
        Assert.Equal(preset.ToJson(), MethodPreset.Load(temp.File("npo.json")).ToJson());   // and it reads back as written
    }

    [Fact]
    public void Options_of_another_method_are_refused()
    {
        using var temp = new TempFolder().Write("ga.json", """{ "method": "ga", "learning_rate": 1e-5, "options": { "gamma": 2.5 } }""");
        var e = Assert.Throws<InvalidDataException>(() => MethodPreset.Load(temp.File("ga.json")));
        Assert.Contains("gamma", e.Message);
        Assert.Contains("none", e.Message);   // GA has no options
    }
}
