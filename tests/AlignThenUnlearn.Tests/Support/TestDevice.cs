using AlignThenUnlearn.Runtime;

namespace AlignThenUnlearn.Tests.Support;

/// <summary>The device that gradient and training tests run on: <c>ATU_TEST_DEVICE</c> (cpu, cuda or auto; the CPU
/// when unset), one intra-op thread. Tests that need bit-identical results across runs use <see cref="GradCheck.Cpu"/>.</summary>
public static class TestDevice
{
    public const string Variable = "ATU_TEST_DEVICE";

    public static readonly ExecutionDevice Current =
        ExecutionDevice.Create(Environment.GetEnvironmentVariable(Variable) is { Length: > 0 } device ? device : "cpu", threads: 1);
}
