using System.Text.Json;
using AlignThenUnlearn.Models;
using AlignThenUnlearn.Tests.Support;

namespace AlignThenUnlearn.Tests.Models;

/// <summary>Hugging Face config.json files of each family (values as published on the model cards' repositories),
/// Hugging Face's defaults for absent keys, refusal of what the decoder does not implement, and writing.</summary>
public sealed class HfConfigTests
{
    private const string Source = "/checkpoints/model/config.json";

    private const string Phi3Mini4k = """
        {"_name_or_path": "Phi-3-mini-4k-instruct", "architectures": ["Phi3ForCausalLM"], "attention_bias": false,
         "attention_dropout": 0.0, "bos_token_id": 1, "embd_pdrop": 0.0, "eos_token_id": 32000, "hidden_act": "silu",
         "hidden_size": 3072, "initializer_range": 0.02, "intermediate_size": 8192, "max_position_embeddings": 4096,
         "model_type": "phi3", "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 32,
         "original_max_position_embeddings": 4096, "pad_token_id": 32000, "resid_pdrop": 0.0, "rms_norm_eps": 1e-05,
         "rope_scaling": null, "rope_theta": 10000.0, "sliding_window": 2047, "tie_word_embeddings": false,
         "torch_dtype": "bfloat16", "transformers_version": "4.40.2", "use_cache": true, "vocab_size": 32064}
        """;

    private const string Llama3Instruct = """
        {"architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0, "bos_token_id": 128000,
         "eos_token_id": 128009, "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02,
         "intermediate_size": 14336, "max_position_embeddings": 8192, "model_type": "llama", "num_attention_heads": 32,
         "num_hidden_layers": 32, "num_key_value_heads": 8, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
         "rope_scaling": null, "rope_theta": 500000.0, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
         "use_cache": true, "vocab_size": 128256}
        """;

    private const string MistralV01 = """
        {"architectures": ["MistralForCausalLM"], "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
         "hidden_size": 4096, "intermediate_size": 14336, "max_position_embeddings": 32768, "model_type": "mistral",
         "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8, "rms_norm_eps": 1e-05,
         "rope_theta": 10000.0, "sliding_window": 4096, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
         "vocab_size": 32000}
        """;

    private const string Qwen2Half = """
        {"architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643, "eos_token_id": 151645,
         "hidden_act": "silu", "hidden_size": 896, "initializer_range": 0.02, "intermediate_size": 4864,
         "max_position_embeddings": 32768, "max_window_layers": 24, "model_type": "qwen2", "num_attention_heads": 14,
         "num_hidden_layers": 24, "num_key_value_heads": 2, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
         "sliding_window": 32768, "tie_word_embeddings": true, "torch_dtype": "bfloat16", "use_cache": true,
         "use_sliding_window": false, "vocab_size": 151936}
        """;

    [Fact]
    public void Phi3_mini_4k_reads_as_published()
    {
        var c = HfConfig.Parse(Phi3Mini4k, Source);
        Assert.Equal(ModelFamily.Phi3, c.Family);
        Assert.Equal((3072, 32, 32, 32, 8192, 32064), (c.HiddenSize, c.NumHiddenLayers, c.NumAttentionHeads, c.NumKeyValueHeads, c.IntermediateSize, c.VocabSize));
        Assert.Equal((1e-5, 10000.0, 4096, false, false), (c.RmsNormEps, c.RopeTheta, c.MaxPositionEmbeddings, c.TieWordEmbeddings, c.AttentionBias));
        Assert.Null(c.HeadDim);
        Assert.Equal(96, c.HeadDimension);   // 3072 / 32
        Assert.Equal(2047, c.SlidingWindow);
        Assert.Equal((1, 32000), (c.BosTokenId, c.PadTokenId));
        Assert.Equal([32000], c.EosTokenIds);
        Assert.Equal("bfloat16", c.TorchDtype);
    }

    [Fact]
    public void Llama3_reads_grouped_kv_heads_and_its_theta()
    {
        var c = HfConfig.Parse(Llama3Instruct, Source);
        Assert.Equal(ModelFamily.Llama, c.Family);
        Assert.Equal((32, 8, 4, 128), (c.NumAttentionHeads, c.NumKeyValueHeads, c.GroupSize, c.HeadDimension));
        Assert.Equal(500000.0, c.RopeTheta);
        Assert.Null(c.SlidingWindow);
        Assert.Equal(128000, c.BosTokenId);
        Assert.Equal([128009], c.EosTokenIds);
    }

