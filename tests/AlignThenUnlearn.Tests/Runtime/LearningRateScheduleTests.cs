using AlignThenUnlearn.Runtime;

namespace AlignThenUnlearn.Tests.Runtime;

/// <summary>Schedules against factors computed by hand (steps are 1-based optimizer steps).</summary>
public class LearningRateScheduleTests
{
    [Fact]
    public void Constant_is_the_peak_at_every_step()
    {
        foreach (var step in new long[] { 1, 2, 1000 }) Assert.Equal(1, new ConstantSchedule().Factor(step));
    }

    [Fact]
    public void Warmup_rises_linearly_over_four_steps_then_stays_at_the_peak()
    {
        var schedule = new WarmupSchedule(4);
        Assert.Equal([0.25, 0.5, 0.75, 1, 1, 1], Enumerable.Range(1, 6).Select(s => schedule.Factor(s)));
        Assert.Equal(1, new WarmupSchedule(0).Factor(1));   // no warm-up
    }

    [Fact]
    public void Warmup_cosine_decays_from_the_peak_to_the_floor_along_half_a_cosine()
    {
        // warm-up 2 steps, decay over steps 2..6 to 0.1: progress p = (s - 2) / 4 and factor 0.1 + 0.9 (1 + cos(pi p)) / 2.
        var schedule = new WarmupCosineSchedule(2, 6, 0.1);
        double halfRoot2 = Math.Sqrt(2) / 2;
        double[] expected =
        [
            0.5,                            // step 1: warm-up 1/2
            1,                              // step 2: p = 0
            0.1 + 0.45 * (1 + halfRoot2),   // step 3: p = 1/4, cos = sqrt(2)/2  (0.868198...)
            0.55,                           // step 4: p = 1/2, cos = 0
            0.1 + 0.45 * (1 - halfRoot2),   // step 5: p = 3/4                  (0.231802...)
            0.1,                            // step 6: p = 1, the floor
            0.1,                            // step 7: past the end, still the floor
        ];
        var actual = Enumerable.Range(1, 7).Select(s => schedule.Factor(s)).ToArray();
        for (int i = 0; i < expected.Length; i++) Assert.Equal(expected[i], actual[i], 1e-12);
    }

    [Fact]
    public void Hugging_face_stepping_gives_the_first_step_lr_lambda_of_0()
    {
        // transformers' get_cosine_schedule_with_warmup(warmup 2, total 6), stepped after each optimizer step: step s runs at
        // lr_lambda(s - 1) = (s - 1) / 2 in the warm-up, then 0.5 (1 + cos(pi (s - 1 - 2) / 4)).
        var schedule = new HuggingFaceStepping(new WarmupCosineSchedule(2, 6, floorFactor: 0));
        double halfRoot2 = Math.Sqrt(2) / 2;
        double[] expected = [0, 0.5, 1, 0.5 * (1 + halfRoot2), 0.5, 0.5 * (1 - halfRoot2)];
        var actual = Enumerable.Range(1, 6).Select(s => schedule.Factor(s)).ToArray();
        for (int i = 0; i < expected.Length; i++) Assert.Equal(expected[i], actual[i], 1e-12);
        // A 6-step run inside RWKU's 20-step warm-up: stepped from 1 the factors sum to 21/20, Hugging Face's to 15/20 (1.4x less).
        double Sum(LearningRateSchedule s) => Enumerable.Range(1, 6).Sum(step => s.Factor(step));
        Assert.Equal(21.0 / 20, Sum(new WarmupSchedule(20)), 1e-12);
        Assert.Equal(15.0 / 20, Sum(new HuggingFaceStepping(new WarmupSchedule(20))), 1e-12);
        Assert.Equal(0, new HuggingFaceStepping(new WarmupSchedule(20)).Factor(1));
    }

    [Fact]
    public void Impossible_schedules_are_refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new WarmupSchedule(-1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new WarmupCosineSchedule(10, 10));
        Assert.Throws<ArgumentOutOfRangeException>(() => new WarmupCosineSchedule(0, 10, 1.5));
    }
}
