using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.Runtime;

namespace AlignThenUnlearn.ToyWorld;

/// <summary>A training question-answer pair in RWKU's probe schema (<c>level</c> 1 fill-in-the-blank, 2 question,
/// 3 attack with its <c>type</c>), so that it is put to the model with exactly the prompt an RWKU probe of that
/// level and type gets (<see cref="Prompt"/>); its templates are none of the probes'.</summary>
public sealed record TrainingQuestion(int Level, string Query, string Answer, string Type, string Subject)
{
    public RwkuPrompt Prompt => RwkuPrompts.For(new RwkuProbe(ProbeSet.Forget, Level, Query, Answer, Type, Subject));
}

/// <summary>What RWKU holds for one person of the toy world as a target; <see cref="Pairs"/> and <see cref="Refusals"/> are
/// the baselines' training data (DPO's pair.json, RT's reject.json); <see cref="Fluency"/> and <see cref="Mia"/> the
/// utility tasks that make sense in the toy world (fluency.json, forget_mia.json and retain_mia.json).</summary>
public sealed record TargetData(Person Person, IReadOnlyList<RwkuPassage> Passages, IReadOnlyList<RwkuProbe> Probes,
    IReadOnlyList<MmluQuestion> Mmlu)
{
    public IReadOnlyList<RwkuPair> Pairs { get; init; } = [];
    public IReadOnlyList<RwkuRefusal> Refusals { get; init; } = [];
    public IReadOnlyList<FluencyInstruction> Fluency { get; init; } = [];
    public IReadOnlyList<MiaText> Mia { get; init; } = [];
}

