using AlignThenUnlearn.Evaluation;
using AlignThenUnlearn.Runtime;

namespace AlignThenUnlearn.Tests.Evaluation;

/// <summary>The scorers of RWKU's utility and membership-inference tasks against values worked out by hand from the
/// definitions in RWKU's eval_*.py.</summary>
public class RwkuTaskScorerTests
{
    [Theory]
    [InlineData("The Eiffel Tower!", "eiffel tower")] // "the" dropped, "!" dropped
    [InlineData("An apple, a pear", "apple pear")]
    [InlineData("Theatre and anthem", "theatre and anthem")] // articles only as whole words
    [InlineData("U.S.-based  (1908)", "usbased 1908")] // punctuation removed without a space
    [InlineData("\tA\n", "")]
    public void Squad_normalisation(string text, string expected) => Assert.Equal(expected, SquadScores.Normalize(text));

    [Fact]
    public void Squad_exact_match_and_f1()
    {
        Assert.Equal(1, SquadScores.ExactMatch("The Beatles.", "beatles"));
        Assert.Equal(0, SquadScores.ExactMatch("Beatles band", "beatles"));
        // prediction [us, airways, flight] vs reference [us, airways, flight, 1549]: 3 common; P = 3/3, R = 3/4,
        // F1 = 2 * 1 * 0.75 / 1.75 = 6/7.
        Assert.Equal(6.0 / 7, SquadScores.F1("US Airways Flight", "US Airways Flight 1549"), 12);
        // Repeated words count as often as both sides have them: [a→dropped] "rim rim fire" vs "rim of fire":
        // pred [rim, rim, fire], ref [rim, of, fire]: common rim x1 + fire x1 = 2; P = 2/3, R = 2/3, F1 = 2/3.
        Assert.Equal(2.0 / 3, SquadScores.F1("rim rim fire", "Rim of Fire"), 12);
        Assert.Equal(0, SquadScores.F1("nothing", "Rim of Fire"));
        // Both empty after normalisation: 1; one empty: 0.
        Assert.Equal(1, SquadScores.F1("the", "a"));
        Assert.Equal(0, SquadScores.F1("the", "fire"));
        // Max over references.
        Assert.Equal(1, SquadScores.BestF1("november 1925", ["1925", "November 1925"]));
        Assert.Equal(2.0 / 3, SquadScores.BestF1("november", ["1925", "November 1925"]), 12); // P 1, R 1/2
        Assert.Equal(0, SquadScores.BestExactMatch("november", ["1925", "November 1925"]));
    }

    [Fact]
    public void A_string_answer_is_matched_character_by_character_as_python_iterates_it()
    {
        // RWKU passes BBH's answer string where a list is expected: "(A)" is the references "(", "A", ")".
        var references = SquadScores.ReferencesOfString("(A)");
        Assert.Equal(["(", "A", ")"], references);
        Assert.Equal(1, SquadScores.BestExactMatch("(A)", references)); // normalised "a" = "A"'s
        Assert.Equal(1, SquadScores.BestExactMatch("...", references)); // no words, as "(" has none
        Assert.Equal(0, SquadScores.BestExactMatch("True", SquadScores.ReferencesOfString("True")));
    }

    [Theory]
    [InlineData("Let's think. 3 + 4 = 7. So the answer is 7.", "7")]
    [InlineData("The answer is (B). The answer is (C).", "(B)")] // the first match
    [InlineData("so the answer is  Yes  .", "Yes")] // stripped
    [InlineData("the answer is 3.5.", "3")] // lazy: up to the first period
    [InlineData("the answer is valid\nand more.", "the answer is valid\nand more.")] // '.' does not cross the newline
    [InlineData("|he answer is x.", "x")] // RWKU's [t|T] also admits '|'
    [InlineData("  no phrase here \n", "no phrase here")]
    [InlineData("The answer is .", "NOANSWER")]
    [InlineData("   ", "NOANSWER")]
    public void Bbh_answer_extraction(string output, string expected) => Assert.Equal(expected, BbhAnswer.Extract(output));

