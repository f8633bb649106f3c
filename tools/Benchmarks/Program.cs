using AlignThenUnlearn.Benchmarks;
using CommandLine;

return Parser.Default.ParseArguments(args, typeof(BlockOptions)).MapResult((BlockOptions o) => BlockBenchmark.Run(o), _ => 2);
