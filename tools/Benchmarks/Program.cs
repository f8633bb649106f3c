using AlignThenUnlearn.Benchmarks;
using CommandLine;

return Parser.Default.ParseArguments(args, typeof(BlockOptions), typeof(GenerateOptions), typeof(TrainOptions), typeof(MethodMemoryOptions), typeof(HeadOptions), typeof(MemoryOptions), typeof(StepOptions)).MapResult(
    (BlockOptions o) => BlockBenchmark.Run(o),
    (GenerateOptions o) => GenerateBenchmark.Run(o),
    (TrainOptions o) => TrainBenchmark.Run(o),
    (MethodMemoryOptions o) => MethodMemoryBenchmark.Run(o),
    (HeadOptions o) => HeadBenchmark.Run(o),
    (MemoryOptions o) => MemoryBenchmark.Run(o),
    (StepOptions o) => StepBenchmark.Run(o),
    _ => 2);
