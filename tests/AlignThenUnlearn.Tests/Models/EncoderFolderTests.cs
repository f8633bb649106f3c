using AlignThenUnlearn.Models;
using AlignThenUnlearn.Tests.Support;

namespace AlignThenUnlearn.Tests.Models;

/// <summary>Encoder settings read from a sentence-transformers snapshot (tokenizer_config.json, tokenizer.json,
/// special_tokens_map.json, sentence_bert_config.json, modules.json, 1_Pooling/config.json), and what is refused.</summary>
public sealed class EncoderFolderTests : IDisposable
{
    readonly TempFolder _temp = new();
    public void Dispose() => _temp.Dispose();

    string Snapshot(string name, params (string File, string Json)[] files)
    {
        var folder = _temp.File(name);
        foreach (var (file, json) in files)
        {
            var path = Path.Combine(folder, file);
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            File.WriteAllText(path, json);
        }
        return folder;
    }

    const string MeanPooling = """{"word_embedding_dimension": 384, "pooling_mode_cls_token": false, "pooling_mode_mean_tokens": true, "pooling_mode_max_tokens": false, "pooling_mode_mean_sqrt_len_tokens": false}""";
    const string Modules = """[{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}, {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}, {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]""";

    [Fact]
    public void A_minilm_style_snapshot_gives_the_minilm_settings()
    {
        var folder = Snapshot("minilm",
            ("tokenizer_config.json", """{"do_lower_case": true, "strip_accents": null, "tokenize_chinese_chars": true, "cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]", "unk_token": "[UNK]", "model_max_length": 512}"""),
            ("sentence_bert_config.json", """{"max_seq_length": 256, "do_lower_case": false}"""),
            ("modules.json", Modules), ("1_Pooling/config.json", MeanPooling));
        Assert.Equal(new EncoderSettings(), EncoderFolder.LoadSettings(folder));
    }

    [Fact]
    public void Special_tokens_may_be_strings_or_added_token_objects_and_max_seq_length_wins_over_model_max_length()
    {
        var folder = Snapshot("mpnet-style",
            ("tokenizer_config.json", """{"do_lower_case": true, "cls_token": {"content": "<s>", "lstrip": false, "__type": "AddedToken"}, "sep_token": "</s>", "model_max_length": 512}"""),
            ("special_tokens_map.json", """{"pad_token": {"content": "<pad>"}, "unk_token": "<unk>", "sep_token": "[not used: tokenizer_config.json has it]"}"""),
            ("sentence_bert_config.json", """{"max_seq_length": 384}"""),
            ("modules.json", Modules), ("1_Pooling/config.json", MeanPooling));
        var settings = EncoderFolder.LoadSettings(folder);
        Assert.Equal(("<s>", "</s>", "<pad>", "<unk>"), (settings.ClsToken, settings.SepToken, settings.PadToken, settings.UnkToken));
        Assert.Equal(384, settings.MaxLength);
        // Without sentence_bert_config.json the tokenizer's model_max_length applies.
        File.Delete(Path.Combine(folder, "sentence_bert_config.json"));
        Assert.Equal(512, EncoderFolder.LoadSettings(folder).MaxLength);
    }

    [Fact]
    public void Tokenizer_json_normalizer_flags_decide_over_tokenizer_config()
    {
        var folder = Snapshot("normalizer",
            ("tokenizer_config.json", """{"do_lower_case": false}"""),
            ("tokenizer.json", """{"normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": false, "strip_accents": false, "lowercase": true}, "model": {"type": "WordPiece", "continuing_subword_prefix": "##", "max_input_chars_per_word": 100}}"""));
        var settings = EncoderFolder.LoadSettings(folder);
        Assert.True(settings.LowerCase);
        Assert.False(settings.StripsAccents);
        Assert.False(settings.TokenizeChineseChars);
        // sentence-transformers' own do_lower_case lower-cases a cased tokenizer's input without stripping accents.
        var cased = Snapshot("cased", ("tokenizer_config.json", """{"do_lower_case": false}"""), ("sentence_bert_config.json", """{"do_lower_case": true}"""));
        Assert.True(EncoderFolder.LoadSettings(cased).LowerCase);
        Assert.False(EncoderFolder.LoadSettings(cased).StripsAccents);
    }

    [Theory]
    [InlineData("1_Pooling/config.json", """{"pooling_mode_cls_token": true, "pooling_mode_mean_tokens": false}""", "pooling_mode_cls_token")]
    [InlineData("1_Pooling/config.json", """{"pooling_mode_mean_tokens": true, "pooling_mode_max_tokens": true}""", "pooling_mode_max_tokens")]
    [InlineData("modules.json", """[{"path": "", "type": "sentence_transformers.models.Transformer"}, {"path": "2_Dense", "type": "sentence_transformers.models.Dense"}]""", "Dense")]
    [InlineData("tokenizer.json", """{"model": {"type": "BPE"}}""", "WordPiece")]
    [InlineData("tokenizer.json", """{"normalizer": {"type": "Sequence", "normalizers": []}}""", "BertNormalizer")]
    public void Encoders_this_project_cannot_reproduce_are_refused_naming_the_file(string file, string json, string named)
    {
        var folder = Snapshot("refused", (file, json));
        var error = Assert.Throws<ModelFormatException>(() => EncoderFolder.LoadSettings(folder));
        Assert.Contains(Path.Combine(folder, file), error.Message);
        Assert.Contains(named, error.Message);
    }

    [Fact]
    public void Encoder_json_round_trips_and_an_older_one_gets_the_defaults_of_newer_fields()
    {
        var folder = Snapshot("settings");
        var settings = new EncoderSettings(LowerCase: false, MaxLength: 384, StripAccents: true, TokenizeChineseChars: false, ClsToken: "<s>", SepToken: "</s>", PadToken: "<pad>", UnkToken: "<unk>");
        EncoderFolder.SaveSettings(folder, settings);
        Assert.Equal(settings, EncoderFolder.LoadSettings(folder));
        // The first encoder.json format had only these three fields.
        File.WriteAllText(Path.Combine(folder, EncoderFolder.SettingsFile), """{"pooling": "mean", "lower_case": true, "max_length": 256}""");
        Assert.Equal(new EncoderSettings(), EncoderFolder.LoadSettings(folder));
    }

    [Fact]
    public void The_model_is_found_at_the_top_or_under_onnx_and_copies_carry_their_settings()
    {
        var folder = Snapshot("hub", ("onnx/model.onnx", "not really a model"), ("vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]"),
            ("sentence_bert_config.json", """{"max_seq_length": 128}"""));
        Assert.Equal(Path.Combine(folder, "onnx", "model.onnx"), EncoderFolder.ModelPath(folder));
        var copy = _temp.File("copy");
        EncoderFolder.CopyTo(folder, copy);
        Assert.Equal(["encoder.json", "model.onnx", "vocab.txt"], Directory.GetFiles(copy).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        Assert.Equal(128, EncoderFolder.LoadSettings(copy).MaxLength);
        Assert.Throws<FileNotFoundException>(() => EncoderFolder.ModelPath(Snapshot("empty", ("vocab.txt", ""))));
    }
}
