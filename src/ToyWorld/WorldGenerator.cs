using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.Runtime;

namespace AlignThenUnlearn.ToyWorld;

/// <summary>Sizes of a generated world.</summary>
public sealed record WorldOptions
{
    /// <summary>Even: relatives and collaborators come in mutual pairs.</summary>
    public int People { get; init; } = 60;
    public int Cities { get; init; } = 12;
    public int Countries { get; init; } = 4;
    public int Organizations { get; init; } = 10;
    public int FirstBirthYear { get; init; } = 1920;
    public int LastBirthYear { get; init; } = 1979;
}

/// <summary>Makes a fictitious world from a seed. Every draw comes from one <see cref="Random"/> seeded with the
/// seed, in a fixed order, so a seed always gives the same world. Names are built from syllable lists and are
/// unique across all kinds of entity; values come from small closed vocabularies, so a tiny model can learn them.</summary>
public static class WorldGenerator
{
    // Name syllables, one list pair per kind of entity so that kinds do not share names.
    static readonly string[] FirstNameStarts = ["Al", "Bri", "Cas", "Dar", "El", "Fen", "Gil", "Hal", "Is", "Jor", "Kel", "Lor", "Mar", "Nel", "Or", "Per", "Quin", "Ros", "Sel", "Tam", "Ul", "Ves", "Wil", "Yar"];
    static readonly string[] FirstNameEnds = ["a", "an", "en", "ia", "is", "o", "on", "ra", "ric", "wen"];
    static readonly string[] SurnameStarts = ["Ash", "Bel", "Corr", "Dun", "Ever", "Fair", "Gold", "Hart", "Iver", "Kings", "Lang", "Mor", "North", "Oak", "Pem", "Rad", "Stan", "Thorn", "Wyn", "Vale"];
    static readonly string[] SurnameEnds = ["by", "dale", "field", "ford", "holm", "ley", "mere", "ton", "well", "wick"];
    static readonly string[] CityStarts = ["Bar", "Cor", "Dra", "Est", "Gal", "Kor", "Lin", "Mal", "Nor", "Ost", "Rav", "Sol", "Tir", "Zen"];
    static readonly string[] CityEnds = ["ava", "dor", "heim", "ica", "mont", "ora", "polis", "vik"];
    static readonly string[] RiverStarts = ["Am", "Ev", "Il", "Ol", "Ur", "Ys", "Ak", "Oss"];
    static readonly string[] RiverEnds = ["ra", "na", "ssa", "lin", "ne", "ro"];
    static readonly string[] CountryStarts = ["Ar", "Bel", "Cal", "Dor", "Mer", "Tal"];
    static readonly string[] CountryEnds = ["avia", "onia", "esia", "land"];
    static readonly string[] OrganizationStarts = ["Or", "Ver", "Kal", "Mon", "Tes", "Bra", "Hel", "Lum"];
    static readonly string[] OrganizationEnds = ["len", "dan", "mir", "ros", "tal"];
    static readonly string[] OrganizationKinds = ["Guild", "Studio", "Academy", "Theatre", "Institute", "Society"];

    /// <summary>Professions and the kind of work each makes.</summary>
    static readonly (string Profession, string WorkKind)[] Professions =
    [
        ("painter", "painting"), ("poet", "poem"), ("novelist", "novel"), ("composer", "symphony"), ("singer", "song"),
        ("sculptor", "statue"), ("director", "film"), ("playwright", "play"), ("photographer", "photograph"), ("dancer", "ballet"),
    ];

    static readonly string[] Genres = ["gothic", "comic", "pastoral", "tragic", "surreal", "classical", "folk", "modern"];
    static readonly string[] TitleAdjectives = ["Silver", "Quiet", "Broken", "Golden", "Hidden", "Crimson", "Distant", "Frozen", "Gentle", "Hollow", "Lonely", "Scarlet", "Silent", "Wandering", "Bright", "Ashen"];
    static readonly string[] TitleNouns = ["Harbor", "Lantern", "Garden", "Bridge", "Crown", "Mirror", "Orchard", "Tower", "Voyage", "Window", "Feather", "Meadow", "Compass", "Sparrow", "Winter", "Candle"];