    [Fact]
    public void Eos_token_id_may_be_a_list()
    {
        var c = HfConfig.Parse(Llama3Instruct.Replace("\"eos_token_id\": 128009", "\"eos_token_id\": [128001, 128008, 128009]"), Source);
        Assert.Equal([128001, 128008, 128009], c.EosTokenIds);
    }

    [Fact]
    public void Mistral_keeps_its_sliding_window()
    {
        var v01 = HfConfig.Parse(MistralV01, Source);
        Assert.Equal(ModelFamily.Mistral, v01.Family);
        Assert.Equal(4096, v01.SlidingWindow);
        var v02 = HfConfig.Parse(MistralV01.Replace("\"sliding_window\": 4096", "\"sliding_window\": null"), Source);
        Assert.Null(v02.SlidingWindow);
    }

    [Fact]
    public void Qwen2_has_qkv_biases_and_slides_only_when_told_to()
    {
        var c = HfConfig.Parse(Qwen2Half, Source);
        Assert.Equal(ModelFamily.Qwen2, c.Family);
        Assert.True(c.AttentionBias);
        Assert.True(c.TieWordEmbeddings);
        Assert.Equal((14, 2, 64), (c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDimension));
        Assert.Null(c.SlidingWindow);   // use_sliding_window false: sliding_window is not applied
        var sliding = HfConfig.Parse(Qwen2Half.Replace("\"use_sliding_window\": false", "\"use_sliding_window\": true"), Source);
        Assert.Equal(32768, sliding.SlidingWindow);
    }

    [Fact]
    public void Absent_keys_take_the_families_defaults()
    {
        const string required = """
            "hidden_size": 256, "num_hidden_layers": 3, "num_attention_heads": 8, "intermediate_size": 512, "vocab_size": 1000
            """;
        var llama = HfConfig.Parse($$"""{"model_type": "llama", {{required}}}""", Source);
        Assert.Equal(8, llama.NumKeyValueHeads);   // num_key_value_heads defaults to num_attention_heads
        Assert.Null(llama.HeadDim);
        Assert.Equal(32, llama.HeadDimension);
        // LlamaConfig's defaults: rms_norm_eps 1e-6, rope_theta 10000, max_position_embeddings 2048, untied embeddings.
        Assert.Equal((1e-6, 10000.0, 2048, false), (llama.RmsNormEps, llama.RopeTheta, llama.MaxPositionEmbeddings, llama.TieWordEmbeddings));
        Assert.Empty(llama.EosTokenIds);
        Assert.Null(llama.BosTokenId);
        Assert.Null(llama.SlidingWindow);

        var phi3 = HfConfig.Parse($$"""{"model_type": "phi3", "num_key_value_heads": null, "head_dim": null, {{required}}}""", Source);
        Assert.Equal(8, phi3.NumKeyValueHeads);
        Assert.Equal((1e-5, 4096), (phi3.RmsNormEps, phi3.MaxPositionEmbeddings));   // Phi3Config's defaults
    }

    [Fact]
    public void An_explicit_head_dim_wins_over_hidden_size_over_heads()
    {
        // Mistral-Nemo: hidden 5120 with 32 heads of 128.
        var c = HfConfig.Parse("""
            {"model_type": "mistral", "hidden_size": 5120, "num_hidden_layers": 40, "num_attention_heads": 32,
             "num_key_value_heads": 8, "head_dim": 128, "intermediate_size": 14336, "vocab_size": 131072}
            """, Source);
        Assert.Equal(128, c.HeadDimension);
    }

