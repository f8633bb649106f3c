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

    /// <summary>Reads a <c>tokenizer.model</c>. Fields absent from the file take the proto2 defaults of
    /// <c>sentencepiece_model.proto</c>. Only what encoding with SentencePiece's BPE needs is kept; a model this
    /// project cannot encode exactly (another model type, whitespace as suffix, a normalization rule table) is
    /// refused with <see cref="NotSupportedException"/>, a malformed one with <see cref="InvalidDataException"/>.</summary>
    public static SentencePieceModel Load(string path)
    {
        try
        {
            return FromBytes(File.ReadAllBytes(path));
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new InvalidDataException($"'{path}' is not a SentencePiece model (ModelProto): {e.Message}", e);
        }
        catch (NotSupportedException e)
        {
            throw new NotSupportedException($"'{path}': {e.Message}", e);
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"'{path}': {e.Message}", e);
        }
    }

    public static SentencePieceModel FromBytes(byte[] bytes)
    {
        var pieces = new List<SentencePieceEntry>();
        int modelType = 1; // UNIGRAM
        bool byteFallback = false, suffix = false, addDummyPrefix = true, removeExtraWhitespaces = true, escapeWhitespaces = true;
        int bos = 1, eos = 2, pad = -1;
        string normalizerName = "";
        int charsMapLength = 0;
        ReadMessage(ByteString.CopyFrom(bytes), (field, input) =>
        {
            switch (field)
            {
                case 1:
                    string piece = "";
                    float score = 0;
                    var type = SentencePieceType.Normal;
                    ReadMessage(input.ReadBytes(), (f, i) =>
                    {
                        switch (f)
                        {
                            case 1: piece = i.ReadString(); return true;
                            case 2: score = i.ReadFloat(); return true;
                            case 3: type = (SentencePieceType)i.ReadEnum(); return true;
                            default: return false;
                        }
                    });
                    pieces.Add(new SentencePieceEntry(piece, score, type));
                    return true;
                case 2:
                    ReadMessage(input.ReadBytes(), (f, i) =>
                    {
                        switch (f)
                        {
                            case 3: modelType = i.ReadEnum(); return true;
                            case 24: suffix = i.ReadBool(); return true;
                            case 35: byteFallback = i.ReadBool(); return true;
                            case 41: bos = i.ReadInt32(); return true;
                            case 42: eos = i.ReadInt32(); return true;
                            case 43: pad = i.ReadInt32(); return true;
                            default: return false;
                        }
                    });
                    return true;
                case 3:
                    ReadMessage(input.ReadBytes(), (f, i) =>
                    {
                        switch (f)
                        {
                            case 1: normalizerName = i.ReadString(); return true;
                            case 2: charsMapLength = i.ReadBytes().Length; return true;
                            case 3: addDummyPrefix = i.ReadBool(); return true;
                            case 4: removeExtraWhitespaces = i.ReadBool(); return true;
                            case 5: escapeWhitespaces = i.ReadBool(); return true;
                            default: return false;
                        }
                    });
                    return true;
                default:
                    return false;
            }
        });
        if (modelType != 2) throw new NotSupportedException($"model_type is {modelType}; only BPE (2) models are supported.");
        if (suffix) throw new NotSupportedException("treat_whitespace_as_suffix is set, which no Llama-family model uses and is not supported.");
        if (charsMapLength > 0)
            throw new NotSupportedException($"the normalizer '{normalizerName}' has a character map; only the identity normalizer (Llama-2, Mistral, Phi-3) is supported.");
        var unknown = pieces.FindIndex(p => p.Type == SentencePieceType.Unknown);
        if (unknown < 0) throw new InvalidDataException("no piece has type UNKNOWN.");
        return new SentencePieceModel
        {
            Pieces = pieces,
            ByteFallback = byteFallback,
            UnknownId = unknown,
            BeginningOfSentenceId = bos,
            EndOfSentenceId = eos,
            PadId = pad,
            AddDummyPrefix = addDummyPrefix,
            RemoveExtraWhitespaces = removeExtraWhitespaces,
            EscapeWhitespaces = escapeWhitespaces,
        };
    }

    /// <summary>Reads the fields of one message, handing each to <paramref name="readField"/>, which returns false
    /// for the fields it skips.</summary>
    static void ReadMessage(ByteString message, Func<int, CodedInputStream, bool> readField)
    {
        var input = message.CreateCodedInput();
        for (uint tag; (tag = input.ReadTag()) != 0;)
            if (!readField(WireFormat.GetTagFieldNumber(tag), input)) input.SkipLastField();
    }

    static byte[] Message(Action<CodedOutputStream> write)
    {
        using var buffer = new MemoryStream();
        using (var output = new CodedOutputStream(buffer, leaveOpen: true)) write(output);
        return buffer.ToArray();
    }
}
