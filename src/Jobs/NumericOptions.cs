using System.Globalization;

namespace AlignThenUnlearn.Jobs;

/// <summary>Checks of numeric options: each value must be finite and inside the range where the option means something,
/// refused before any work with the option's name and what was expected. Every comparison is written so that NaN fails
/// it (NaN compares false with every bound, so "value &lt; min" alone would let it through).</summary>
public static class NumericOptions
{
    /// <summary><paramref name="value"/> within [min, max] (min excluded when <paramref name="minExclusive"/>).</summary>
    public static double Require(string option, double value, double min, double max, string expected, bool minExclusive = false)
    {
        bool above = minExclusive ? value > min : value >= min;
        if (!(double.IsFinite(value) && above && value <= max))
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture, $"{option} {value}: expected {expected}"));
        return value;
    }

    public static int Require(string option, int value, int min, int max, string expected)
    {
        if (value < min || value > max) throw new ArgumentException(string.Create(CultureInfo.InvariantCulture, $"{option} {value}: expected {expected}"));
        return value;
    }

    /// <summary>Sampling's temperature (0: greedy) and nucleus mass, as `atu corpus` and the sampling attack take them.</summary>
    public static void RequireSampling(double temperature, double topP)
    {
        Require("--temperature", temperature, 0, double.MaxValue, "a finite temperature of 0 (greedy decoding) or more");
        Require("--top-p", topP, 0, 1, "a probability mass above 0 and at most 1", minExclusive: true);
    }
}
