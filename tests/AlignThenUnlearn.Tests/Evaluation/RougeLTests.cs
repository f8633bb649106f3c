using AlignThenUnlearn.Evaluation;

namespace AlignThenUnlearn.Tests.Evaluation;

/// <summary>ROUGE-L recall against values worked out by hand from the algorithm of the Python <c>rouge</c> 1.0.1
/// package (see <see cref="RougeL"/>): split on '.', drop pieces of length 0, collapse whitespace, words by single
/// spaces; per (reference sentence, prediction sentence) pair one LCS recovered by walking back from the end
/// (equal words diagonally, else up only if the cell above is strictly greater, else left); recall = |union of
/// recovered words| / |distinct reference words|. Arguments are (prediction, reference).</summary>
public class RougeLTests
{
    [Theory]
    // The examples of DESIGN.md section 4.
    [InlineData("Tim Robbins", "Tim", 1.0)]
    [InlineData("stephen king", "Stephen King", 0.0)]             // case-sensitive
    [InlineData("Stephen King, the author", "Stephen King", 0.5)] // "King," is not "King"
    [InlineData("Downey", "Robert Downey Jr.", 1.0 / 3)]          // ref "Robert Downey Jr" (the '.' splits off "")
    [InlineData("New York", "New York, New York", 2.0 / 3)]       // ref words {New, "York,", York}: distinct count 3
    [InlineData("York New", "New York", 0.5)]
    [InlineData("3.5 million", "3.5", 1.0)]                       // ref sentences "3", "5"; pred "3", "5 million"
    [InlineData("B A", "A B A", 1.0)]                             // LCS "B A"; distinct ref words {A, B}
    public void Design_examples_hold(string prediction, string reference, double expected) =>
        Assert.Equal(expected, RougeL.Recall(prediction, reference), 15);

    [Fact]
    public void Repeated_reference_words_count_once()
    {
        // ref [the, cat, the]: distinct {the, cat}, m = 2. pred [the, the]: LCS "the the", as a set {the}.
        // Recall 1/2 (with the total word count m = 3 it would be 1/3 or 2/3).
        Assert.Equal(0.5, RougeL.Recall("the the", "the cat the"), 15);
    }

    [Fact]
    public void Repeated_prediction_words_recall_nothing_extra()
    {
        // ref {Paris}, m = 1; LCS of [Paris, Paris, Paris] and [Paris] is "Paris" -> 1/1.
        Assert.Equal(1.0, RougeL.Recall("Paris Paris Paris", "Paris"), 15);
    }

    [Fact]
    public void Reference_sentences_share_one_denominator()
    {
        // "Tom Hanks. He acted." -> pieces "Tom Hanks", " He acted", "" -> sentences [Tom, Hanks], [He, acted];
        // m = |{Tom, Hanks, He, acted}| = 4. pred [Tom, Hanks]: pair 1 recovers {Tom, Hanks}, pair 2 nothing -> 2/4.
        Assert.Equal(0.5, RougeL.Recall("Tom Hanks", "Tom Hanks. He acted."), 15);
    }

    [Fact]
    public void Words_recovered_in_several_reference_sentences_count_once()
    {
        // ref sentences [A, B], [A, C]: distinct {A, B, C}, m = 3. pred [A]: both pairs recover {A}; union {A} -> 1/3
        // (adding the per-sentence LCS lengths instead would give 2/3).
        Assert.Equal(1.0 / 3, RougeL.Recall("A", "A B. A C"), 15);
    }

    [Fact]
    public void Prediction_sentences_are_matched_separately_and_pooled()
    {
        // pred "Maine. born in" -> sentences [Maine], [born, in]; ref [born, in, Maine], m = 3.
        // Pair with [Maine] recovers {Maine}; pair with [born, in] recovers {born, in}; union 3 words -> 1.
        // As one sequence "Maine born in" the LCS would be "born in" only (2/3).
        Assert.Equal(1.0, RougeL.Recall("Maine. born in", "born in Maine"), 15);
    }