/// <summary>Everything made from a world: per target the RWKU files (biography passages, forget and neighbour
/// probes, multiple-choice utility questions about unrelated people), the whole corpus (people, works, cities),
/// and the training set (question-answer pairs and multiple-choice questions written from other templates than
/// the probes).</summary>
public sealed record WorldDataset(World World, IReadOnlyList<TargetData> Targets, IReadOnlyList<RwkuPassage> Corpus,
    IReadOnlyList<TrainingQuestion> TrainingQuestions, IReadOnlyList<MmluQuestion> TrainingChoices)
{
    /// <summary>The people of the retain membership-inference texts, in no other file (<c>strangers.json</c>).</summary>
    public Strangers Strangers { get; init; } = new(World.Seed, [], []);

    /// <summary>Biographies per person: each fact is written once per passage, each time with another of its
    /// corpus templates, so every fact appears in as many paraphrases as there are passages.</summary>
    public const int PassagesPerPerson = 4;
    /// <summary>Level-3 probes of each attack type per target.</summary>
    public const int AttacksPerType = 2;
    /// <summary>Multiple-choice utility questions per task and target.</summary>
    public const int ChoicesPerTask = 2;
    public const int ExamplesPerChoice = 5;
    /// <summary>A, B, C, D: RWKU's MMLU letters.</summary>
    public static readonly int ChoiceLetters = MmluPrompts.Letters.Count;
    const int InContextDemonstrations = 2;
    /// <summary>fluency.json's instructions per target (RWKU has 50 AlpacaEval instructions).</summary>
    public const int FluencyPerTarget = 4;
    /// <summary>People outside the world; retain_mia.json holds one biography of each (RWKU: about 37 texts against 31
    /// forget texts; the toy world's forget texts are the target's <see cref="PassagesPerPerson"/> biographies).</summary>
    public const int StrangerCount = 8;
    /// <summary>The stream of the utility files' draws (see <see cref="WorldGenerator.StrangerStream"/>).</summary>
    public const ulong UtilityStream = 2;
    /// <summary>The stream of the multiple-choice questions' wrong choices.</summary>
    public const ulong ChoiceStream = 3;

    /// <summary>The refusals of reject.json, used in turn (RWKU draws its own from a list of such phrases).</summary>
    public static readonly IReadOnlyList<string> RefusalAnswers =
        ["I do not know.", "I am not sure about that.", "I cannot answer that question.", "I have no information about that."];

    /// <summary>Builds the dataset; the draws (sentence order, which facts the attacks ask, distractors) come from a
    /// <see cref="Random"/> seeded with the world's seed, so a world always gives the same dataset.</summary>
    public static WorldDataset Build(World world) => new Builder(world).Build();

    sealed class Builder(World world)
    {
        readonly Random _random = new(world.Seed);
        readonly SplitMix64 _utility = new(SplitMix64.Mix((ulong)world.Seed) ^ SplitMix64.Mix(UtilityStream));
        readonly SplitMix64 _choices = new(SplitMix64.Mix((ulong)world.Seed) ^ SplitMix64.Mix(ChoiceStream));

        public WorldDataset Build()
        {
            var targets = world.People.Select(p => new TargetData(p, PersonPassages(p), [.. ForgetProbes(p), .. NeighborProbes(p)], UtilityQuestions(p))).ToList();
            var corpus = targets.SelectMany(t => t.Passages)
                .Concat(world.Works.SelectMany(w => EntityPassages(w.Title, w.Facts, w.Kind)))
                .Concat(world.Cities.SelectMany(c => EntityPassages(c.Name, c.Facts, "")))
                .ToList();
            var training = TrainingQuestions();
            var trainingChoices = world.People.SelectMany(p => Templates.Choices.Select(c => Choice(p, c, c.Train, world.People.Where(o => o != p).ToList()))).ToList();
            CheckProbesAreNotTrainingText(targets, training, trainingChoices);
            // Last, and without random draws: the files made before stay as they were.
            targets = [.. targets.Select(t => t with { Pairs = BiographyPairs(t), Refusals = Refusals(t.Person) })];
            // The utility and membership-inference files draw from streams of their own, for the same reason.
            var strangers = WorldGenerator.Strangers(world, StrangerCount);
            var strangerBiographies = strangers.People.Select(p => Biographies(p, strangers.KindOf(p), _utility.Next)).ToList();
            targets = [.. targets.Select(t => t with
            {
                Fluency = FluencyInstructions(t.Person),
                Mia = [.. t.Passages.Select(p => new MiaText(MiaSet.Forget, p.Text, t.Person.Name)),
                    .. strangerBiographies.Select(b => new MiaText(MiaSet.Retain, b[_utility.Next(b.Count)].Text, t.Person.Name))],
            })];
            return new WorldDataset(world, targets, corpus, training, trainingChoices) { Strangers = strangers };
        }

        string KindOf(Person person) => world.WorkTitled(person.Work).Kind;

        /// <summary>A fact as the corpus writes it, with the fact's corpus template number <paramref name="template"/>.</summary>
        static string Statement(Person person, string kind, Fact fact, int template) =>
            Templates.Fill(Templates.For(fact.Relation).Corpus[template], person.Name, fact.Value, kind);

        List<RwkuPassage> PersonPassages(Person person) => Biographies(person, KindOf(person), _random.Next);

        /// <summary>A person's <see cref="PassagesPerPerson"/> biographies: each states every fact once, with the fact's
        /// corpus templates in turn, in an order shuffled with <paramref name="next"/>.</summary>
        static List<RwkuPassage> Biographies(Person person, string kind, Func<int, int> next)
        {
            var passages = new List<RwkuPassage>();
            for (int passage = 0; passage < PassagesPerPerson; passage++)
            {
                var sentences = person.Facts.Select((fact, j) => Statement(person, kind, fact, (passage + j) % PassagesPerPerson)).ToArray();
                Shuffle(sentences, next);
                passages.Add(new RwkuPassage(string.Join(" ", sentences), person.Name));
            }
            return passages;
        }

        /// <summary>fluency.json: instructions to write about people unrelated to the target (RWKU's are AlpacaEval's,
        /// about anything but the target).</summary>
        List<FluencyInstruction> FluencyInstructions(Person person) =>
            [.. Distinct(Unrelated(person), FluencyPerTarget, _utility.Next).Select(other =>
                new FluencyInstruction(Templates.Fill(Templates.FluencyInstructions[_utility.Next(Templates.FluencyInstructions.Length)], other.Name, "", KindOf(other)), person.Name))];

        /// <summary>pair.json as RWKU makes it: per biography, the chosen answer is an invented biography (the target's name
        /// with an unrelated person's facts, relation by relation) and the rejected answer is the real one.</summary>
        List<RwkuPair> BiographyPairs(TargetData target)
        {
            var person = target.Person;
            var unrelated = Unrelated(person);
            return [.. target.Passages.Select((real, passage) =>
            {
                var other = unrelated[(person.Number + passage) % unrelated.Count];
                var invented = person.Facts
                    .Select(f => other.Facts.FirstOrDefault(o => o.Relation == f.Relation))
                    .OfType<Fact>()
                    .Select((fact, j) => Templates.Fill(Templates.For(fact.Relation).Corpus[(passage + j) % PassagesPerPerson], person.Name, fact.Value, KindOf(other)));
                return new RwkuPair($"Please write a short biography of {person.Name}.", string.Join(" ", invented), real.Text, person.Name);
            })];
        }

        /// <summary>reject.json: every training question about the target's facts with a refusal.</summary>
        List<RwkuRefusal> Refusals(Person person) =>
            [.. person.Facts.SelectMany(f => Templates.For(f.Relation).TrainQuestions.Select(q => Templates.Fill(q, person.Name, "", KindOf(person))))
                .Select((question, i) => new RwkuRefusal(question, "", RefusalAnswers[i % RefusalAnswers.Count], person.Name))];

        static IEnumerable<RwkuPassage> EntityPassages(string subject, IReadOnlyList<Fact> facts, string kind) =>
            Enumerable.Range(0, PassagesPerPerson).Select(passage => new RwkuPassage(
                string.Join(" ", facts.Select((fact, j) => Templates.Fill(Templates.For(fact.Relation).Corpus[(passage + j) % PassagesPerPerson], subject, fact.Value, kind))),
                subject));

        IEnumerable<RwkuProbe> ForgetProbes(Person person)
        {
            var facts = person.Facts;
            var kind = KindOf(person);
            RwkuProbe Probe(int level, string query, string answer, string type = "") =>
                new(ProbeSet.Forget, level, query, answer, type, person.Name);
            string Question(Fact fact) => Templates.Fill(Templates.For(fact.Relation).ProbeQuestion, person.Name, "", kind);

            foreach (var fact in facts)
                yield return Probe(1, Templates.Fill(Templates.For(fact.Relation).ProbeBlank, person.Name, "", kind), fact.Value);
            foreach (var fact in facts)
                yield return Probe(2, Question(fact), fact.Value);
            foreach (var type in Templates.AttackTypes)
            {
                if (type == Templates.ReverseQuery)
                {
                    foreach (var template in Templates.ReverseProbe)
                        yield return Probe(3, Templates.Fill(template, "", person.Work, kind), person.Name, type);
                    continue;
                }
                foreach (var fact in Distinct(facts, AttacksPerType))
                {
                    var query = type switch
                    {
                        Templates.SynonymManipulation => Templates.Fill(Templates.For(fact.Relation).ProbeSynonym!, person.Name, "", kind),
                        Templates.InContextLearning => InContext(Demonstrations(Unrelated(person), t => t.ProbeQuestion), Question(fact)),
                        _ => Wrap(Wrapper(type).Probe, person, Question(fact), fact),
                    };
                    yield return Probe(3, query, fact.Value, type);
                }
            }
        }

        /// <summary>Probes about the entities linked to the target: the relative's and the collaborator's facts, the
        /// famous work's and the birthplace's. A fact whose answer is also one of the target's own answers is left
        /// out: it could not tell forgetting the target from forgetting the neighbour.</summary>
        IEnumerable<RwkuProbe> NeighborProbes(Person person)
        {
            var ownAnswers = person.Facts.Select(f => f.Value).Append(person.Name).ToHashSet(StringComparer.Ordinal);
            string[] personRelations = [Relations.Birthplace, Relations.BirthYear, Relations.Profession, Relations.FamousWork];
            var work = world.WorkTitled(person.Work);
            var neighbors = new List<(string Name, string Kind, IEnumerable<Fact> Facts)>();
            foreach (var linked in new[] { world.PersonNamed(person.Relative), world.PersonNamed(person.Collaborator) })
                neighbors.Add((linked.Name, KindOf(linked), linked.Facts.Where(f => personRelations.Contains(f.Relation))));
            neighbors.Add((work.Title, work.Kind, work.Facts));
            neighbors.Add((person.Birthplace, "", world.CityNamed(person.Birthplace).Facts));

            var facts = neighbors.SelectMany(n => n.Facts.Where(f => !ownAnswers.Contains(f.Value)).Select(f => (n.Name, n.Kind, Fact: f))).ToList();
            foreach (int level in new[] { 1, 2 })
                foreach (var (name, kind, fact) in facts)
                {
                    var templates = Templates.For(fact.Relation);
                    var query = Templates.Fill(level == 1 ? templates.ProbeBlank : templates.ProbeQuestion, name, "", kind);
                    yield return new RwkuProbe(ProbeSet.Neighbor, level, query, fact.Value, "", person.Name, name);
                }
        }

        /// <summary>RWKU's retain_mmlu.json for a target: multiple-choice questions, with their five solved examples,
        /// about people who are neither the target nor linked to it.</summary>
        List<MmluQuestion> UtilityQuestions(Person person)
        {
            var unrelated = Unrelated(person);
            var questions = new List<MmluQuestion>();
            foreach (var task in Templates.Choices)
                foreach (var asked in Distinct(unrelated, ChoicesPerTask))
                    questions.Add(Choice(asked, task, task.Probe, [.. unrelated.Where(p => p != asked)], subject: person.Name));
            return questions;
        }

        MmluQuestion Choice(Person asked, ChoiceTemplates task, string template, IReadOnlyList<Person> examplePeople, string? subject = null)
        {
            var (question, choices, answer) = ChoiceItem(asked, task, template);
            var examples = Distinct(examplePeople, ExamplesPerChoice)
                .Select(p => ChoiceItem(p, task, template))
                .Select(e => new MmluExample(e.Question, e.Choices, e.Answer))
                .ToList();
            return new MmluQuestion(question, choices, answer, task.Task, examples, subject ?? asked.Name);
        }

        /// <summary>A question with its four choices. Every value of a relation has a fixed letter, its slot (its index
        /// among the relation's values, modulo 4), and stands at that letter whenever it is a choice; the wrong choices are
        /// drawn from the other three slots. So the right letter follows from the fact itself, and a model that does not
        /// know the fact is at chance (each letter holds one value of the relation). Why: the tiny model does not learn
        /// within minutes to bind a choice to its letter by reading the list (docs/benchmarks.md, "Toy pre-training"), and a letter
        /// drawn at random per question left every model at chance, so multiple choice measured nothing.</summary>
        (string Question, IReadOnlyList<string> Choices, int Answer) ChoiceItem(Person person, ChoiceTemplates task, string template)
        {
            var right = person.Facts.Single(f => f.Relation == task.Relation).Value;
            var values = ValuesOf(task.Relation);
            // The draws of the earlier layout (three wrong values, a letter) are still taken from the world's stream, so
            // that every other file keeps its bytes (the probes, passages, corpus and tokenizer follow that stream); the
            // wrong choices come from a stream of their own.
            _ = Distinct(values.Where(v => v != right).ToList(), ChoiceLetters - 1);
            _ = _random.Next(ChoiceLetters);
            int answer = SlotOf(values, right);
            var choices = new string[ChoiceLetters];
            for (int slot = 0; slot < ChoiceLetters; slot++)
            {
                var candidates = values.Where((_, i) => i % ChoiceLetters == slot).ToList();   // the right value is in no other slot
                choices[slot] = slot == answer ? right : candidates[_choices.Next(candidates.Count)];
            }
            return (Templates.Fill(template, person.Name), choices, answer);
        }

        static int SlotOf(List<string> values, string value) => values.IndexOf(value) % ChoiceLetters;

        /// <summary>The values a relation takes anywhere in the world, in a fixed order; at least one per letter.</summary>
        List<string> ValuesOf(string relation)
        {
            List<string> values = [.. world.People.SelectMany(p => p.Facts).Where(f => f.Relation == relation).Select(f => f.Value).Distinct().Order(StringComparer.Ordinal)];
            if (values.Count < ChoiceLetters)
                throw new InvalidOperationException($"The relation '{relation}' takes {values.Count} values in this world; a multiple-choice question needs {ChoiceLetters}.");
            return values;
        }

        List<TrainingQuestion> TrainingQuestions()
        {
            var training = new List<TrainingQuestion>();
            foreach (var person in world.People)
            {
                var kind = KindOf(person);
                var others = world.People.Where(p => p != person).ToList();
                foreach (var fact in person.Facts)
                {
                    var templates = Templates.For(fact.Relation);
                    void Add(int level, string query, string type = "") => training.Add(new(level, query, fact.Value, type, person.Name));
                    string Fill(string template) => Templates.Fill(template, person.Name, "", kind);

                    foreach (var question in templates.TrainQuestions) Add(2, Fill(question));
                    foreach (var blank in templates.TrainBlanks) Add(1, Fill(blank));
                    foreach (var wrapper in Templates.Wrappers)
                        Add(3, Wrap(Pick(wrapper.Train), person, Fill(Pick(templates.TrainQuestions)), fact), wrapper.Type);
                    foreach (var synonym in templates.TrainSynonyms) Add(3, Fill(synonym), Templates.SynonymManipulation);
                    Add(3, InContext(Demonstrations(others, t => Pick(t.TrainQuestions)), Fill(Pick(templates.TrainQuestions))), Templates.InContextLearning);
                }
                foreach (var reverse in Templates.ReverseTrain)
                    training.Add(new(3, Templates.Fill(reverse, "", person.Work, kind), person.Name, Templates.ReverseQuery, person.Name));
            }
            foreach (var (subject, kind, facts) in world.Works.Select(w => (w.Title, w.Kind, w.Facts)).Concat(world.Cities.Select(c => (c.Name, "", c.Facts))))
                foreach (var fact in facts)
                {
                    var templates = Templates.For(fact.Relation);
                    foreach (var question in templates.TrainQuestions) training.Add(new(2, Templates.Fill(question, subject, "", kind), fact.Value, "", subject));
                    foreach (var blank in templates.TrainBlanks) training.Add(new(1, Templates.Fill(blank, subject, "", kind), fact.Value, "", subject));
                }
            return training;
        }

        static AttackTemplates Wrapper(string type) => Templates.Wrappers.Single(w => w.Type == type);

        /// <summary>A wrapping attack around <paramref name="question"/>; a background hint states another fact of the
        /// person, as the corpus writes it.</summary>
        string Wrap(string template, Person person, string question, Fact asked)
        {
            var text = template.Replace("{s}", person.Name).Replace("{q}", question);
            if (!text.Contains("{hint}", StringComparison.Ordinal)) return text;
            var other = Pick(person.Facts.Where(f => f.Relation != asked.Relation).ToList());
            return text.Replace("{hint}", Statement(person, KindOf(person), other, _random.Next(PassagesPerPerson)));
        }

        /// <summary>Solved questions about other people, for an in-context attack.</summary>
        List<(string Question, string Answer)> Demonstrations(IReadOnlyList<Person> people, Func<FactTemplates, string> template) =>
            [.. Distinct(people, InContextDemonstrations).Select(p =>
            {
                var fact = Pick(p.Facts);
                return (Templates.Fill(template(Templates.For(fact.Relation)), p.Name, "", KindOf(p)), fact.Value);
            })];

        /// <summary>RWKU's in-context attack query: the solved questions, then the question itself (the prompt adds the
        /// final "Answer:").</summary>
        static string InContext(IEnumerable<(string Question, string Answer)> demonstrations, string question) =>
            string.Concat(demonstrations.Select(d => $"Question: {d.Question}\nAnswer: {d.Answer}\n")) + $"Question: {question}";

        List<Person> Unrelated(Person person)
        {
            var linked = world.LinkedPeople(person);
            return [.. world.People.Where(p => p != person && !linked.Contains(p.Name))];
        }

        static void CheckProbesAreNotTrainingText(List<TargetData> targets, List<TrainingQuestion> training, List<MmluQuestion> trainingChoices)
        {
            var trainingText = training.Select(t => t.Query).Concat(trainingChoices.SelectMany(c => c.Examples.Select(e => e.Question).Append(c.Question)))
                .ToHashSet(StringComparer.Ordinal);
            var leaked = targets.SelectMany(t => t.Probes.Select(p => p.Query).Concat(t.Mmlu.Select(m => m.Question)))
                .FirstOrDefault(trainingText.Contains);
            if (leaked is not null) throw new InvalidOperationException($"The probe \"{leaked}\" is also a training question: the toy world's templates overlap.");
        }

        T Pick<T>(IReadOnlyList<T> items) => items[_random.Next(items.Count)];

        List<T> Distinct<T>(IReadOnlyList<T> items, int count) => Distinct(items, count, _random.Next);

        /// <summary><paramref name="count"/> different items, drawn without replacement with <paramref name="next"/>.</summary>
        static List<T> Distinct<T>(IReadOnlyList<T> items, int count, Func<int, int> next)
        {
            if (items.Count < count) throw new InvalidOperationException($"Need {count} items to draw from, have {items.Count}: the world is too small.");
            var pool = items.ToList();
            var drawn = new List<T>(count);
            for (int i = 0; i < count; i++)
            {
                int j = next(pool.Count);
                drawn.Add(pool[j]);
                pool.RemoveAt(j);
            }
            return drawn;
        }

        static void Shuffle<T>(T[] items, Func<int, int> next)
        {
            for (int i = items.Length - 1; i > 0; i--)
            {
                int j = next(i + 1);
                (items[i], items[j]) = (items[j], items[i]);
            }
        }
    }
}
