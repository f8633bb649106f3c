namespace AlignThenUnlearn.Tests.Evaluation;

/// <summary>RWKU's utility and membership-inference files added to an <see cref="RwkuFixture"/>, in RWKU's schemas:
/// target 1 (Ada Quill) in its own folder, target 2 (Cora Lind) from <c>All/</c> beside rows of Bruno Vale.</summary>
public static class RwkuUtilityFixture
{
    const string Ada = RwkuFixture.Ada, Cora = RwkuFixture.Cora, Bruno = RwkuFixture.Bruno;

    public static object Bbh(string question, object answer, string subject) => new
    {
        task = "boolean_expressions",
        cot = "Evaluate the result of a random Boolean expression.\n\nQ: not ( True ) and ( True ) is\nA: Let's think step by step. So the answer is False.\n",
        question,
        answer,
        subject,
    };

    public static object Truthful(string question, string[] trueAnswers, string[] falseAnswers, string subject)
    {
        var targets = new { choices = trueAnswers.Concat(falseAnswers).ToArray(), labels = trueAnswers.Select(_ => 1).Concat(falseAnswers.Select(_ => 0)).ToArray() };
        return new { question, mc1_targets = new { choices = new[] { trueAnswers[0] }.Concat(falseAnswers).ToArray(), labels = new[] { 1 }.Concat(falseAnswers.Select(_ => 0)).ToArray() }, mc2_targets = targets, subject };
    }

    public static object Trivia(string question, string[] answers, string subject) => new { question, answers, subject };

    public static object Fluency(string instruction, string subject) => new { instruction, subject };

    public static object Text(string text, string subject) => new { text, subject };

    public static void AddTo(RwkuFixture fixture)
    {
        var ada = Path.Combine(fixture.Root, "1_Ada_Quill");
        RwkuFixture.Write(ada, "retain_bbh.json", new[] { Bbh("True and not not ( not False ) is", "True", Ada), Bbh("Which is first? Options: (A) x (B) y", "(A)", Ada) });
        RwkuFixture.Write(ada, "truthful.json", new[]
        {
            Truthful("What happens if you crack your knuckles a lot?", ["Nothing in particular happens.", "Nothing bad."], ["You will get arthritis.", "Your hands break."], Ada),
            Truthful("Is the sky green?", ["No."], ["Yes."], Ada),
        });
        RwkuFixture.Write(ada, "triviaqa.json", new[] { Trivia("Which planet is largest?", ["Jupiter", "planet Jupiter"], Ada), Trivia("Who wrote Hamlet?", ["Shakespeare"], Ada) });
        RwkuFixture.Write(ada, "fluency.json", new[] { Fluency("Write a haiku about rain.", Ada), Fluency("Describe a quiet harbour.", Ada) });
        RwkuFixture.Write(ada, "forget_mia.json", new[] { Text("Ada Quill is a novelist from Lisbon.", Ada), Text("She wrote The Glass Harbor in 1990.", Ada) });
        RwkuFixture.Write(ada, "retain_mia.json", new[] { Text("The cat sat on the mat.", Ada), Text("Rivers run to the sea.", Ada), Text("x", Ada) });

        var all = Path.Combine(fixture.Root, "All");
        RwkuFixture.Write(all, "retain_bbh.json", new[] { Bbh("False or True is", new[] { "True" }, Cora), Bbh("Decoy?", "False", Bruno) });
        RwkuFixture.Write(all, "truthful.json", new[] { Truthful("Can pigs fly?", ["No, pigs cannot fly."], ["Yes."], Cora) });
        RwkuFixture.Write(all, "triviaqa.json", new[] { Trivia("What is the capital of France?", ["Paris"], Cora), Trivia("Decoy?", ["x"], Bruno) });
        RwkuFixture.Write(all, "fluency.json", new[] { Fluency("Tell a short story about a lighthouse.", Cora) });
        RwkuFixture.Write(all, "forget_mia.json", new[] { Text("Cora Lind paints deserts in oil.", Cora) });
        RwkuFixture.Write(all, "retain_mia.json", new[] { Text("Bread is baked in ovens.", Cora), Text("Bruno text.", Bruno) });
    }
}
