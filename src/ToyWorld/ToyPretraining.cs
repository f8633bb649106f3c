using AlignThenUnlearn.Evaluation;
using System.Text.Json.Nodes;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Models.Checkpoints;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Unlearning;

namespace AlignThenUnlearn.ToyWorld;

/// <summary>How the toy world's model is made: its shape (a small Llama-family decoder whose vocabulary is the world
/// tokenizer's) and its training run. The defaults are tuned so that a model pre-trained on a world of
/// <c>atu toy world --seed 1</c> answers the RWKU probes (docs/reproducing.md, "The toy world") within minutes on two CPU cores.</summary>
public sealed record ToyPretrainingSettings
{
    public int HiddenSize { get; init; } = 128;
    /// <summary>At least 3: the toy ATU preset reads hidden_states[2].</summary>
    public int Layers { get; init; } = 4;
    public int Heads { get; init; } = 4;
    public int KeyValueHeads { get; init; } = 2;
    public int IntermediateSize { get; init; } = 384;
    /// <summary>Longer than the longest training sequence (a five-shot multiple-choice prompt).</summary>
    public int MaxPositions { get; init; } = 512;

    public long Steps { get; init; } = 1600;
    /// <summary>Tokens per batch (sequences times the longest of them, padding included): sequences of similar length
    /// are batched together, so a short question does not pay for a long multiple-choice prompt.</summary>
    public int BatchTokens { get; init; } = 2048;
    /// <summary>The peak rate. 3e-3 left the model guessing most facts after as many steps (a third of the QA probes
    /// right); 1e-3 learns them.</summary>
    public double LearningRate { get; init; } = 1e-3;
    public long WarmupSteps { get; init; } = 50;
    /// <summary>The cosine decay ends at this fraction of the peak rate.</summary>
    public double FloorFactor { get; init; } = 0.1;
    public double WeightDecay { get; init; } = 0.01;
    public double MaxGradNorm { get; init; } = 1.0;
    /// <summary>Each batch runs as this many pieces at once, one core each at one intra-op thread (<see cref="TrainerOptions.ConcurrentPieces"/>):
    /// about 1.6x the steps per second of one piece on the 2-core machine (measured 2026-12-07), and the same weights on any machine, since the
    /// pieces' gradients are added in a fixed order (more intra-op threads would make ONNX Runtime's sums vary).</summary>
    public int ConcurrentPieces { get; init; } = 2;
    /// <summary>Seeds the initial weights and the data order.</summary>
    public int Seed { get; init; } = 1;
    public long CheckpointEvery { get; init; } = 250;
    /// <summary>Times each corpus passage occurs per pass over the training set. A passage states seven facts in
    /// about 75 tokens; a question states one in about 35, so passages are the cheapest repetitions of the facts.</summary>
    public int CorpusRepeats { get; init; } = 1;
    /// <summary>Times each training multiple-choice question occurs per pass: picking the letter of the choice that
    /// matches a known fact is a skill of its own, learnt only after the facts are.</summary>
    public int ChoiceRepeats { get; init; } = 1;

    /// <summary>The model's configuration for a world tokenizer: Llama layout, vocabulary and special ids from the tokenizer.</summary>
    public DecoderConfig ModelConfig(LlmTokenizer tokenizer) => new()
    {
        Family = ModelFamily.Llama,
        HiddenSize = HiddenSize,
        NumHiddenLayers = Layers,
        NumAttentionHeads = Heads,
        NumKeyValueHeads = KeyValueHeads,
        IntermediateSize = IntermediateSize,
        VocabSize = tokenizer.VocabularySize,
        MaxPositionEmbeddings = MaxPositions,
        BosTokenId = tokenizer.BosId,
        EosTokenIds = tokenizer.EosId is int eos ? [eos] : [],
        PadTokenId = tokenizer.EosId,
    };

