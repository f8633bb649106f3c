using Xunit.Abstractions;
using Xunit.Sdk;

namespace AlignThenUnlearn.Tests.Support;

/// <summary>Thrown by a <see cref="SkippableFactAttribute"/> test that finds at run time that it cannot run here (xunit
/// 2 has no dynamic skip of its own); the test is reported as skipped with this reason.</summary>
public sealed class SkipTestException(string reason) : Exception(reason);

/// <summary>A fact that may skip itself by throwing <see cref="SkipTestException"/>.</summary>
[XunitTestCaseDiscoverer("AlignThenUnlearn.Tests.Support.SkippableFactDiscoverer", "AlignThenUnlearn.Tests")]
[AttributeUsage(AttributeTargets.Method)]
public sealed class SkippableFactAttribute : FactAttribute;

public sealed class SkippableFactDiscoverer(IMessageSink diagnostics) : IXunitTestCaseDiscoverer
{
    public IEnumerable<IXunitTestCase> Discover(ITestFrameworkDiscoveryOptions options, ITestMethod testMethod, IAttributeInfo factAttribute) =>
        [new SkippableTestCase(diagnostics, options.MethodDisplayOrDefault(), options.MethodDisplayOptionsOrDefault(), testMethod)];
}

public sealed class SkippableTestCase : XunitTestCase
{
    [Obsolete("Called by the de-serializer only")]
    public SkippableTestCase() { }

    public SkippableTestCase(IMessageSink diagnostics, TestMethodDisplay display, TestMethodDisplayOptions displayOptions, ITestMethod method)
        : base(diagnostics, display, displayOptions, method) { }

    public override async Task<Xunit.Sdk.RunSummary> RunAsync(IMessageSink diagnosticMessageSink, IMessageBus messageBus, object[] constructorArguments,
        ExceptionAggregator aggregator, CancellationTokenSource cancellationTokenSource)
    {
        var bus = new SkippingBus(messageBus);
        var summary = await base.RunAsync(diagnosticMessageSink, bus, constructorArguments, aggregator, cancellationTokenSource);
        summary.Failed -= bus.Skipped;
        summary.Skipped += bus.Skipped;
        return summary;
    }

    /// <summary>Turns the failure of a test that threw <see cref="SkipTestException"/> into its skip.</summary>
    sealed class SkippingBus(IMessageBus inner) : IMessageBus
    {
        public int Skipped { get; private set; }

        public bool QueueMessage(IMessageSinkMessage message)
        {
            if (message is ITestFailed failed && failed.ExceptionTypes.FirstOrDefault() == typeof(SkipTestException).FullName)
            {
                Skipped++;
                return inner.QueueMessage(new TestSkipped(failed.Test, failed.Messages.FirstOrDefault()));
            }
            return inner.QueueMessage(message);
        }

        public void Dispose() { }
    }
}
