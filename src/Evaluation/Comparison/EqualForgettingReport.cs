using System.Globalization;
using System.Text;

namespace AlignThenUnlearn.Evaluation.Comparison;

/// <summary>The equal-forgetting comparison of several methods' runs on the same people (<see cref="EqualForgetting"/>,
/// <see cref="Bootstrap"/>): per method and level the mean kept figure with its interval and n, the area summary, and the
/// paired differences of a reference method minus each other method with their verdicts.</summary>
public static class EqualForgettingReport
{
    public static readonly IReadOnlyList<KeptFigure> Figures = [KeptFigure.NeighbourAll, KeptFigure.RetainQA, KeptFigure.MultipleChoice];
    /// <summary>The level of the verdict lines.</summary>
    public const double VerdictLevel = 35;

    static string F(double v) => v.ToString("F1", CultureInfo.InvariantCulture);
    static string L(double level) => level.ToString(CultureInfo.InvariantCulture);

    /// <summary>Each person's value of one method (null <paramref name="level"/>: the area) where present.</summary>
    public static IReadOnlyList<(string World, string Person, double Value)> Values(IEnumerable<PersonTrajectory> runs, string method, KeptFigure figure, double? level) =>
        [.. runs.Where(r => r.Method == method)
            .Select(r => (r.World, r.Person, Value: level is double l ? EqualForgetting.At(r.Points, figure, l) : EqualForgetting.Area(r.Points)))
            .Where(x => x.Value is not null).Select(x => (x.World, x.Person, x.Value!.Value))];

    public static Estimate? Mean(IEnumerable<PersonTrajectory> runs, string method, KeptFigure figure, double? level) =>
        Bootstrap.Of([.. Values(runs, method, figure, level).Select(v => (v.World, v.Value))]);

    public static Estimate? Difference(IReadOnlyList<PersonTrajectory> runs, string a, string b, KeptFigure figure, double? level) =>
        Bootstrap.Paired(Values(runs, a, figure, level), Values(runs, b, figure, level));

    /// <summary>"A keeps d more FIGURE than B at forget L [lo, hi] (n=k)", the converse when B keeps more, or "no clear
    /// difference" when the interval covers 0; <paramref name="where"/>: "at forget 35", "in the area".</summary>
    public static string Verdict(string a, string b, string figure, string where, Estimate? d)
    {
        if (d is null) return $"{a} and {b} cannot be compared in {figure} {where}: no person has both (n=0)";
        if (d.Low > 0) return $"{a} keeps {F(d.Mean)} more {figure} than {b} {where} [{F(d.Low)}, {F(d.High)}] (n={d.N})";
        if (d.High < 0) return $"{b} keeps {F(-d.Mean)} more {figure} than {a} {where} [{F(-d.High)}, {F(-d.Low)}] (n={d.N})";
        return $"no clear difference between {a} and {b} in {figure} {where} ({a} minus {b} {F(d.Mean)} [{F(d.Low)}, {F(d.High)}], n={d.N})";
    }

    static string Cell(Estimate? e) => e is null ? "– (n=0)" : $"{F(e.Mean)} [{F(e.Low)}, {F(e.High)}] (n={e.N})";

    /// <summary>The section: the definitions, a table per kept figure (methods x levels, neighbour All with the area), the
    /// paired differences of <paramref name="reference"/> minus each other method, and the verdict lines.</summary>
    public static string Markdown(IReadOnlyList<PersonTrajectory> runs, string reference, string heading = "##")
    {
        var methods = runs.Select(r => r.Method).Distinct().ToList();
        int worlds = runs.Select(r => r.World).Distinct().Count(), people = runs.Select(r => (r.World, r.Person)).Distinct().Count();
        var text = new StringBuilder($"{heading} At equal forgetting ({people} {(people == 1 ? "person" : "people")}, {worlds} world{(worlds == 1 ? "" : "s")})\n\n");
        text.Append("Each run's kept figure read at forget All = 50, 35 and 20: at the first evaluation point at or below the level, linearly ");
        text.Append("interpolated in forget with the point before it (a model already at or below the level before unlearning keeps its value; a run ");
        text.Append("that never reaches the level is missing there, hence each cell's n). Retain QA and multiple choice are measured only where the run ");
        text.Append("kept a checkpoint, so they are interpolated between those points. Area: mean neighbour All over forget from the model before down ");
        text.Append("to 20 (the trapezoid area divided by the forget range; a run that never reaches 20 is missing). Means in percent with bootstrap ");
        text.Append($"95% percentile intervals over people{(worlds > 1 ? " and worlds (worlds drawn, then people within them)" : "")}, ");
        text.Append($"{Bootstrap.Replicates} replicates, SplitMix64 seed {Bootstrap.Seed}.\n\n");

        foreach (var figure in Figures)
        {
            bool area = figure == KeptFigure.NeighbourAll;
            text.Append($"{heading}# {char.ToUpperInvariant(EqualForgetting.Name(figure)[0])}{EqualForgetting.Name(figure)[1..]} at equal forgetting\n\n");
            text.Append("| method | " + string.Join(" | ", EqualForgetting.Levels.Select(l => $"forget {L(l)}")) + (area ? " | area to 20 |" : " |") + "\n");
            text.Append("| :-- |" + string.Concat(EqualForgetting.Levels.Select(_ => " --: |")) + (area ? " --: |" : "") + "\n");
            foreach (var method in methods)
                text.Append($"| {method} | " + string.Join(" | ", EqualForgetting.Levels.Select(l => Cell(Mean(runs, method, figure, l))))
                    + (area ? $" | {Cell(Mean(runs, method, figure, null))} |" : " |") + "\n");
            text.Append('\n');
        }

        var others = methods.Where(m => m != reference).ToList();
        if (!methods.Contains(reference) || others.Count == 0) return text.ToString();
        text.Append($"{heading}# Paired differences, {reference} minus each method (the people both have)\n\n");
        foreach (var figure in Figures)
        {
            bool area = figure == KeptFigure.NeighbourAll;
            text.Append($"| {EqualForgetting.Name(figure)}: {reference} minus | " + string.Join(" | ", EqualForgetting.Levels.Select(l => $"forget {L(l)}")) + (area ? " | area to 20 |" : " |") + "\n");
            text.Append("| :-- |" + string.Concat(EqualForgetting.Levels.Select(_ => " --: |")) + (area ? " --: |" : "") + "\n");
            foreach (var other in others)
                text.Append($"| {other} | " + string.Join(" | ", EqualForgetting.Levels.Select(l => Cell(Difference(runs, reference, other, figure, l))))
                    + (area ? $" | {Cell(Difference(runs, reference, other, figure, null))} |" : " |") + "\n");
            text.Append('\n');
        }
        text.Append($"At forget {L(VerdictLevel)} (an interval that covers 0 is no clear difference):\n\n");
        foreach (var other in others)
        {
            text.Append($"- {reference} and {other}:\n");
            foreach (var f in Figures)
                text.Append($"  - {Verdict(reference, other, EqualForgetting.Name(f), $"at forget {L(VerdictLevel)}", Difference(runs, reference, other, f, VerdictLevel))}\n");
            text.Append($"  - {Verdict(reference, other, "neighbour All", "in the area to 20", Difference(runs, reference, other, KeptFigure.NeighbourAll, null))}\n");
        }
        return text.ToString();
    }
}