    public OptimizerSettings Optimizer => new AdamWSettings(LearningRate: LearningRate, WeightDecay: WeightDecay, MaxGradNorm: MaxGradNorm);
    public LearningRateSchedule Schedule => new WarmupCosineSchedule(Math.Min(WarmupSteps, Math.Max(0, Steps - 1)), Math.Max(Steps, 1), FloorFactor);
}

/// <summary>A token sequence to train on and which of its tokens are predicted (the loss is on those only).</summary>
public sealed record TrainingSequence(int[] Ids, bool[] Predicted)
{
    /// <summary>Every token after the first is predicted.</summary>
    public static TrainingSequence AllTokens(int[] ids) => new(ids, [.. ids.Select((_, i) => i > 0)]);
}

/// <summary>The toy model's training text, tokenized: every corpus passage (all tokens), every training question as
/// RWKU puts its probes (the chat prompt of <see cref="TrainingQuestion.Prompt"/>, then the answer and the end of the
/// turn, loss on the answer part only) and every training multiple-choice question in RWKU's five-shot MMLU layout
/// (loss on the six answer letters only). The prompts are masked because the model is only ever asked to continue
/// them: predicting the templates and the names in a question teaches it nothing it is tested on, and the answer
/// tokens would be a small share of an all-token loss.</summary>
public static class ToyTrainingSet
{
    /// <param name="corpusRepeats">Times each corpus passage is listed (first, before the questions).</param>
    /// <param name="choiceRepeats">Times each multiple-choice question is listed (last).</param>
    public static IReadOnlyList<TrainingSequence> Build(string worldFolder, LlmTokenizer tokenizer, int corpusRepeats = 1, int choiceRepeats = 1)
    {
        if (corpusRepeats < 1) throw new ArgumentOutOfRangeException(nameof(corpusRepeats), corpusRepeats, "at least once");
        if (choiceRepeats < 1) throw new ArgumentOutOfRangeException(nameof(choiceRepeats), choiceRepeats, "at least once");
        var end = tokenizer.GetId(Phi3StyleTokenizerFiles.End);
        var endOfText = tokenizer.EosId ?? throw new InvalidDataException($"the tokenizer of '{worldFolder}' has no end-of-text token");
        var sequences = new List<TrainingSequence>();
        var passages = WorldFolder.ReadCorpus(worldFolder).Select(p => TrainingSequence.AllTokens([.. tokenizer.EncodeToIds(p.Text), endOfText])).ToList();
        for (int k = 0; k < corpusRepeats; k++) sequences.AddRange(passages);
        foreach (var question in WorldFolder.ReadTrainingQuestions(worldFolder))
            sequences.Add(Answered(tokenizer, question.Prompt, question.Answer, end, endOfText));
        var letters = MmluPrompts.AnswerTokenIds(tokenizer);
        var choices = WorldFolder.ReadTrainingChoices(worldFolder).Select(question =>
            LettersPredicted(tokenizer, Answered(tokenizer, MmluPrompts.For(question), MmluPrompts.Letters[question.Answer], end, endOfText), letters, question)).ToList();
        for (int k = 0; k < choiceRepeats; k++) sequences.AddRange(choices);
        return sequences;
    }

    /// <summary>The prompt as RWKU renders it, then the answer, <c>&lt;|end|&gt;</c> (the end of the chat turn, where
    /// <c>atu generate</c> stops) and <c>&lt;|endoftext|&gt;</c> (the EOS, where RWKU's generation stops). The answer
    /// follows the suffix after a space, as the tokenizer learnt it; the prompt's own tokens must come first unchanged,
    /// so that the model learns to continue exactly the ids it is given at evaluation.</summary>
    static TrainingSequence Answered(LlmTokenizer tokenizer, RwkuPrompt prompt, string answer, int end, int endOfText)
    {
        var promptText = prompt.Render(tokenizer.ChatFormat);
        var promptIds = tokenizer.EncodeToIds(promptText);
        var answered = tokenizer.EncodeToIds(promptText + (prompt.Suffix.Length == 0 ? answer : " " + answer));
        if (answered.Length <= promptIds.Length || !answered.AsSpan(0, promptIds.Length).SequenceEqual(promptIds))
            throw new InvalidDataException($"the tokenizer does not encode the prompt \"{promptText}\" the same way when the answer \"{answer}\" follows it");
        int[] ids = [.. answered, end, endOfText];
        return new TrainingSequence(ids, [.. ids.Select((_, i) => i >= promptIds.Length)]);
    }

