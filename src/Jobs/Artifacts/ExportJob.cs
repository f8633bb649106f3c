using AlignThenUnlearn.Models;
using AlignThenUnlearn.Models.Checkpoints;
using AlignThenUnlearn.Runtime;

namespace AlignThenUnlearn.Jobs.Artifacts;

/// <summary>`atu export`: an artifact folder from a Hugging Face snapshot (<see cref="HfFolder"/>) or from random weights
/// of a configuration (<see cref="RandomConfig"/>), with a sentence encoder when <see cref="Encoder"/> is given; or, with
/// neither, the encoder alone added to the existing folder <see cref="Out"/>. Temporary files (the staged encoder, a random
/// checkpoint, the staged artifact) live beside the output; those of an interrupted run are removed first.</summary>
public sealed record ExportJob(string? HfFolder, string? RandomConfig, ulong Seed, string? Encoder, string Out, ExportOptions Options)
{
    /// <summary>Runs the export; returns the artifact's manifest (null when only an encoder was added).</summary>
    public ArtifactManifest? Run(ExecutionDevice device, IJobReporter reporter)
    {
        if (HfFolder is null && RandomConfig is null)
        {
            var dimension = EncoderInstaller.Install(Out, Encoder!, device, Options.Force);
            reporter.Done($"added encoder '{Encoder}' ({dimension}-d, mean pooling) to {Out}");
            return null;
        }
        var (parent, name) = (Path.GetDirectoryName(Path.GetFullPath(Out))!, Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(Out))));
        Directory.CreateDirectory(parent);
        StagingArea.RemoveLeftovers(parent, name);
        // The encoder is checked before the model is exported, so a bad encoder leaves no half-made folder.
        EncoderInstaller.StagedEncoder? encoder = null;
        if (Encoder is not null)
            encoder = EncoderInstaller.Stage(Encoder, StagingArea.NewPath(parent, name, "encoder"), device);
        try
        {
            var manifest = ExportModel(StagingArea.NewPath(parent, name, "random"), reporter);
            if (encoder is not null)
            {
                EncoderInstaller.Commit(encoder, Out);
                reporter.Done($"added encoder '{Encoder}' ({encoder.Dimension}-d, mean pooling)");
            }
            return manifest;
        }
        finally
        {
            if (encoder is not null && Directory.Exists(encoder.Path)) Directory.Delete(encoder.Path, recursive: true);
        }
    }

    /// <param name="randomCheckpoint">Where a random checkpoint (--random) is written first; removed afterwards.</param>
    ArtifactManifest ExportModel(string randomCheckpoint, IJobReporter reporter)
    {
        string? temporary = null;
        var source = HfFolder;
        if (RandomConfig is not null)
        {
            var config = HfConfig.Load(RandomConfig);
            temporary = randomCheckpoint;
            RandomCheckpoint.Write(config, temporary, Seed);
            source = temporary;
        }
        try
        {
            ArtifactManifest manifest = null!;
            reporter.Track("converting weights", 1, (task, _) =>
                manifest = ArtifactExporter.Export(source!, Out, Options, (_, fraction) => task.Report(new WorkProgress(fraction))));
            reporter.Done($"wrote {Out}: {manifest.Family}, {manifest.Dtype}, {manifest.Files.Sum(f => f.Bytes):N0} bytes");
            return manifest;
        }
        finally
        {
            if (temporary is not null && Directory.Exists(temporary)) Directory.Delete(temporary, recursive: true);
        }
    }
}