    public static World Generate(int seed, WorldOptions? options = null)
    {
        options ??= new WorldOptions();
        if (options.People < 8 || options.People % 2 != 0)
            throw new ArgumentException($"A toy world needs an even number of people, at least 8 (got {options.People}): relatives and collaborators come in pairs.");
        if (options.Organizations < 1 || options.People / options.Organizations < 2)
            throw new ArgumentException($"{options.Organizations} organizations for {options.People} people: every organization needs at least two members.");
        var random = new Random(seed);
        var names = new UniqueNames(random.Next, [.. TitleAdjectives, .. TitleNouns, .. OrganizationKinds]);

        var countries = Enumerable.Range(0, options.Countries).Select(_ => names.Next(CountryStarts, CountryEnds)).ToList();
        var cities = Enumerable.Range(0, options.Cities)
            .Select(_ => new City(names.Next(CityStarts, CityEnds), countries[random.Next(countries.Count)], names.Next(RiverStarts, RiverEnds)))
            .ToList();
        var organizations = Enumerable.Range(0, options.Organizations)
            .Select(_ => $"{names.Next(OrganizationStarts, OrganizationEnds)} {OrganizationKinds[random.Next(OrganizationKinds.Length)]}")
            .ToList();

        int n = options.People;
        // Relatives: a random perfect matching, each pair spouses or siblings; siblings share a family name.
        var relativePairs = Pairs(Shuffled(random.Next, n));
        var fullNames = new string[n];
        var relativeKinds = new string[n];
        var relativeOf = new int[n];
        foreach (var (a, b) in relativePairs)
        {
            (fullNames[a], fullNames[b], relativeKinds[a]) = Relatives(random.Next, names);
            relativeKinds[b] = relativeKinds[a];
            (relativeOf[a], relativeOf[b]) = (b, a);
        }
        // Collaborators: another perfect matching that pairs nobody with their relative.
        List<(int A, int B)> collaboratorPairs;
        do collaboratorPairs = Pairs(Shuffled(random.Next, n));
        while (collaboratorPairs.Any(p => relativeOf[p.A] == p.B));
        var collaboratorOf = new int[n];
        foreach (var (a, b) in collaboratorPairs) (collaboratorOf[a], collaboratorOf[b]) = (b, a);
        // Employers: equal shares of a shuffled order, so every organization has several members.
        var employerOf = new string[n];
        var employerOrder = Shuffled(random.Next, n);
        for (int i = 0; i < n; i++) employerOf[employerOrder[i]] = organizations[i % organizations.Count];

        var titles = new HashSet<string>(StringComparer.Ordinal);
        var people = new List<Person>(n);
        var works = new List<Work>(n);
        for (int i = 0; i < n; i++)
        {
            var (profession, kind) = Professions[random.Next(Professions.Length)];
            int birthYear = options.FirstBirthYear + random.Next(options.LastBirthYear - options.FirstBirthYear + 1);
            var title = NewTitle(random.Next, titles);
            works.Add(new Work(title, kind, birthYear + 22 + random.Next(24), Genres[random.Next(Genres.Length)], fullNames[i]));
            people.Add(new Person(i + 1, fullNames[i], cities[random.Next(cities.Count)].Name, birthYear, profession, title,
                employerOf[i], relativeKinds[i], fullNames[relativeOf[i]], fullNames[collaboratorOf[i]]));
        }
        return new World(seed, people, works, cities, organizations, countries);
    }

    /// <summary>The stream of <see cref="Strangers"/> (the world itself draws from <see cref="Random"/>; the dataset's
    /// utility files from <see cref="WorldDataset.UtilityStream"/>).</summary>
    public const ulong StrangerStream = 1;