    /// <summary>Predicts the letter after each "Answer:" (the five solved examples and the question) instead of the
    /// whole answer part: the letters are what RWKU scores, and the examples' letters are free extra practice.</summary>
    static TrainingSequence LettersPredicted(LlmTokenizer tokenizer, TrainingSequence answered, int[] letters, MmluQuestion question)
    {
        var ids = answered.Ids;
        var predicted = new bool[ids.Length];
        int found = 0;
        for (int i = 1; i < ids.Length; i++)
            if (Array.IndexOf(letters, ids[i]) >= 0 && tokenizer.Decode(ids[Math.Max(0, i - 3)..i]).EndsWith(RwkuPrompts.AnswerSuffix, StringComparison.Ordinal))
            {
                predicted[i] = true;
                found++;
            }
        int last = Array.FindLastIndex(predicted, p => p);
        if (found != question.Examples.Count + 1 || last < 0 || ids[last] != letters[question.Answer])
            throw new InvalidDataException($"the multiple-choice question \"{question.Question}\" does not encode its answer letters as the letter ids RWKU scores");
        return new TrainingSequence(ids, predicted);
    }
}

/// <summary>Batches of similar-length sequences under a token budget, in a reproducible order: the shuffled stream of
/// <see cref="DataOrder"/> is cut into windows, each window sorted by length and packed greedily into batches of at
/// most <see cref="BatchTokens"/> tokens (rows times the longest row), and the batches of a window visited in a
/// shuffled order. Inputs as <see cref="TokenBatcher"/> makes them: <c>input_ids</c> right-padded, <c>loss_mask</c> 1
/// at position t when token t+1 is predicted.</summary>
public sealed class LengthBatches : IBatchSource
{
    readonly IReadOnlyList<TrainingSequence> _sequences;
    readonly DataOrder _order;
    readonly int _window;
    readonly string _fingerprint;
    long _windowIndex = -1;
    List<int[]> _batches = [];
    int[] _batchOrder = [];
    public int BatchTokens { get; }
    public int PadId { get; }
    public long Seed { get; }
    /// <summary>Windows started before the current one, and batches handed out of the current one.</summary>
    public long Window { get; private set; }
    public int BatchInWindow { get; private set; }

    public LengthBatches(IReadOnlyList<TrainingSequence> sequences, int batchTokens, long seed, int maxLength, int padId, int window = 1024)
    {
        if (sequences.Count == 0) throw new ArgumentException("there are no sequences to train on");
        for (int i = 0; i < sequences.Count; i++)
        {
            if (sequences[i].Ids.Length < 2 || sequences[i].Predicted.Length != sequences[i].Ids.Length)
                throw new ArgumentException($"sequence {i} has fewer than two tokens or a mask of another length");
            if (sequences[i].Ids.Length > maxLength)
                throw new ArgumentException($"sequence {i} has {sequences[i].Ids.Length} tokens, more than the maximum length {maxLength}");
            if (sequences[i].Ids.Length > batchTokens)
                throw new ArgumentException($"sequence {i} has {sequences[i].Ids.Length} tokens, more than a batch of {batchTokens} tokens holds");
        }
        (_sequences, BatchTokens, PadId, Seed) = (sequences, batchTokens, padId, seed);
        _window = Math.Min(window, sequences.Count);
        _order = new DataOrder(sequences.Count, seed);
        _fingerprint = Fingerprint(sequences);
    }

