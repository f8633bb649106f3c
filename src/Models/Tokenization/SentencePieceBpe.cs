using System.Text;

namespace AlignThenUnlearn.Models;

/// <summary>SentencePiece-style BPE with byte fallback, the model of Llama-2, Mistral and Phi-3, read either from a
/// <c>tokenizer.model</c> (<see cref="FromSentencePiece"/>) or from a Hugging Face <c>tokenizer.json</c> BPE with
/// <c>byte_fallback</c> (<see cref="FromMerges"/>). It encodes text that is already normalized (spaces as "▁", the
/// dummy prefix in place; <see cref="SentencePieceLlmTokenizer"/> does that).
///
/// Both references run the same loop (google/sentencepiece <c>bpe_model.cc</c>, Hugging Face's <c>word.rs</c>
/// <c>merge_all</c>): start from single characters, put every adjacent pair that merges into a priority queue, and
/// repeatedly merge the best pair, the LEFTMOST of equally good ones, re-queueing the pairs the merged symbol forms
/// with its neighbours. They differ in what "best" means:
/// <list type="bullet">
/// <item>SentencePiece: a pair merges when the concatenation is a piece; its priority is that piece's score.</item>
/// <item>Hugging Face: a pair merges when it is in the merges list; its priority is its index there (first is best).</item>
/// </list>
/// transformers' converter (<c>generate_merges</c>) lists, for each piece, every split into two pieces, sorted by
/// the piece's score (descending), then by the lengths of the left and right part (longest first), then by piece id.
/// So the two rules agree wherever the best pair is unique or the tied pairs are the same pair at different places
/// (runs of one character), and disagree only when two DIFFERENT pairs with equal score compete: different pieces
/// with the same score (a SentencePiece trainer gives every piece its own score, so trained models have none), or two
/// splits of one piece that overlap, as in [a, aa, a] for "aaa". Each form follows its own reference there, which is
/// what the checkpoint's own loader would do.
///
/// Where the forms differ is also when unknown characters fall back to bytes: SentencePiece merges first and spells
/// the characters left unknown in bytes (<c>&lt;0xXX&gt;</c> pieces); Hugging Face turns them into byte symbols
/// before merging (the same result unless the merges list joins byte pieces, which converted models never do).
/// SentencePiece's USER_DEFINED pieces are matched first (longest) and never merged; UNUSED pieces that a merge makes
/// are split back into the two symbols that made them.</summary>
public sealed class SentencePieceBpe
{
    /// <summary>What merging two adjacent symbols makes: lower <see cref="Priority"/> merges first.</summary>
    readonly record struct Merge(double Priority, int Id);

    struct Symbol
    {
        public int Id;       // -1: a character that is no piece (SentencePiece form), spelled in bytes at the end
        public int Start;    // the characters [Start, End) of the text
        public int End;
        public int Prev;
        public int Next;
        public int Size;     // initial symbols merged into this one; 0 once merged into its left neighbour
        public bool Frozen;  // a user-defined piece, never merged
    }

    readonly string?[] _pieces;
    readonly Dictionary<string, int> _vocabulary;
    readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _lookup;
    readonly Dictionary<(int Left, int Right), Merge> _merges;
    readonly int[]? _idOfByte;         // byte -> its <0xXX> piece (-1 where missing); null without byte fallback
    readonly int[] _byteOfId;          // id -> the byte of a <0xXX> piece, -1 for other ids
    readonly bool[]? _unused;          // id -> an UNUSED piece (SentencePiece form only)
    readonly AddedTokenMatcher? _userDefined;
    readonly bool _fallBackBeforeMerging;
    readonly bool _fuseUnknown;

    SentencePieceBpe(string?[] pieces, Dictionary<string, int> vocabulary, Dictionary<(int, int), Merge> merges, bool byteFallback,
        int? unknownId, bool[]? unused, AddedTokenMatcher? userDefined, bool fallBackBeforeMerging, bool fuseUnknown)
    {
        _pieces = pieces;
        _vocabulary = vocabulary;
        _lookup = vocabulary.GetAlternateLookup<ReadOnlySpan<char>>();
        _merges = merges;
        _byteOfId = new int[pieces.Length];
        Array.Fill(_byteOfId, -1);
        if (byteFallback)
        {
            _idOfByte = new int[256];
            for (int b = 0; b < 256; b++)
            {
                _idOfByte[b] = vocabulary.TryGetValue(SentencePieceModel.ByteFallbackPiece((byte)b), out var id) ? id : -1;
                if (_idOfByte[b] >= 0) _byteOfId[_idOfByte[b]] = b;
            }
        }
        UnknownId = unknownId;
        _unused = unused;
        _userDefined = userDefined;
        _fallBackBeforeMerging = fallBackBeforeMerging;
        _fuseUnknown = fuseUnknown;
    }

