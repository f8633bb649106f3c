using AlignThenUnlearn.Benchmarks;
using CommandLine;

return Parser.Default.ParseArguments(args, typeof(BlockOptions), typeof(GenerateOptions)).MapResult(
    (BlockOptions o) => BlockBenchmark.Run(o),
    (GenerateOptions o) => GenerateBenchmark.Run(o),
    _ => 2);