    public IReadOnlyDictionary<string, HostTensor> Next()
    {
        Load(Window);
        if (BatchInWindow == _batches.Count)
        {
            Window++;
            BatchInWindow = 0;
            Load(Window);
        }
        var rows = _batches[_batchOrder[BatchInWindow++]].Select(i => _sequences[i]).ToList();
        int length = rows.Max(r => r.Ids.Length);
        var ids = new long[rows.Count * length];
        var mask = new float[rows.Count * length];
        Array.Fill(ids, PadId);
        for (int b = 0; b < rows.Count; b++)
            for (int t = 0; t < rows[b].Ids.Length; t++)
            {
                ids[b * length + t] = rows[b].Ids[t];
                if (t + 1 < rows[b].Ids.Length && rows[b].Predicted[t + 1]) mask[b * length + t] = 1;
            }
        return new Dictionary<string, HostTensor>
        {
            [TokenBatcher.InputIds] = HostTensor.Of(ids, rows.Count, length),
            [TokenBatcher.LossMask] = HostTensor.Of(mask, rows.Count, length),
        };
    }

    /// <summary>The batches of window <paramref name="window"/> (sequence indices), made on first use.</summary>
    void Load(long window)
    {
        if (window == _windowIndex) return;
        var members = Enumerable.Range(0, _window).Select(k => _order[window * _window + k])
            .OrderBy(i => _sequences[i].Ids.Length).ThenBy(i => i).ToList();
        var batches = new List<int[]>();
        var current = new List<int>();
        foreach (var i in members)
        {
            // Sorted ascending, so the newest member is the longest of the batch.
            if (current.Count > 0 && (current.Count + 1) * _sequences[i].Ids.Length > BatchTokens)
            {
                batches.Add([.. current]);
                current.Clear();
            }
            current.Add(i);
        }
        batches.Add([.. current]);
        var shuffle = new DataOrder(batches.Count, unchecked(Seed * 31 + window + 1));
        (_windowIndex, _batches, _batchOrder) = (window, batches, shuffle.Permutation(0));
    }

    public JsonObject SaveState() => new()
    {
        ["seed"] = Seed, ["sequences"] = _sequences.Count, ["fingerprint"] = _fingerprint, ["batch_tokens"] = BatchTokens, ["window"] = _window,
        ["window_index"] = Window, ["batch_in_window"] = BatchInWindow,
    };

    /// <summary>Continues at the saved position; refuses a state saved for other sequences or settings.</summary>
    public void RestoreState(JsonObject state)
    {
        var expected = SaveState();
        foreach (var key in new[] { "seed", "sequences", "fingerprint", "batch_tokens", "window" })
            if (state[key]?.ToJsonString() != expected[key]!.ToJsonString())
                throw new InvalidOperationException($"the checkpoint's data order has {key} {state[key]?.ToJsonString() ?? "(none)"}, this run's {expected[key]!.ToJsonString()}: it was saved for other data or settings");
        Window = state["window_index"]?.GetValue<long>() ?? throw new InvalidOperationException("the checkpoint's data order has no window index");
        BatchInWindow = state["batch_in_window"]?.GetValue<int>() ?? throw new InvalidOperationException("the checkpoint's data order has no batch position");
    }

    /// <summary>FNV-1a over lengths, tokens and masks: tells whether a checkpoint was made with the same sequences.</summary>
    static string Fingerprint(IReadOnlyList<TrainingSequence> sequences)
    {
        ulong h = 14695981039346656037;
        void Add(int v) { foreach (var b in BitConverter.GetBytes(v)) h = (h ^ b) * 1099511628211; }
        foreach (var s in sequences)
        {
            Add(s.Ids.Length);
            for (int t = 0; t < s.Ids.Length; t++) Add(s.Predicted[t] ? s.Ids[t] : ~s.Ids[t]);
        }
        return h.ToString("x16");
    }
}