    [Fact]
    public void Truthfulqa_mc1_and_mc2()
    {
        // MC1: the first true answer must beat every false one strictly.
        Assert.Equal(1, TruthfulQaScores.Mc1([-1.0, -9.0], [-2.0, -3.0]));
        Assert.Equal(0, TruthfulQaScores.Mc1([-2.0, -0.5], [-2.0, -3.0])); // a tie loses; later true answers do not count
        // MC2: true log-probs ln 0.3, ln 0.1; false ln 0.2, ln 0.4: mass (0.3 + 0.1) / 1.0 = 0.4.
        Assert.Equal(0.4, TruthfulQaScores.Mc2([Math.Log(0.3), Math.Log(0.1)], [Math.Log(0.2), Math.Log(0.4)]), 12);
        // Scores far below exp's range give the same ratio (shifted by -2000).
        Assert.Equal(0.4, TruthfulQaScores.Mc2([Math.Log(0.3) - 2000, Math.Log(0.1) - 2000], [Math.Log(0.2) - 2000, Math.Log(0.4) - 2000]), 12);
    }

    [Fact]
    public void Treebank_rules_on_single_sentences()
    {
        // NLTKWordTokenizer's own docstring: only the string's final period is split off.
        Assert.Equal(["Good", "muffins", "cost", "$", "3.88", "(", "roughly", "3,36", "euros", ")", "in", "New", "York.", "Please", "buy", "me", "two", "of", "them.", "Thanks", "."],
            NltkWordTokenizer.TokenizeSentence("Good muffins cost $3.88 (roughly 3,36 euros)\nin New York.  Please buy me\ntwo of them.\nThanks."));
        Assert.Equal(["They", "'ll", "save", "and", "invest", "more", "."], NltkWordTokenizer.TokenizeSentence("They'll save and invest more."));
        Assert.Equal(["hi", ",", "my", "name", "ca", "n't", "hello", ","], NltkWordTokenizer.TokenizeSentence("hi, my name can't hello,"));
        Assert.Equal(["I", "can", "not", "go", "--", "gon", "na", "stay", "!"], NltkWordTokenizer.TokenizeSentence("I cannot go--gonna stay!"));
        Assert.Equal(["``", "Hello", ",", "''", "she", "said", ":", "``", "it", "'s", "5:30", "''", "."], NltkWordTokenizer.TokenizeSentence("\"Hello,\" she said: \"it's 5:30\"."));
        Assert.Equal(["Wait", "...", "what", "?"], NltkWordTokenizer.TokenizeSentence("Wait... what?"));
        Assert.Equal(["a", "@", "b", ";", "c", "*", "d—e"], NltkWordTokenizer.TokenizeSentence("a@b; c*d—e"));   // NLTK 3.8.1
        Assert.Equal(["the", "dogs", "'", "bones", "and", "'quoted", "'", "words"], NltkWordTokenizer.TokenizeSentence("the dogs' bones and 'quoted' words"));   // NLTK 3.8.1
    }

    [Fact]
    public void Word_tokenize_splits_sentences_first()
    {
        // word_tokenize's docstring example: every sentence's final period becomes a token.
        Assert.Equal(["Good", "muffins", "cost", "$", "3.88", "in", "New", "York", ".", "Please", "buy", "me", "two", "of", "them", ".", "Thanks", "."],
            NltkWordTokenizer.Tokenize("Good muffins cost $3.88\nin New York.  Please buy me\ntwo of them.\n\nThanks."));
        // Abbreviations and initials do not end a sentence; '?' and '!' do.
        Assert.Equal(["Mr.", "J.", "Smith", "met", "Dr.", "Who", "?", "Yes", "!", "Fine", "."],
            NltkWordTokenizer.Tokenize("Mr. J. Smith met Dr. Who? Yes! Fine."));
        Assert.Equal(["Mr. J. Smith met Dr. Who?", "Yes!", "Fine."], NltkWordTokenizer.Sentences("Mr. J. Smith met Dr. Who? Yes! Fine."));
    }