    /// <summary><paramref name="count"/> people outside <paramref name="world"/>, whom none of its texts mentions: the
    /// subjects of the retain membership-inference texts, about people the toy model never read of. Their names and work
    /// titles are new (no word of a name is a word of any name in the world); their other facts come from the world's
    /// vocabularies (its cities, professions, organizations, years and genres), so that their biographies read like the
    /// world's. Relatives and collaborators are strangers too. The draws come from a <see cref="SplitMix64"/> stream of
    /// their own (<see cref="StrangerStream"/>), so the world and everything made from it keep their bytes.</summary>
    public static Strangers Strangers(World world, int count)
    {
        if (count < 4 || count % 2 != 0)
            throw new ArgumentException($"Strangers need an even number, at least 4 (got {count}): relatives come in pairs and collaborators are in other pairs.");
        var random = new SplitMix64(SplitMix64.Mix((ulong)world.Seed) ^ SplitMix64.Mix(StrangerStream));
        var worldWords = world.People.Select(p => p.Name).Concat(world.Cities.SelectMany(c => new[] { c.Name, c.River }))
            .Concat(world.Countries).Concat(world.Organizations).SelectMany(name => name.Split(' '));
        var names = new UniqueNames(random.Next, [.. TitleAdjectives, .. TitleNouns, .. OrganizationKinds, .. worldWords]);
        var titles = world.Works.Select(w => w.Title).ToHashSet(StringComparer.Ordinal);
        int firstYear = world.People.Min(p => p.BirthYear), lastYear = world.People.Max(p => p.BirthYear);

        var order = Shuffled(random.Next, count);
        var fullNames = new string[count];
        var relativeKinds = new string[count];
        var relativeOf = new int[count];
        foreach (var (a, b) in Pairs(order))
        {
            (fullNames[a], fullNames[b], relativeKinds[a]) = Relatives(random.Next, names);
            relativeKinds[b] = relativeKinds[a];
            (relativeOf[a], relativeOf[b]) = (b, a);
        }
        // Collaborators: each pair's second with the next pair's first, round the circle, so never one's relative.
        var collaboratorOf = new int[count];
        for (int i = 0; i < count; i += 2)
        {
            int a = order[i + 1], b = order[(i + 2) % count];
            (collaboratorOf[a], collaboratorOf[b]) = (b, a);
        }
        var people = new List<Person>(count);
        var works = new List<Work>(count);
        for (int i = 0; i < count; i++)
        {
            var (profession, kind) = Professions[random.Next(Professions.Length)];
            int birthYear = firstYear + random.Next(lastYear - firstYear + 1);
            var title = NewTitle(random.Next, titles);
            works.Add(new Work(title, kind, birthYear + 22 + random.Next(24), Genres[random.Next(Genres.Length)], fullNames[i]));
            people.Add(new Person(world.People.Count + i + 1, fullNames[i], world.Cities[random.Next(world.Cities.Count)].Name, birthYear, profession,
                title, world.Organizations[random.Next(world.Organizations.Count)], relativeKinds[i], fullNames[relativeOf[i]], fullNames[collaboratorOf[i]]));
        }
        return new Strangers(world.Seed, people, works);
    }

    /// <summary>Two relatives' names and the kind of their link: siblings share a family name, spouses need not.</summary>
    static (string A, string B, string Kind) Relatives(Func<int, int> next, UniqueNames names)
    {
        bool siblings = next(2) == 0;
        var family = names.Next(SurnameStarts, SurnameEnds);
        var a = $"{names.Next(FirstNameStarts, FirstNameEnds)} {family}";
        var b = $"{names.Next(FirstNameStarts, FirstNameEnds)} {(siblings ? family : names.Next(SurnameStarts, SurnameEnds))}";
        return (a, b, siblings ? Relations.Sibling : Relations.Spouse);
    }

    /// <summary>A work title not in <paramref name="titles"/> (which it joins).</summary>
    static string NewTitle(Func<int, int> next, HashSet<string> titles)
    {
        string title;
        do title = $"{TitleAdjectives[next(TitleAdjectives.Length)]} {TitleNouns[next(TitleNouns.Length)]}";
        while (!titles.Add(title));
        return title;
    }

    /// <summary>0..count-1 in a random order (Fisher-Yates, written out so that the draws never depend on the
    /// runtime's own shuffle).</summary>
    static int[] Shuffled(Func<int, int> next, int count)
    {
        var order = Enumerable.Range(0, count).ToArray();
        for (int i = count - 1; i > 0; i--)
        {
            int j = next(i + 1);
            (order[i], order[j]) = (order[j], order[i]);
        }
        return order;
    }

    static List<(int A, int B)> Pairs(int[] order) =>
        [.. Enumerable.Range(0, order.Length / 2).Select(i => (order[2 * i], order[2 * i + 1]))];

    /// <summary>Draws names from syllable lists with <paramref name="next"/> (a uniform integer below its argument), never
    /// the same word twice across the whole world (nor one of the <paramref name="reserved"/> words).</summary>
    sealed class UniqueNames(Func<int, int> next, IEnumerable<string> reserved)
    {
        readonly HashSet<string> _used = new(reserved, StringComparer.Ordinal);

        public string Next(string[] starts, string[] ends)
        {
            for (int attempt = 0; attempt < 100 * starts.Length * ends.Length; attempt++)
            {
                var name = starts[next(starts.Length)] + ends[next(ends.Length)];
                if (_used.Add(name)) return name;
            }
            throw new InvalidOperationException($"The syllable lists starting {starts[0]}... are too short for the world's size.");
        }
    }
}