    /// <summary>The id given to text that is neither a piece nor spelled in byte pieces; null when there is none.</summary>
    public int? UnknownId { get; }
    public bool ByteFallback => _idOfByte is not null;
    public IReadOnlyDictionary<string, int> Vocabulary => _vocabulary;
    /// <summary>One more than the largest id.</summary>
    public int Count => _pieces.Length;

    /// <summary>The piece of <paramref name="id"/>; null for an id that no piece has.</summary>
    public string? PieceOf(int id) => (uint)id < (uint)_pieces.Length ? _pieces[id] : null;

    /// <summary>The byte a <c>&lt;0xXX&gt;</c> piece stands for (with byte fallback on), else -1.</summary>
    public int ByteOf(int id) => (uint)id < (uint)_byteOfId.Length ? _byteOfId[id] : -1;

    /// <summary>SentencePiece's rule on a <c>tokenizer.model</c>. A pair of symbols merges when the concatenation is a
    /// NORMAL, USER_DEFINED or UNUSED piece, with that piece's score. The pairs are listed here once for all: every
    /// split of such a piece into two strings a symbol can hold (a piece that merging makes, or a single character
    /// that is a piece). A character that is no piece never merges here; SentencePiece would merge it if a piece
    /// held it, but its trainer makes every character of a piece a piece itself.</summary>
    public static SentencePieceBpe FromSentencePiece(SentencePieceModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var pieces = new string?[model.Pieces.Count];
        var vocabulary = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int id = 0; id < pieces.Length; id++)
        {
            var piece = model.Pieces[id].Piece;
            if (piece.Length == 0) throw new InvalidDataException($"piece {id} is empty.");
            if (!vocabulary.TryAdd(piece, id)) throw new InvalidDataException($"piece '{piece}' is defined twice (ids {vocabulary[piece]} and {id}).");
            pieces[id] = piece;
        }
        static bool Mergeable(SentencePieceType type) => type is SentencePieceType.Normal or SentencePieceType.UserDefined or SentencePieceType.Unused;
        var lookup = vocabulary.GetAlternateLookup<ReadOnlySpan<char>>();
        int SymbolId(ReadOnlySpan<char> text) =>
            lookup.TryGetValue(text, out var id) && (Mergeable(model.Pieces[id].Type) || IsOneCharacter(text)) ? id : -1;