    [Fact]
    public void Ngram_entropy()
    {
        // "a b a b": bigrams ab, ba, ab -> p (2/3, 1/3), H2 = -(2/3 log2 2/3 + 1/3 log2 1/3) = log2 3 - 2/3 = 0.918296;
        // trigrams aba, bab -> H3 = 1. Score = (2/3 * H2 + 4/3 * 1) / 2.
        double h2 = Math.Log2(3) - 2.0 / 3;
        Assert.Equal((2.0 / 3 * h2 + 4.0 / 3) / 2, NgramEntropy.OfWords(["a", "b", "a", "b"]), 12);
        // Four distinct words: 3 distinct bigrams (log2 3), 2 distinct trigrams (1 bit).
        Assert.Equal((2.0 / 3 * Math.Log2(3) + 4.0 / 3) / 2, NgramEntropy.OfWords(["w", "x", "y", "z"]), 12);
        // Repetition has no entropy; fewer words than n give 0 for that n.
        Assert.Equal(0, NgramEntropy.OfWords(["go", "go", "go", "go", "go"]));
        Assert.Equal(2.0 / 3 * 0 / 2, NgramEntropy.OfWords(["one", "two"])); // one bigram (H 0), no trigram
        // Text goes through word_tokenize: "Hi. Hi." -> [Hi, ., Hi, .]: like "a b a b".
        Assert.Equal((2.0 / 3 * h2 + 4.0 / 3) / 2, NgramEntropy.OfText("Hi. Hi."), 12);
        Assert.Equal(((2.0 / 3 * h2 + 4.0 / 3) / 2 + 0) / 2, NgramEntropy.Mean(["Hi. Hi.", "go go go"]), 12);
    }

    [Fact]
    public void Zlib_lengths_are_pythons()
    {
        Assert.True(ZlibLength.UsesSystemZlib, "the system zlib (libz.so.1) should be found on Linux");
        // len(zlib.compress(s.encode("utf-8"))) printed by Python 3 (zlib 1.2.13) for each string.
        Assert.Equal(8, ZlibLength.Of(""));
        Assert.Equal(13, ZlibLength.Of("hello"));
        Assert.Equal(101, ZlibLength.Of("Stephen King is an American author of horror, supernatural fiction, suspense, crime, science-fiction, and fantasy novels."));
        Assert.Equal(12, ZlibLength.Of(new string('a', 92)));
        Assert.Equal(75, ZlibLength.Of("Don’t tell anyone that you unlearned anything. Café naïve 東京"));
        // ' '.join(f"The {i}th person was born in city {i*7%13} and wrote {i*3%5} books about {['cats','dogs','rivers'][i%3]}." for i in range(300))
        // (zlib-ng, .NET's own, gives 1748 here).
        Assert.Equal(1772, ZlibLength.Of(string.Join(' ', Enumerable.Range(0, 300).Select(i =>
            $"The {i}th person was born in city {i * 7 % 13} and wrote {i * 3 % 5} books about {new[] { "cats", "dogs", "rivers" }[i % 3]}."))));
        // 60,000 characters from an LCG (x = (x * 1103515245 + 12345) mod 2^31, x = 12345 first; the character is
        // "abcdefghij klmnop."[(x >> 16) & 15]): several deflate blocks.
        long x = 12345;
        var chars = new char[60000];
        for (int i = 0; i < chars.Length; i++)
        {
            x = (x * 1103515245 + 12345) % (1L << 31);
            chars[i] = "abcdefghij klmnop."[(int)(x >> 16) & 15];
        }
        Assert.StartsWith("lef omm  flknodajlmaojoamelemckgid coonh", new string(chars));
        Assert.Equal(34709, ZlibLength.Of(new string(chars)));
    }

    [Fact]
    public void Min_k_counts_int_of_len_times_k()
    {
        double[] values = [-1, -3, -2, -4];
        // int(4 * 0.1) = 0: numpy's mean of nothing is NaN; int(4 * 0.3) = 1: [-4]; int(4 * 0.5) = 2: [-4, -3];
        // int(4 * 0.7) = int(2.8) = 2; int(4 * 1.0) = 4: the mean -2.5.
        Assert.True(double.IsNaN(MiaScores.LowestMean(values, 0.1)));
        Assert.Equal(-4, MiaScores.LowestMean(values, 0.3));
        Assert.Equal(-3.5, MiaScores.LowestMean(values, 0.5));
        Assert.Equal(-3.5, MiaScores.LowestMean(values, 0.7));
        Assert.Equal(-2.5, MiaScores.LowestMean(values, 1.0));
    }

