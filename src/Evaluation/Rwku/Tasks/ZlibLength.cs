using System.IO.Compression;
using System.Runtime.InteropServices;
using System.Text;

namespace AlignThenUnlearn.Evaluation;

/// <summary><c>len(zlib.compress(text.encode("utf-8")))</c> as Python computes it: zlib format at zlib's default level
/// 6. Python links the reference zlib; .NET bundles zlib-ng, whose level-6 streams differ (a 19,958-character text
/// compresses to 1,772 bytes in zlib 1.2.13 and to 1,748 in .NET's ZLibStream, and no other level gives 1,772 either).
/// So the length comes from the system's zlib (<c>compress2</c> of <c>libz.so.1</c>, present on Linux, where Python's
/// zlib is the same library) and falls back to ZLibStream only where there is none (<see cref="UsesSystemZlib"/>).</summary>
public static class ZlibLength
{
    const int DefaultLevel = 6;
    static readonly nint SystemZlib = LoadSystemZlib();

    public static bool UsesSystemZlib => SystemZlib != 0;

    public static int Of(string text) => Of(Encoding.UTF8.GetBytes(text));

    public static int Of(byte[] data)
    {
        if (SystemZlib != 0) return SystemLength(data);
        using var buffer = new MemoryStream();
        using (var zlib = new ZLibStream(buffer, new ZLibCompressionOptions { CompressionLevel = DefaultLevel }, leaveOpen: true))
            zlib.Write(data);
        return checked((int)buffer.Length);
    }

    static nint LoadSystemZlib()
    {
        foreach (var name in new[] { "libz.so.1", "libz.so", "libz.1.dylib", "libz.dylib" })
            if (NativeLibrary.TryLoad(name, out var handle) && NativeLibrary.TryGetExport(handle, "compress2", out var compress2))
                return compress2;
        return 0;
    }

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    delegate int Compress2(byte[] destination, ref nuint destinationLength, byte[] source, nuint sourceLength, int level);

    static Compress2? _compress2;

    static int SystemLength(byte[] data)
    {
        _compress2 ??= Marshal.GetDelegateForFunctionPointer<Compress2>(SystemZlib);
        // zlib's compressBound is the input plus about 0.1% and 13 bytes; take a wider margin.
        var output = new byte[data.Length + data.Length / 100 + 64];
        nuint length = (nuint)output.Length;
        int status = _compress2(output, ref length, data, (nuint)data.Length, DefaultLevel);
        if (status != 0) throw new InvalidOperationException($"zlib's compress2 failed with status {status}");
        return checked((int)length);
    }
}
