using System.Reflection;

namespace AlignThenUnlearn.Cli;

/// <summary>`atu --version`: the version and the git commit this build was made from. The commit is the SDK's
/// SourceRevisionId (Source Link sets it from the checkout in any `dotnet build`; tools/package.sh passes it), which
/// the SDK appends to the informational version as "1.0.0+COMMIT".</summary>
public static class AtuVersion
{
    public static string Text
    {
        get
        {
            var info = typeof(AtuVersion).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown";
            int plus = info.IndexOf('+');
            return plus < 0 ? $"atu {info} (commit unknown: built outside a git checkout)" : $"atu {info[..plus]} (commit {info[(plus + 1)..]})";
        }
    }
}