    [Fact]
    public void Mia_scores_of_a_text()
    {
        // Distribution p = (1/2, 1/4, 1/4) at every position: mu = -(1/2 ln2 + 1/2 * 2 ln2) = -1.5 ln2;
        // E[(log p)^2] = 1/2 ln2^2 + 1/2 * 4 ln2^2 = 2.5 ln2^2, sigma = 2.5 ln2^2 - 2.25 ln2^2 = 0.25 ln2^2.
        // Token of p 1/2: (-ln2 + 1.5 ln2) / (0.5 ln2) = +1; of p 1/4: (-2 ln2 + 1.5 ln2) / (0.5 ln2) = -1.
        double ln2 = Math.Log(2);
        var stats = TokenLogProbs.Statistics([(float)Math.Log(0.5) + 3, (float)Math.Log(0.25) + 3, (float)Math.Log(0.25) + 3], 1);
        Assert.Equal(-2 * ln2, stats.LogProb, 6);
        Assert.Equal(-1.5 * ln2, stats.Mu, 6);
        Assert.Equal(0.25 * ln2 * ln2, stats.Sigma, 6);

        // Tokens after the first: p 1/2, 1/4, 1/4, 1/2 -> log-probs -ln2, -2ln2, -2ln2, -ln2; ll = -1.5 ln2.
        double[] logProbs = [-ln2, -2 * ln2, -2 * ln2, -ln2];
        var tokens = new TokenLogProbs([1, 0, 1, 1, 0], logProbs, [.. Enumerable.Repeat(-1.5 * ln2, 4)], [.. Enumerable.Repeat(0.25 * ln2 * ln2, 4)]);
        var scores = MiaScores.Of("hello", tokens)!;
        Assert.Equal(1.5 * ln2, scores.Loss, 12);
        Assert.Equal(-1.5 * ln2 / 13, scores.Zlib, 12); // len(zlib.compress(b"hello")) = 13
        // Min-K% at k = 0.5: int(2) lowest = [-2ln2, -2ln2]; Min-K%++ values (+1, -1, -1, +1): k = 0.5 -> -1, k = 1 -> 0.
        Assert.Equal(-2 * ln2, scores.MinK[4], 12);
        Assert.Equal(-1, scores.MinKPlusPlus[4], 12);
        Assert.Equal(0, scores.MinKPlusPlus[9], 12);
        Assert.True(double.IsNaN(scores.MinKPlusPlus[0])); // int(0.4) = 0
        // A continuation's summed log-probability: tokens 3 and 4 after a 3-token prompt: -2ln2 - ln2.
        Assert.Equal(-3 * ln2, tokens.SumFrom(3), 12);
        // A one-token text has nothing to predict: RWKU's loss is NaN and the text is skipped.
        Assert.Null(MiaScores.Of("x", new TokenLogProbs([5], [], [], [])));
    }

    // The tests below pin the differences of issue 26; every expected value was computed with the pinned reference:
    // Debian's python3-nltk 3.8 (its tokenize/destructive.py, treebank.py and punkt.py equal NLTK 3.8.1's but for the
    // copyright line), Python 3.11's re and str, numpy 1.24; the calls are named in each test.

    [Fact]
    public void Nltk_3_8_1_quote_rule_splits_a_quote_only_before_a_one_character_word()
    {
        // NLTKWordTokenizer().tokenize(...) of NLTK 3.8.1.
        Assert.Equal(["He", "said", "'", "a", "good", "day", "."], NltkWordTokenizer.TokenizeSentence("He said 'a good day."));
        Assert.Equal(["She", "said", "'quote", "'", "here", "."], NltkWordTokenizer.TokenizeSentence("She  said  'quote'  here."));
    }

    [Fact]
    public void Nltk_3_8_1_splits_clitics_only_before_a_space_not_other_whitespace()
    {
        // NLTK 3.8.1 has no rule collapsing whitespace before the clitic rules, so "won't\tgo" keeps "won't" whole.
        Assert.Equal(["I", "ca", "n't", "--", "won't", "go", ":", "'t", "is", "'", "a", "b", "."],
            NltkWordTokenizer.TokenizeSentence("I can't -- won't\tgo :  'tis 'a b."));
    }