    [Theory]
    [InlineData("""{"type": "longrope", "long_factor": [1.0], "short_factor": [1.0]}""", "longrope")]
    [InlineData("""{"type": "su", "long_factor": [1.0], "short_factor": [1.0]}""", "su")]
    [InlineData("""{"type": "linear", "factor": 2.0}""", "linear")]
    [InlineData("""{"type": "dynamic", "factor": 2.0}""", "dynamic")]
    [InlineData("""{"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0}""", "llama3")]
    [InlineData("""{"rope_type": "default", "factor": 2.0}""", "factor")]
    [InlineData("\"su\"", "su")]
    [InlineData("""{"type": "longrope"}""", "longrope")]
    [InlineData("""{"rope_type": "yarn"}""", "yarn")]
    public void Rope_scaling_is_refused_naming_the_file_and_the_value(string scaling, string named)
    {
        var error = Assert.Throws<ModelFormatException>(() => HfConfig.Parse(Phi3Mini4k.Replace("\"rope_scaling\": null", $"\"rope_scaling\": {scaling}"), Source));
        Assert.Contains(Source, error.Message);
        Assert.Contains("rope_scaling", error.Message);
        Assert.Contains(named, error.Message);
    }

    [Fact]
    public void Rope_of_the_default_type_is_plain_rope()
    {
        var scaled = HfConfig.Parse(Phi3Mini4k.Replace("\"rope_scaling\": null", """ "rope_scaling": {"rope_type": "default"} """), Source);
        Assert.Equal(10000.0, scaled.RopeTheta);
        // transformers 5 states theta inside rope_parameters.
        var v5 = HfConfig.Parse(Llama3Instruct.Replace("\"rope_theta\": 500000.0", """ "rope_parameters": {"rope_type": "default", "rope_theta": 250000.0} """), Source);
        Assert.Equal(250000.0, v5.RopeTheta);
        var yarn = Assert.Throws<ModelFormatException>(() =>
            HfConfig.Parse(Llama3Instruct.Replace("\"rope_theta\": 500000.0", """ "rope_parameters": {"rope_type": "yarn", "factor": 4.0} """), Source));
        Assert.Contains("yarn", yarn.Message);
    }

    [Theory]
    [InlineData("\"model_type\": \"phi3\"", "\"model_type\": \"gpt2\"", "'gpt2'")]
    [InlineData("\"model_type\": \"phi3\",", "", "model_type")]
    [InlineData("\"hidden_size\": 3072,", "", "'hidden_size'")]
    [InlineData("\"hidden_size\": 3072", "\"hidden_size\": \"3072\"", "'hidden_size'")]
    [InlineData("\"num_hidden_layers\": 32", "\"num_hidden_layers\": 0", "'num_hidden_layers'")]
    [InlineData("\"num_key_value_heads\": 32", "\"num_key_value_heads\": 5", "num_key_value_heads 5")]
    [InlineData("\"hidden_act\": \"silu\"", "\"hidden_act\": \"gelu_new\"", "gelu_new")]
    [InlineData("\"sliding_window\": 2047", "\"sliding_window\": 2047, \"partial_rotary_factor\": 0.75", "partial_rotary_factor")]
    [InlineData("\"eos_token_id\": 32000", "\"eos_token_id\": [32000, -1]", "'eos_token_id'")]
    [InlineData("\"tie_word_embeddings\": false", "\"tie_word_embeddings\": \"no\"", "'tie_word_embeddings'")]
    [InlineData("\"vocab_size\": 32064}", "\"vocab_size\": 32064", "JSON")]
    public void Unsupported_or_broken_configs_are_refused_naming_the_file(string from, string to, string named)
    {
        var json = Phi3Mini4k.Replace(from, to);
        Assert.NotEqual(Phi3Mini4k, json);
        var error = Assert.Throws<ModelFormatException>(() => HfConfig.Parse(json, Source));
        Assert.Contains(Source, error.Message);
        Assert.Contains(named, error.Message);
    }

    [Fact]
    public void An_unknown_model_type_lists_the_supported_ones()
    {
        var error = Assert.Throws<ModelFormatException>(() => HfConfig.Parse(Phi3Mini4k.Replace("\"phi3\"", "\"gemma\""), Source));
        foreach (var family in new[] { "phi3", "llama", "mistral", "qwen2" }) Assert.Contains(family, error.Message);
    }

    [Fact]
    public void Llama_biases_are_refused()
    {
        var error = Assert.Throws<ModelFormatException>(() => HfConfig.Parse(Llama3Instruct.Replace("\"attention_bias\": false", "\"attention_bias\": true"), Source));
        Assert.Contains("attention_bias", error.Message);
        error = Assert.Throws<ModelFormatException>(() => HfConfig.Parse(Llama3Instruct.Replace("\"attention_bias\": false", "\"mlp_bias\": true"), Source));
        Assert.Contains("mlp_bias", error.Message);
    }