/// <summary>Pre-trains the toy world's model (<c>atu toy pretrain</c>): a randomly initialised Llama-family decoder
/// trained with next-token cross-entropy on <see cref="ToyTrainingSet"/>, exported as an artifact folder with the
/// world's tokenizer and the all-MiniLM-L6-v2 encoder, ready for evaluation and Align-then-Unlearn.</summary>
public static class ToyPretraining
{
    /// <summary>The folder beside the output that holds a run in progress (checkpoints for --resume); removed once the
    /// artifact folder is complete.</summary>
    public static string TrainingFolder(string artifactsOut) => Path.TrimEndingDirectorySeparator(Path.GetFullPath(artifactsOut)) + ".training";

    /// <summary>Trains and exports; returns the artifact folder. The artifact folder appears complete or not at all;
    /// the checkpoints of an unfinished run stay in <see cref="TrainingFolder"/>, from where <paramref name="resume"/>
    /// continues it. On a CPU device with one intra-op thread the same settings give bit-identical weights; with
    /// more threads ONNX Runtime's kernels do not (measured: weights differ after 40 steps).</summary>
    /// <param name="force">Replace an existing artifact folder, and start afresh over an unfinished run's checkpoints
    /// (unless resuming).</param>
    public static string Run(string worldFolder, string artifactsOut, ToyPretrainingSettings settings, ExecutionDevice device,
        bool resume = false, bool force = false, Action<TrainingProgress>? progress = null, Action<string>? stage = null)
    {
        var tokenizer = OpenWorld(worldFolder);
        OutputPaths.RequireApart(("--out", artifactsOut), ("--world", worldFolder));
        OutputPaths.RequireApart(("the training folder", TrainingFolder(artifactsOut)), ("--world", worldFolder));
        if ((Directory.Exists(artifactsOut) || File.Exists(artifactsOut)) && !force)
            throw new IOException($"'{artifactsOut}' already exists; choose another output folder or pass --force to replace it");
        var training = TrainingFolder(artifactsOut);
        var checkpoints = Path.Combine(training, "checkpoints");
        if (Directory.Exists(training) && !resume)
        {
            if (!force) throw new IOException($"'{training}' holds an unfinished pre-training run; pass --resume to continue it or --force to start afresh");
            Directory.Delete(training, recursive: true);
        }

        RecordOrCompareSettings(training, checkpoints, settings, worldFolder, resume);

        stage?.Invoke("tokenizing the training set");
        var config = settings.ModelConfig(tokenizer);
        var sequences = ToyTrainingSet.Build(worldFolder, tokenizer, settings.CorpusRepeats, settings.ChoiceRepeats);
        var batches = new LengthBatches(sequences, settings.BatchTokens, settings.Seed, config.MaxPositionEmbeddings, config.PadTokenId ?? 0);

        stage?.Invoke(FormattableString.Invariant($"training on {sequences.Count} sequences, {sequences.Sum(s => s.Ids.Length)} tokens (longest {sequences.Max(s => s.Ids.Length)})"));
        using var store = CausalLmTrainer.RandomParameters(device, config, settings.Seed);
        var options = new TrainerOptions
        {
            Steps = settings.Steps,
            Schedule = settings.Schedule,
            CheckpointFolder = checkpoints,
            CheckpointEvery = settings.CheckpointEvery,
            KeepCheckpoints = 1,
            Resume = resume,
            RandomSeed = (ulong)settings.Seed,
            ConcurrentPieces = settings.ConcurrentPieces,
        };
        using (var trainer = new CausalLmTrainer(store, config, settings.Optimizer, options))
            trainer.Train(batches, progress);

        stage?.Invoke("exporting");
        var hf = Path.Combine(training, "hf");
        if (Directory.Exists(hf)) Directory.Delete(hf, recursive: true);
        Directory.CreateDirectory(hf);
        HfConfig.Save(config, Path.Combine(hf, HfConfig.FileName));
        store.Save(Path.Combine(hf, SafetensorsCheckpoint.SingleFileName), new Dictionary<string, string> { ["format"] = "pt" });
        var tokenizerFolder = Path.Combine(worldFolder, WorldFolder.TokenizerFolderName);
        foreach (var file in Directory.GetFiles(tokenizerFolder))
            File.Copy(file, Path.Combine(hf, Path.GetFileName(file)));

        using (var staged = StagedFolder.Create(artifactsOut, force))
        {
            // The exporter stages and commits on its own; aimed at our (empty) staging folder, it fills it in place,
            // and the encoder joins before anything appears at the output path.
            ArtifactExporter.Export(hf, staged.Staging, new ExportOptions { Force = true });
            stage?.Invoke("installing the sentence encoder");
            EncoderInstaller.Install(staged.Staging, EncoderInstaller.MiniLm, device, force: false);
            staged.Commit();
        }
        Directory.Delete(training, recursive: true);
        return artifactsOut;
    }

