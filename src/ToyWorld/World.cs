using AlignThenUnlearn.Evaluation;
using System.Text.Json.Serialization;

namespace AlignThenUnlearn.ToyWorld;

/// <summary>The names of the facts the toy world holds. People: birthplace, birth year, profession, most famous
/// work, employer, a relative (spouse or sibling) and a collaborator; works: year and genre; cities: country and
/// river.</summary>
public static class Relations
{
    public const string Birthplace = "birthplace";
    public const string BirthYear = "birth_year";
    public const string Profession = "profession";
    public const string FamousWork = "famous_work";
    public const string Employer = "employer";
    public const string Spouse = "spouse";
    public const string Sibling = "sibling";
    public const string Collaborator = "collaborator";
    public const string WorkYear = "year";
    public const string Genre = "genre";
    public const string Country = "country";
    public const string River = "river";
}

/// <summary>One fact: <see cref="Subject"/> (a person, work or city) has <see cref="Value"/> for
/// <see cref="Relation"/>.</summary>
public sealed record Fact(string Subject, string Relation, string Value);

/// <summary>A person of the toy world. <see cref="Number"/> is the person's RWKU target number (1-based);
/// <see cref="RelativeKind"/> is <see cref="Relations.Spouse"/> or <see cref="Relations.Sibling"/>. Relatives and
/// collaborators are mutual.</summary>
public sealed record Person(int Number, string Name, string Birthplace, int BirthYear, string Profession, string Work,
    string Employer, string RelativeKind, string Relative, string Collaborator)
{
    /// <summary>The person's facts, in a fixed order.</summary>
    [JsonIgnore]
    public IReadOnlyList<Fact> Facts =>
    [
        new(Name, Relations.Birthplace, Birthplace),
        new(Name, Relations.BirthYear, World.Year(BirthYear)),
        new(Name, Relations.Profession, Profession),
        new(Name, Relations.FamousWork, Work),
        new(Name, Relations.Employer, Employer),
        new(Name, RelativeKind, Relative),
        new(Name, Relations.Collaborator, Collaborator),
    ];
}

/// <summary>A work: its <see cref="Kind"/> follows from its author's profession (a painter's painting).</summary>
public sealed record Work(string Title, string Kind, int Year, string Genre, string Author)
{
    [JsonIgnore]
    public IReadOnlyList<Fact> Facts => [new(Title, Relations.WorkYear, World.Year(Year)), new(Title, Relations.Genre, Genre)];
}

public sealed record City(string Name, string Country, string River)
{
    [JsonIgnore]
    public IReadOnlyList<Fact> Facts => [new(Name, Relations.Country, Country), new(Name, Relations.River, River)];
}

/// <summary>The ground truth of a toy world (<c>world.json</c>).</summary>
public sealed record World(int Seed, IReadOnlyList<Person> People, IReadOnlyList<Work> Works, IReadOnlyList<City> Cities,
    IReadOnlyList<string> Organizations, IReadOnlyList<string> Countries)
{
    public static string Year(int year) => year.ToString(System.Globalization.CultureInfo.InvariantCulture);

    public Person PersonNamed(string name) => People.FirstOrDefault(p => p.Name == name)
        ?? throw new KeyNotFoundException($"The toy world has no person named '{name}'.");

    public Work WorkTitled(string title) => Works.FirstOrDefault(w => w.Title == title)
        ?? throw new KeyNotFoundException($"The toy world has no work titled '{title}'.");

    public City CityNamed(string name) => Cities.FirstOrDefault(c => c.Name == name)
        ?? throw new KeyNotFoundException($"The toy world has no city named '{name}'.");

    /// <summary>The people who share <paramref name="person"/>'s employer, in target order.</summary>
    public IReadOnlyList<Person> Colleagues(Person person) =>
        [.. People.Where(p => p.Employer == person.Employer && p.Name != person.Name)];

    /// <summary>Everyone linked to <paramref name="person"/>: relative, collaborator and colleagues.</summary>
    public IReadOnlySet<string> LinkedPeople(Person person) =>
        new HashSet<string>([person.Relative, person.Collaborator, .. Colleagues(person).Select(c => c.Name)], StringComparer.Ordinal);

    /// <summary>Every fact of the world: people's, then works', then cities'.</summary>
    [JsonIgnore]
    public IEnumerable<Fact> AllFacts =>
        People.SelectMany(p => p.Facts).Concat(Works.SelectMany(w => w.Facts)).Concat(Cities.SelectMany(c => c.Facts));
}

/// <summary>People outside a world (<c>strangers.json</c>), with their works: see <see cref="WorldGenerator.Strangers"/>.</summary>
public sealed record Strangers(int Seed, IReadOnlyList<Person> People, IReadOnlyList<Work> Works)
{
    public string KindOf(Person person) => Works.Single(w => w.Title == person.Work).Kind;
}