    [Fact]
    public void Ties_in_the_lcs_walk_move_along_the_prediction()
    {
        // ref [A, B], m = 2; pred sentences [B, A] and [B].
        // Pair ([A, B], [B, A]): L[1][1] = 0 (A != B), L[1][2] = 1 (A = A), L[2][1] = 1 (B = B), L[2][2] = max(1, 1) = 1.
        // Walk from (2, 2): B != A; L[1][2] = 1 is not > L[2][1] = 1, so j -> 1; (2, 1): B = B, take B. -> {B}.
        // Pair ([A, B], [B]) -> {B}. Union {B} -> 1/2. (Breaking the tie the other way would recover {A}: 2/2.)
        Assert.Equal(0.5, RougeL.Recall("B A. B", "A B"), 15);
    }

    [Fact]
    public void Punctuation_other_than_the_full_stop_stays_attached()
    {
        // pred words [Stephen, King!]; ref {Stephen, King}; LCS {Stephen} -> 1/2.
        Assert.Equal(0.5, RougeL.Recall("Stephen King!", "Stephen King"), 15);
        // ref [Portland,, Maine] (the comma stays on Portland); pred has "Portland" without it: LCS {Maine} -> 1/2.
        Assert.Equal(0.5, RougeL.Recall("he was born in 1947 in Portland Maine", "Portland, Maine"), 15);
    }

    [Fact]
    public void Predictions_without_sentences_score_zero()
    {
        // "" and "..." split into pieces of length 0 only: no sentence, nothing recalled.
        Assert.Equal(0.0, RougeL.Recall("", "Stephen King"));
        Assert.Equal(0.0, RougeL.Recall("...", "Stephen King"));
        // "   " is a piece of length 3; it collapses to the empty sentence, whose one word "" is not in {Stephen, King}.
        Assert.Equal(0.0, RougeL.Recall("   ", "Stephen King"));
        Assert.Equal(0.0, RougeL.Recall("NOANSWER", "Stephen King"));
    }

    [Fact]
    public void A_whitespace_piece_is_an_empty_word()
    {
        // "Tim. " -> pieces "Tim", " " -> sentences [Tim], [""]; ref words {Tim, ""}, m = 2.
        // pred [Tim]: pair ([Tim], [Tim]) recovers {Tim}; pair ([""], [Tim]) nothing -> 1/2.
        Assert.Equal(0.5, RougeL.Recall("Tim", "Tim. "), 15);
        // pred also [Tim], [""]: the pair ([""], [""]) recovers {""} too -> 2/2.
        Assert.Equal(1.0, RougeL.Recall("Tim. ", "Tim. "), 15);
    }

    [Fact]
    public void Whitespace_is_pythons()
    {
        // Runs of tabs, newlines and spaces collapse: pred [Stephen, King] -> 2/2.
        Assert.Equal(1.0, RougeL.Recall("Stephen \t\n King", "Stephen King"), 15);
        // U+00A0 (no-break space) and U+001F (unit separator) both split in Python's str.split(); .NET's
        // char.IsWhiteSpace knows only the first. pred [Tim, Robbins] -> ref {Robbins} recovered -> 1/1.
        Assert.Equal(1.0, RougeL.Recall("Stephen\u00A0King", "King"), 15);
        Assert.Equal(1.0, RougeL.Recall("Tim\u001FRobbins", "Robbins"), 15);
    }

    [Fact]
    public void A_longer_common_subsequence_with_gaps()
    {
        // ref [A, B, C], pred [C, A, B]: the LCS is "A B" (length 2, unique) -> {A, B} -> 2/3.
        Assert.Equal(2.0 / 3, RougeL.Recall("C A B", "A B C"), 15);
        // ref [was, born, in, Bangor], pred [he, was, probably, born, near, Bangor]: LCS "was born Bangor" -> 3/4.
        Assert.Equal(0.75, RougeL.Recall("he was probably born near Bangor", "was born in Bangor"), 15);
    }

    [Theory]
    [InlineData("")]
    [InlineData(".")]
    [InlineData("..")]
    public void References_without_sentences_are_refused(string reference) =>
        Assert.Throws<ArgumentException>(() => RougeL.Recall("Stephen King", reference));

    [Fact]
    public void Sentences_follow_the_split_rules()
    {
        // "a  b.. c .\t" -> pieces "a  b", "", " c ", "\t" -> the "" is dropped; "\t" becomes the empty sentence.
        var sentences = RougeL.Sentences("a  b.. c .\t");
        Assert.Equal(3, sentences.Count);
        Assert.Equal(["a", "b"], sentences[0]);
        Assert.Equal(["c"], sentences[1]);
        Assert.Equal([""], sentences[2]);
    }
}