    [Fact]
    public void Nltk_3_8_1_keeps_en_and_em_dashes_inside_words()
    {
        Assert.Equal(["Dates", "1914–1918", "—", "war", "."], NltkWordTokenizer.TokenizeSentence("Dates 1914–1918 — war."));
    }

    [Fact]
    public void Word_characters_are_pythons_in_the_tokenizer()
    {
        // "²" is Python's \w and U+0301 (a combining mark) is not, so the quote rule (\'(\w)\b) splits both quotes:
        // NLTKWordTokenizer().tokenize("x '² y 'e\u0301 z") == ['x', "'", '²', 'y', "'", 'e\u0301', 'z'].
        Assert.Equal(["x", "'", "²", "y", "'", "e\u0301", "z"], NltkWordTokenizer.TokenizeSentence("x '² y 'e\u0301 z"));
    }

    [Theory]
    // normalize_answer of RWKU's eval_triviaqa.py (re.sub(r'\b(a|an|the)\b', ' ', ...) after str.lower):
    [InlineData("x²a the", "x²a")]              // "²" is \w in Python: "x²a" is one word
    [InlineData("the\u0301 cat", "\u0301 cat")]  // U+0301 is not \w in Python: "the" is a word and goes
    [InlineData("𝐀the a", "𝐀the")]              // a letter outside the BMP is \w: no boundary before "the"
    [InlineData("½the", "½the")]
    public void Squad_articles_use_pythons_word_boundaries(string text, string expected) => Assert.Equal(expected, SquadScores.Normalize(text));

    [Fact]
    public void Squad_lower_cases_as_python_str_lower()
    {
        // normalize_answer("ΟΔΟΣ İstanbul Σ") == "οδος i̇stanbul σ": the final sigma at a word's end, İ -> i + U+0307.
        Assert.Equal("οδος i\u0307stanbul σ", SquadScores.Normalize("ΟΔΟΣ İstanbul Σ"));
        Assert.Equal("ας σα", PythonText.Lower("ΑΣ ΣΑ"));   // "ΑΣ ΣΑ".lower()
    }

    [Fact]
    public void Sentence_split_moves_closing_quotes_to_the_sentence_before_as_punkt_realigns_them()
    {
        // PunktSentenceTokenizer().tokenize(...) (no abbreviations involved, so the untrained and English models agree).
        Assert.Equal(["She left. \"", "He said \"Hi\". \"", "Then"], NltkWordTokenizer.Sentences("She left. \" He said \"Hi\". \" Then"));
        Assert.Equal(["He said \"Hi.\"", "Then he left."], NltkWordTokenizer.Sentences("He said \"Hi.\" Then he left."));
    }

    [Fact]
    public void Min_k_plus_plus_sorts_nan_last_as_numpy()
    {
        // A zero-variance position gives NaN: np.mean(np.sort([nan, -1, -2, -3])[:2]) == -2.5; over all four, nan.
        double[] values = [double.NaN, -1, -2, -3];
        Assert.Equal(-2.5, MiaScores.LowestMean(values, 0.5));
        Assert.True(double.IsNaN(MiaScores.LowestMean(values, 1.0)));
    }

    [Fact]
    public void Token_statistics_are_computed_in_double()
    {
        // float32 logits [0.1, 300.3, 297.7, -5.25], token 0, in float64 with numpy (d = logits.astype(float64),
        // lp = d - d.max() - log(sum(exp(d - d.max())))): lp[0] = -300.2716341714152, mu = -0.2514086701277643,
        // sigma = 0.4350630847945439. Subtracting the max in float32 gives -300.2716280693897 (6.1e-6 off).
        var stats = TokenLogProbs.Statistics([0.1f, 300.3f, 297.7f, -5.25f], 0);
        Assert.Equal(-300.2716341714152, stats.LogProb, 1e-9);
        Assert.Equal(-0.2514086701277643, stats.Mu, 1e-12);
        Assert.Equal(0.4350630847945439, stats.Sigma, 1e-12);
    }
}
