using AlignThenUnlearn.Autodiff;
using AlignThenUnlearn.Runtime;
using Onnx;

namespace AlignThenUnlearn.Tests.Support;

/// <summary>Compares the gradients of a generated backward graph with central finite differences
/// of the forward graph, both run on <see cref="TestDevice.Current"/> (the CPU unless ATU_TEST_DEVICE says otherwise).</summary>
public static class GradCheck
{
    /// <summary>The CPU with one thread, whatever ATU_TEST_DEVICE says: for results that must be bit-identical between runs.</summary>
    public static readonly ExecutionDevice Cpu = ExecutionDevice.Create("cpu", threads: 1);

    /// <param name="freshSessions">Open a new session for every evaluation: stateful kernels (Dropout's
    /// seeded generator) then draw the same mask each time.</param>
    public static void Check(ModelProto forward, string loss, IReadOnlyDictionary<string, HostTensor> inputs, IEnumerable<string> wrt,
        double eps = 1e-6, double rtol = 1e-6, double atol = 1e-9, bool freshSessions = false)
    {
        var wrtList = wrt.ToList();
        var grads = Gradients.Build(forward, loss, wrtList);
        Assert.Empty(grads.Unreached);
        var device = TestDevice.Current;
        var analytic = device.Run(grads.Model, inputs);

        using var session = freshSessions ? null : device.Open(forward);
        double Loss(IReadOnlyDictionary<string, HostTensor> feeds)
        {
            var outputs = session is null ? device.Run(forward, feeds, [loss]) : ExecutionDevice.Run(session, feeds, [loss]);
            return outputs[loss].AsDoubles().Sum();
        }

        foreach (var w in wrtList)
        {
            var g = analytic[grads.Gradients[w]];
            var x = inputs[w];
            Assert.Equal(x.Shape, g.Shape);
            Assert.Equal(x.Data.GetType(), g.Data.GetType());
            var ga = g.AsDoubles();
            for (int i = 0; i < x.ElementCount; i++)
            {
                double numeric = CentralDifference(Loss, inputs, w, i, eps);
                double tol = atol + rtol * Math.Max(Math.Abs(numeric), Math.Abs(ga[i]));
                Assert.True(Math.Abs(numeric - ga[i]) <= tol,
                    $"d{loss}/d{w}[{i}]: backward graph gives {ga[i]:G10}, central differences {numeric:G10} (difference {Math.Abs(numeric - ga[i]):G3}, tolerance {tol:G3})");
            }
        }
    }

    /// <summary>(loss(x + eps e_i) - loss(x - eps e_i)) / 2 eps for element <paramref name="index"/> of input <paramref name="wrt"/>.</summary>
    public static double CentralDifference(Func<IReadOnlyDictionary<string, HostTensor>, double> loss, IReadOnlyDictionary<string, HostTensor> inputs,
        string wrt, int index, double eps = 1e-6) =>
        (loss(With(inputs, wrt, Perturb(inputs[wrt], index, +eps))) - loss(With(inputs, wrt, Perturb(inputs[wrt], index, -eps)))) / (2 * eps);

    static Dictionary<string, HostTensor> With(IReadOnlyDictionary<string, HostTensor> inputs, string name, HostTensor value) =>
        inputs.ToDictionary(kv => kv.Key, kv => kv.Key == name ? value : kv.Value);

    static HostTensor Perturb(HostTensor t, int index, double delta) => t.Data switch
    {
        double[] d => new HostTensor(Copy(d, index, v => v + delta), t.Shape),
        float[] f => new HostTensor(Copy(f, index, v => (float)(v + delta)), t.Shape),
        _ => throw new ArgumentException("only float and double inputs can be differentiated"),
    };

    static T[] Copy<T>(T[] source, int index, Func<T, T> change)
    {
        var copy = (T[])source.Clone();
        copy[index] = change(copy[index]);
        return copy;
    }
}