        var merges = new Dictionary<(int, int), Merge>();
        for (int id = 0; id < pieces.Length; id++)
        {
            var entry = model.Pieces[id];
            if (!Mergeable(entry.Type)) continue;
            var piece = entry.Piece.AsSpan();
            for (int split = 1; split < piece.Length; split++)
            {
                if (char.IsLowSurrogate(piece[split]) && char.IsHighSurrogate(piece[split - 1])) continue;
                int left = SymbolId(piece[..split]), right = SymbolId(piece[split..]);
                if (left >= 0 && right >= 0) merges[(left, right)] = new Merge(-(double)entry.Score, id);
            }
        }
        if (model.ByteFallback)
            for (int b = 0; b < 256; b++)
                if (!vocabulary.TryGetValue(SentencePieceModel.ByteFallbackPiece((byte)b), out var id) || model.Pieces[id].Type != SentencePieceType.Byte)
                    throw new InvalidDataException($"byte_fallback is set but there is no BYTE piece {SentencePieceModel.ByteFallbackPiece((byte)b)}.");
        var unused = model.Pieces.Select(p => p.Type == SentencePieceType.Unused).ToArray();
        var userDefined = model.Pieces.Select((p, id) => (p, id)).Where(x => x.p.Type == SentencePieceType.UserDefined)
            .Select(x => new AddedToken(x.id, x.p.Piece)).ToList();
        return new SentencePieceBpe(pieces, vocabulary, merges, model.ByteFallback, model.UnknownId,
            unused.Any(u => u) ? unused : null, userDefined.Count > 0 ? new AddedTokenMatcher(userDefined) : null,
            fallBackBeforeMerging: false, fuseUnknown: true);
    }

    /// <summary>Hugging Face's BPE on a <c>tokenizer.json</c> model: the pair (left, right) of the n-th merge merges
    /// into the piece left + right with priority n. A character that is no piece becomes its byte pieces before
    /// merging (with <paramref name="byteFallback"/> and all its byte pieces present), else the unknown token
    /// (consecutive ones fused into one with <paramref name="fuseUnknown"/>), else nothing.</summary>
    public static SentencePieceBpe FromMerges(IEnumerable<KeyValuePair<string, int>> vocabulary, IReadOnlyList<(string Left, string Right)> merges,
        bool byteFallback, string? unknownToken, bool fuseUnknown)
    {
        ArgumentNullException.ThrowIfNull(vocabulary);
        ArgumentNullException.ThrowIfNull(merges);
        var ids = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var (piece, id) in vocabulary)
        {
            if (id < 0) throw new InvalidDataException($"vocabulary piece '{piece}' has the negative id {id}.");
            if (!ids.TryAdd(piece, id)) throw new InvalidDataException($"vocabulary piece '{piece}' is listed twice.");
        }
        var pieces = new string?[ids.Count == 0 ? 0 : ids.Values.Max() + 1];
        foreach (var (piece, id) in ids)
        {
            if (pieces[id] is not null) throw new InvalidDataException($"vocabulary id {id} is both '{pieces[id]}' and '{piece}'.");
            pieces[id] = piece;
        }
        int IdOf(string piece, int rank) => ids.TryGetValue(piece, out var id) ? id
            : throw new InvalidDataException($"merge {rank} ('{merges[rank].Left}' '{merges[rank].Right}') needs '{piece}', which is not in the vocabulary.");
        var table = new Dictionary<(int, int), Merge>();
        for (int rank = 0; rank < merges.Count; rank++)
        {
            var (left, right) = merges[rank];
            table[(IdOf(left, rank), IdOf(right, rank))] = new Merge(rank, IdOf(left + right, rank)); // a repeated pair keeps its last rank, as in Hugging Face
        }
        int? unknownId = unknownToken is null ? null
            : ids.TryGetValue(unknownToken, out var unk) ? unk : throw new InvalidDataException($"the unknown token '{unknownToken}' is not in the vocabulary.");
        return new SentencePieceBpe(pieces, ids, table, byteFallback, unknownId, unused: null, userDefined: null,
            fallBackBeforeMerging: true, fuseUnknown);
    }

    /// <summary>Encodes the normalized text <c>text[start..end)</c>, appending the ids and, for each, the characters
    /// of <paramref name="text"/> it stands for (every byte piece of a character spans the whole character).</summary>
    public void Encode(string text, int start, int end, List<int> ids, List<TokenSpan> spans)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (start < 0 || end > text.Length || start > end) throw new ArgumentOutOfRangeException(nameof(end), $"[{start}, {end}) is not a range of the text.");
        var symbols = InitialSymbols(text, start, end);
        if (symbols.Length == 0) return;
        var splits = MergeAll(symbols);
        bool previousUnknown = false;
        for (int i = 0; i >= 0; i = symbols[i].Next)
        {
            var symbol = symbols[i];
            if (symbol.Id >= 0)
            {
                Emit(symbol.Id, symbol.Start, symbol.End, splits, ids, spans);
                previousUnknown = false;
            }
            else previousUnknown = AppendUnknownCharacter(text, symbol.Start, symbol.End, previousUnknown, ids, spans);
        }
    }

    Symbol[] InitialSymbols(string text, int start, int end)
    {
        var symbols = new List<Symbol>(end - start);
        for (int i = start; i < end;)
        {
            var userDefined = _userDefined?.LongestMatchAt(text, i, end);
            int length = userDefined?.Content.Length ?? (char.IsHighSurrogate(text[i]) && i + 1 < end && char.IsLowSurrogate(text[i + 1]) ? 2 : 1);
            int id = _lookup.TryGetValue(text.AsSpan(i, length), out var found) ? found : -1;
            if (id >= 0 || !_fallBackBeforeMerging)
                symbols.Add(new Symbol { Id = id, Start = i, End = i + length, Size = 1, Frozen = userDefined is not null });
            else if (TryByteIds(text.AsSpan(i, length), out var byteIds))
                foreach (var byteId in byteIds) symbols.Add(new Symbol { Id = byteId, Start = i, End = i + length, Size = 1 });
            else if (UnknownId is int unk)
            {
                // The fused unknown token grows over the next unknown character.
                if (_fuseUnknown && symbols.Count > 0 && symbols[^1].Id == unk && symbols[^1].End == i)
                    symbols[^1] = symbols[^1] with { End = i + length };
                else symbols.Add(new Symbol { Id = unk, Start = i, End = i + length, Size = 1 });
            }
            i += length;
        }
        var array = symbols.ToArray();
        for (int i = 0; i < array.Length; i++)
        {
            array[i].Prev = i - 1;
            array[i].Next = i + 1 < array.Length ? i + 1 : -1;
        }
        return array;
    }

    /// <summary>The merge loop. Returns, for the UNUSED pieces it made, the two symbols that made them.</summary>
    Dictionary<int, (int Left, int Right)>? MergeAll(Symbol[] symbols)
    {
        // Ties in priority go to the smaller left index: the leftmost pair (a merged symbol keeps its left index).
        var queue = new PriorityQueue<(int Left, int Right, int Size, int Merged), (double Priority, int Left)>();
        Dictionary<int, (int, int)>? splits = null;
        void Enqueue(int left, int right)
        {
            if (left < 0 || right < 0) return;
            var (l, r) = (symbols[left], symbols[right]);
            if (l.Frozen || r.Frozen || l.Id < 0 || r.Id < 0 || !_merges.TryGetValue((l.Id, r.Id), out var merge)) return;
            queue.Enqueue((left, right, l.Size + r.Size, merge.Id), (merge.Priority, left));
            if (_unused?[merge.Id] == true) (splits ??= [])[merge.Id] = (l.Id, r.Id);
        }
        for (int i = 0; i + 1 < symbols.Length; i++) Enqueue(i, i + 1);
        while (queue.TryDequeue(out var pair, out _))
        {
            ref var left = ref symbols[pair.Left];
            ref var right = ref symbols[pair.Right];
            // A pair is out of date once either symbol has merged with another neighbour since it was queued.
            if (left.Size == 0 || right.Size == 0 || left.Next != pair.Right || left.Size + right.Size != pair.Size) continue;
            left.Id = pair.Merged;
            left.End = right.End;
            left.Size = pair.Size;
            left.Next = right.Next;
            if (right.Next >= 0) symbols[right.Next].Prev = pair.Left;
            right.Size = 0;
            Enqueue(left.Prev, pair.Left);
            Enqueue(pair.Left, left.Next);
        }
        return splits;
    }

    /// <summary>Appends a merged symbol; an UNUSED piece is split back (recursively) into what made it.</summary>
    void Emit(int id, int start, int end, Dictionary<int, (int Left, int Right)>? splits, List<int> ids, List<TokenSpan> spans)
    {
        if (splits is not null && splits.TryGetValue(id, out var split))
        {
            int middle = start + _pieces[split.Left]!.Length; // pieces of the SentencePiece form are spelled as in the text
            Emit(split.Left, start, middle, splits, ids, spans);
            Emit(split.Right, middle, end, splits, ids, spans);
            return;
        }
        ids.Add(id);
        spans.Add(new TokenSpan(start, end));
    }

    /// <summary>A character that is no piece after merging (SentencePiece form): its byte pieces, else the unknown
    /// token, fused with an unknown token right before it. Returns whether it became the unknown token.</summary>
    bool AppendUnknownCharacter(string text, int start, int end, bool previousUnknown, List<int> ids, List<TokenSpan> spans)
    {
        if (TryByteIds(text.AsSpan(start, end - start), out var byteIds))
        {
            foreach (var byteId in byteIds)
            {
                ids.Add(byteId);
                spans.Add(new TokenSpan(start, end));
            }
            return false;
        }
        if (UnknownId is not int unk) return false;
        if (previousUnknown && _fuseUnknown) spans[^1] = spans[^1] with { End = end };
        else
        {
            ids.Add(unk);
            spans.Add(new TokenSpan(start, end));
        }
        return true;
    }

    bool TryByteIds(ReadOnlySpan<char> character, out int[] byteIds)
    {
        byteIds = [];
        if (_idOfByte is null) return false;
        Span<byte> bytes = stackalloc byte[8];
        int count = Encoding.UTF8.GetBytes(character, bytes);
        var result = new int[count];
        for (int i = 0; i < count; i++)
            if ((result[i] = _idOfByte[bytes[i]]) < 0) return false;
        byteIds = result;
        return true;
    }

    static bool IsOneCharacter(ReadOnlySpan<char> text) =>
        text.Length == 1 || (text.Length == 2 && char.IsHighSurrogate(text[0]) && char.IsLowSurrogate(text[1]));
}
