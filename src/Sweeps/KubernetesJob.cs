using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using AlignThenUnlearn.Models;

namespace AlignThenUnlearn.Sweeps;

/// <summary>The sweep as a Kubernetes Indexed Job (batch/v1): a pod per cell index, each running
/// `atu sweep cell SWEEP $JOB_COMPLETION_INDEX`, the sweep folder mounted from a volume claim at its own path.
/// Written as JSON, which `kubectl apply -f` reads like YAML.</summary>
public static partial class KubernetesJob
{
    public const string Folder = "k8s", FileName = "job.json";

    public static JsonObject Manifest(string sweepFolder, SweepManifest manifest)
    {
        var kubernetes = manifest.Sweep.Kubernetes ?? new KubernetesSettings();
        if (string.IsNullOrEmpty(kubernetes.Image)) throw new InvalidDataException("sweep file: \"kubernetes.image\" is missing (the container image holding atu); --emit k8s needs it");
        if (string.IsNullOrEmpty(kubernetes.VolumeClaim)) throw new InvalidDataException("sweep file: \"kubernetes.volume_claim\" is missing (the persistent volume claim holding the sweep folder, artifacts and RWKU); --emit k8s needs it");
        var slurm = manifest.Sweep.Slurm;
        var limits = new JsonObject { ["cpu"] = slurm.Cpus.ToString(CultureInfo.InvariantCulture) };
        if (slurm.Memory is string memory) limits["memory"] = SweepFile.MemoryMegabytes(memory)!.Value.ToString(CultureInfo.InvariantCulture) + "Mi";
        if (slurm.Gpus > 0) limits["nvidia.com/gpu"] = slurm.Gpus.ToString(CultureInfo.InvariantCulture);
        var metadata = new JsonObject { ["name"] = JobName(manifest.Name), ["labels"] = new JsonObject { ["app.kubernetes.io/name"] = "atu-sweep" } };
        if (kubernetes.Namespace is not null) metadata["namespace"] = kubernetes.Namespace;
        return new JsonObject
        {
            ["apiVersion"] = "batch/v1",
            ["kind"] = "Job",
            ["metadata"] = metadata,
            ["spec"] = new JsonObject
            {
                ["completionMode"] = "Indexed",
                ["completions"] = manifest.Cells.Length,
                ["parallelism"] = slurm.Throttle,
                // The cell counts its own attempts too; a second failure of an index is its last.
                ["backoffLimitPerIndex"] = CellState.MaxFailures - 1,
                ["template"] = new JsonObject
                {
                    ["spec"] = new JsonObject
                    {
                        ["restartPolicy"] = "Never",
                        ["containers"] = new JsonArray(new JsonObject
                        {
                            ["name"] = "cell",
                            ["image"] = kubernetes.Image,
                            ["command"] = new JsonArray("/bin/sh", "-c", $"exec {SweepPlanner.ShellLine([.. kubernetes.Atu, "sweep", "cell", sweepFolder])} \"$JOB_COMPLETION_INDEX\""),
                            ["resources"] = new JsonObject { ["limits"] = limits, ["requests"] = limits.DeepClone() },
                            ["volumeMounts"] = new JsonArray(new JsonObject { ["name"] = "sweep", ["mountPath"] = sweepFolder }),
                        }),
                        ["volumes"] = new JsonArray(new JsonObject
                        {
                            ["name"] = "sweep",
                            ["persistentVolumeClaim"] = new JsonObject { ["claimName"] = kubernetes.VolumeClaim },
                        }),
                    },
                },
            },
        };
    }

    /// <summary>A DNS-1123 label (lower-case letters, digits, '-', at most 63 characters) from the sweep's name.</summary>
    public static string JobName(string name)
    {
        var label = NotDns().Replace(name.ToLowerInvariant(), "-").Trim('-');
        label = ("atu-sweep-" + label).TrimEnd('-');
        return label.Length <= 63 ? label : label[..63].TrimEnd('-');
    }

    [GeneratedRegex("[^a-z0-9-]+")]
    private static partial Regex NotDns();

    public static string Write(string sweepFolder, SweepManifest manifest)
    {
        var path = Path.Combine(sweepFolder, Folder, FileName);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        AtomicFile.WriteAllBytes(path, System.Text.Encoding.UTF8.GetBytes(Manifest(sweepFolder, manifest).ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n"));
        return path;
    }
}