    /// <summary>The file in the training folder that records the settings of the run in progress.</summary>
    public const string SettingsFile = "settings.json";

    /// <summary>A fresh run records every setting that changes its weights (the whole <see cref="ToyPretrainingSettings"/>
    /// and a fingerprint of the world's training files and tokenizer); a resume is refused when any differs, so that
    /// `--resume` with another --steps or another world cannot continue silently.</summary>
    static void RecordOrCompareSettings(string training, string checkpoints, ToyPretrainingSettings settings, string worldFolder, bool resume)
    {
        var current = new System.Text.Json.Nodes.JsonObject();
        foreach (var property in typeof(ToyPretrainingSettings).GetProperties().Where(p => p.CanWrite))   // the settings, not what derives from them
            current[property.Name] = System.Text.Json.JsonSerializer.SerializeToNode(property.GetValue(settings));
        var tokenizerFolder = Path.Combine(worldFolder, WorldFolder.TokenizerFolderName);
        current["world"] = RecordedSettings.Fingerprint(
            new[] { WorldFolder.CorpusFile, WorldFolder.TrainingQuestionsFile, WorldFolder.TrainingChoicesFile }.Select(f => Path.Combine(worldFolder, f))
                .Concat(Directory.GetFiles(tokenizerFolder).Order(StringComparer.Ordinal)));
        var path = Path.Combine(training, SettingsFile);
        if (resume && File.Exists(path))
        {
            RecordedSettings.RequireSame(path, current, $"the pre-training run in '{training}'");
            return;
        }
        if (resume && Directory.Exists(checkpoints) && Directory.EnumerateFileSystemEntries(checkpoints).Any())
            throw new InvalidOperationException($"the pre-training run in '{training}' records no settings ({SettingsFile}; an older atu started it), so a resume cannot be checked; start afresh with --force");
        Directory.CreateDirectory(training);
        RecordedSettings.Record(path, current);
    }

    /// <summary>The world's tokenizer, after checking that the folder holds a world.</summary>
    static LlmTokenizer OpenWorld(string worldFolder)
    {
        if (!Directory.Exists(worldFolder))
            throw new DirectoryNotFoundException($"world folder '{worldFolder}' does not exist; make one with `atu toy world --out {worldFolder}`");
        foreach (var file in new[] { WorldFolder.CorpusFile, WorldFolder.TrainingQuestionsFile, WorldFolder.TrainingChoicesFile })
            if (!File.Exists(Path.Combine(worldFolder, file)))
                throw new FileNotFoundException($"'{worldFolder}' is not a toy world: '{Path.Combine(worldFolder, file)}' is missing", Path.Combine(worldFolder, file));
        var tokenizerFolder = Path.Combine(worldFolder, WorldFolder.TokenizerFolderName);
        if (!Directory.Exists(tokenizerFolder))
            throw new DirectoryNotFoundException($"the world's tokenizer folder '{tokenizerFolder}' does not exist");
        var tokenizer = LlmTokenizer.Load(tokenizerFolder);
        if (tokenizer.ChatFormat == ChatFormat.None)
            throw new InvalidDataException($"the tokenizer in '{tokenizerFolder}' has no chat format; the toy model is trained on chat prompts");
        return tokenizer;
    }
}
