using Google.Protobuf;

namespace AlignThenUnlearn.Models;

/// <summary>Piece types of <c>sentencepiece_model.proto</c> (<c>ModelProto.SentencePiece.Type</c>).</summary>
public enum SentencePieceType { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 }

/// <summary>One vocabulary entry of a SentencePiece model. For BPE models the score orders the merges:
/// of all adjacent pairs whose concatenation is a piece, the one with the highest score merges first.</summary>
public sealed record SentencePieceEntry(string Piece, float Score, SentencePieceType Type = SentencePieceType.Normal);

/// <summary>A SentencePiece BPE model as the <c>tokenizer.model</c> file of Llama-2 / Phi-3 stores it: the pieces
/// (their position is their id), the special ids and the normalizer flags. Only what a BPE tokenizer reads is
/// written; training options are left out.</summary>
public sealed record SentencePieceModel
{
    public required IReadOnlyList<SentencePieceEntry> Pieces { get; init; }
    public bool ByteFallback { get; init; } = true;
    public int UnknownId { get; init; }
    public int BeginningOfSentenceId { get; init; } = 1;
    public int EndOfSentenceId { get; init; } = 2;
    public int PadId { get; init; } = -1;
    /// <summary>Llama-2 / Phi-3 settings: a dummy "▁" before the text, whitespace kept as is, spaces escaped as "▁".</summary>
    public bool AddDummyPrefix { get; init; } = true;
    public bool RemoveExtraWhitespaces { get; init; }
    public bool EscapeWhitespaces { get; init; } = true;

    /// <summary>The Llama layout: <c>&lt;unk&gt;</c> 0, <c>&lt;s&gt;</c> 1, <c>&lt;/s&gt;</c> 2, the 256 byte pieces
    /// <c>&lt;0x00&gt;</c>..<c>&lt;0xFF&gt;</c> at 3..258, then <paramref name="pieces"/> from id 259 on.</summary>
    public static SentencePieceModel LlamaLayout(IEnumerable<(string Piece, float Score)> pieces)
    {
        var all = new List<SentencePieceEntry>
        {
            new("<unk>", 0, SentencePieceType.Unknown),
            new("<s>", 0, SentencePieceType.Control),
            new("</s>", 0, SentencePieceType.Control),
        };
        for (int b = 0; b < 256; b++) all.Add(new SentencePieceEntry(ByteFallbackPiece((byte)b), 0, SentencePieceType.Byte));
        all.AddRange(pieces.Select(p => new SentencePieceEntry(p.Piece, p.Score)));
        return new SentencePieceModel { Pieces = all };
    }

    /// <summary>The name of the byte-fallback piece of byte <paramref name="value"/>, e.g. <c>&lt;0x0A&gt;</c>.</summary>
    public static string ByteFallbackPiece(byte value) => $"<0x{value:X2}>";

    /// <summary>The serialized <c>ModelProto</c>.</summary>
    public byte[] ToBytes()
    {
        // Field numbers from google/sentencepiece src/sentencepiece_model.proto. Every field that matters is written
        // explicitly, because several proto2 defaults (remove_extra_whitespaces = true, model_type = UNIGRAM) are not
        // what a Llama-style model wants.
        var unk = Pieces[UnknownId].Piece;
        var trainer = Message(o =>
        {
            o.WriteTag(3, WireFormat.WireType.Varint); o.WriteEnum(2); // model_type = BPE
            o.WriteTag(4, WireFormat.WireType.Varint); o.WriteInt32(Pieces.Count); // vocab_size
            o.WriteTag(35, WireFormat.WireType.Varint); o.WriteBool(ByteFallback);
            o.WriteTag(40, WireFormat.WireType.Varint); o.WriteInt32(UnknownId);
            o.WriteTag(41, WireFormat.WireType.Varint); o.WriteInt32(BeginningOfSentenceId);
            o.WriteTag(42, WireFormat.WireType.Varint); o.WriteInt32(EndOfSentenceId);
            o.WriteTag(43, WireFormat.WireType.Varint); o.WriteInt32(PadId);
            o.WriteTag(45, WireFormat.WireType.LengthDelimited); o.WriteString(unk);
            if (BeginningOfSentenceId >= 0) { o.WriteTag(46, WireFormat.WireType.LengthDelimited); o.WriteString(Pieces[BeginningOfSentenceId].Piece); }
            if (EndOfSentenceId >= 0) { o.WriteTag(47, WireFormat.WireType.LengthDelimited); o.WriteString(Pieces[EndOfSentenceId].Piece); }
        });
        var normalizer = Message(o =>
        {
            o.WriteTag(1, WireFormat.WireType.LengthDelimited); o.WriteString("identity");
            o.WriteTag(3, WireFormat.WireType.Varint); o.WriteBool(AddDummyPrefix);
            o.WriteTag(4, WireFormat.WireType.Varint); o.WriteBool(RemoveExtraWhitespaces);
            o.WriteTag(5, WireFormat.WireType.Varint); o.WriteBool(EscapeWhitespaces);
        });
        return Message(o =>
        {
            foreach (var p in Pieces)
            {
                var piece = Message(po =>
                {
                    po.WriteTag(1, WireFormat.WireType.LengthDelimited); po.WriteString(p.Piece);
                    po.WriteTag(2, WireFormat.WireType.Fixed32); po.WriteFloat(p.Score);
                    po.WriteTag(3, WireFormat.WireType.Varint); po.WriteEnum((int)p.Type);
                });
                o.WriteTag(1, WireFormat.WireType.LengthDelimited); o.WriteBytes(ByteString.CopyFrom(piece));
            }
            o.WriteTag(2, WireFormat.WireType.LengthDelimited); o.WriteBytes(ByteString.CopyFrom(trainer));
            o.WriteTag(3, WireFormat.WireType.LengthDelimited); o.WriteBytes(ByteString.CopyFrom(normalizer));
        });
    }

    public void Save(string path) => File.WriteAllBytes(path, ToBytes());

    static byte[] Message(Action<CodedOutputStream> write)
    {
        using var buffer = new MemoryStream();
        using (var output = new CodedOutputStream(buffer, leaveOpen: true)) write(output);
        return buffer.ToArray();
    }
}
