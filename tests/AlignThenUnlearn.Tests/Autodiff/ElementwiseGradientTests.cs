using AlignThenUnlearn.Onnx;
using AlignThenUnlearn.Runtime;
using AlignThenUnlearn.Tests.Support;

namespace AlignThenUnlearn.Tests.Autodiff;

/// <summary>Elementwise rules against central differences in double precision, including broadcasting.</summary>
public class ElementwiseGradientTests
{
    [Theory]
    [InlineData("Add")]
    [InlineData("Sub")]
    [InlineData("Mul")]
    [InlineData("Div")]
    public void Binary_ops_with_broadcasting(string op)
    {
        var t = new OpTest(op);
        t.Input("a", t.Rand(2, 3, 4)).Input("b", HostTensor.Of(t.RandomDoubles(4, 0.5, 2), 4)).Check();
        var u = new OpTest(op, seed: 2);
        u.Input("a", u.Rand(2, 1, 4)).Input("b", HostTensor.Of(u.RandomDoubles(3, 0.5, 2), 3, 1)).Check();
    }

    [Fact]
    public void Broadcasting_over_symbolic_batch_and_sequence()
    {
        var t = new OpTest("Mul");
        t.Input("x", t.Rand(2, 3, 4), declared: ["batch", "seq", 4])
         .Input("scale", t.Rand(1, 3, 1), declared: [1, "seq", 1]).Check();
        var u = new OpTest("Add", seed: 3);
        u.Input("x", u.Rand(2, 3, 4), declared: ["batch", "seq", 4])
         .Input("bias", u.Rand(2, 1, 4), declared: ["batch", 1, 4]).Check();
    }
}