    [Theory]
    [InlineData(Phi3Mini4k)]
    [InlineData(Llama3Instruct)]
    [InlineData(MistralV01)]
    [InlineData(Qwen2Half)]
    public void A_written_config_reads_back_as_the_same_configuration(string published)
    {
        var config = HfConfig.Parse(published, Source);
        var json = HfConfig.ToJson(config);
        AssertSameConfig(config, HfConfig.Parse(json, "written"));

        // The written file speaks Hugging Face's names: checked on the JSON itself.
        using var written = JsonDocument.Parse(json);
        using var original = JsonDocument.Parse(published);
        foreach (var key in new[] { "model_type", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                     "intermediate_size", "vocab_size", "max_position_embeddings", "tie_word_embeddings", "eos_token_id", "bos_token_id" })
            Assert.Equal(original.RootElement.GetProperty(key).ToString(), written.RootElement.GetProperty(key).ToString());
        Assert.Equal(original.RootElement.GetProperty("architectures")[0].GetString(), written.RootElement.GetProperty("architectures")[0].GetString());
        Assert.Equal(JsonValueKind.Null, written.RootElement.GetProperty("rope_scaling").ValueKind);
    }

    [Fact]
    public void A_list_of_eos_ids_and_a_head_dim_are_written_back()
    {
        var config = HfConfig.Parse(Llama3Instruct, Source) with { EosTokenIds = [128001, 128009], HeadDim = 64 };
        using var written = JsonDocument.Parse(HfConfig.ToJson(config));
        Assert.Equal("[128001,128009]", written.RootElement.GetProperty("eos_token_id").GetRawText().Replace(" ", "").Replace("\n", ""));
        Assert.Equal(64, written.RootElement.GetProperty("head_dim").GetInt32());
    }

    [Fact]
    public void Configs_load_from_a_folder_and_save_atomically()
    {
        using var temp = new TempFolder();
        var config = HfConfig.Parse(Qwen2Half, Source);
        HfConfig.Save(config, temp.File("config.json"));
        Assert.Equal(new[] { "config.json" }, temp.FileNames());
        AssertSameConfig(config, HfConfig.Load(temp.Path));
        Assert.Throws<FileNotFoundException>(() => HfConfig.Load(temp.File("nothing")));
    }

    [Fact]
    public void The_tiny_configurations_in_models_have_the_shapes_ci_relies_on()
    {
        var phi3 = HfConfig.Load(RepositoryFiles.Path("models", "tiny-phi3.json"));
        Assert.Equal(ModelFamily.Phi3, phi3.Family);
        Assert.Equal((64, 2, 4, 4, 128, 512, 256), (phi3.HiddenSize, phi3.NumHiddenLayers, phi3.NumAttentionHeads, phi3.NumKeyValueHeads,
            phi3.IntermediateSize, phi3.VocabSize, phi3.MaxPositionEmbeddings));
        Assert.Null(phi3.SlidingWindow);

        var llama = HfConfig.Load(RepositoryFiles.Path("models", "tiny-llama-gqa.json"));
        Assert.Equal(ModelFamily.Llama, llama.Family);
        Assert.Equal((4, 2, 2, 16), (llama.NumAttentionHeads, llama.NumKeyValueHeads, llama.GroupSize, llama.HeadDimension));

        var qwen2 = HfConfig.Load(RepositoryFiles.Path("models", "tiny-qwen2.json"));
        Assert.Equal(ModelFamily.Qwen2, qwen2.Family);
        Assert.True(qwen2.AttentionBias && qwen2.TieWordEmbeddings);
        Assert.Equal((4, 2), (qwen2.NumAttentionHeads, qwen2.NumKeyValueHeads));
    }

    private static void AssertSameConfig(DecoderConfig expected, DecoderConfig actual)
    {
        Assert.Equal(expected.EosTokenIds, actual.EosTokenIds);
        Assert.Equal(expected with { EosTokenIds = [] }, actual with { EosTokenIds = [] });
    }
}
