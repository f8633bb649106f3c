using System.Text.Json.Nodes;
using AlignThenUnlearn.Sweeps;
using AlignThenUnlearn.Tests.Support;

namespace AlignThenUnlearn.Tests.Sweeps;

/// <summary>`atu sweep plan --emit k8s`: the Indexed Job checked against the part of the batch/v1 schema it uses.</summary>
public sealed class KubernetesJobTests : IDisposable
{
    readonly TempFolder _temp = new();
    public void Dispose() => _temp.Dispose();

    /// <summary>The definitions the manifest touches, transcribed from Kubernetes' OpenAPI (v1.31,
    /// io.k8s.api.batch.v1.Job, JobSpec, core.v1.PodTemplateSpec, PodSpec, Container, ResourceRequirements,
    /// VolumeMount, Volume, PersistentVolumeClaimVolumeSource, meta.v1.ObjectMeta): field names, types (integers are
    /// int32), required fields and the enums the API server enforces. Fields the manifest does not use are left out,
    /// so any field it writes that is not listed here fails, as a typo would with kubectl's strict field validation.</summary>
    const string Schema = """
        { "type": "object", "required": ["apiVersion", "kind", "spec"], "properties": {
          "apiVersion": { "type": "string", "enum": ["batch/v1"] },
          "kind": { "type": "string", "enum": ["Job"] },
          "metadata": { "type": "object", "properties": {
            "name": { "type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63 },
            "namespace": { "type": "string" },
            "labels": { "type": "object", "additionalProperties": { "type": "string" } } } },
          "spec": { "type": "object", "required": ["template"], "properties": {
            "completionMode": { "type": "string", "enum": ["NonIndexed", "Indexed"] },
            "completions": { "type": "integer", "format": "int32" },
            "parallelism": { "type": "integer", "format": "int32" },
            "backoffLimit": { "type": "integer", "format": "int32" },
            "backoffLimitPerIndex": { "type": "integer", "format": "int32" },
            "template": { "type": "object", "properties": {
              "metadata": { "type": "object" },
              "spec": { "type": "object", "required": ["containers"], "properties": {
                "restartPolicy": { "type": "string", "enum": ["Always", "OnFailure", "Never"] },
                "containers": { "type": "array", "items": { "type": "object", "required": ["name"], "properties": {
                  "name": { "type": "string" },
                  "image": { "type": "string" },
                  "command": { "type": "array", "items": { "type": "string" } },
                  "args": { "type": "array", "items": { "type": "string" } },
                  "resources": { "type": "object", "properties": {
                    "limits": { "type": "object", "additionalProperties": { "type": "string" } },
                    "requests": { "type": "object", "additionalProperties": { "type": "string" } } } },
                  "volumeMounts": { "type": "array", "items": { "type": "object", "required": ["name", "mountPath"], "properties": {
                    "name": { "type": "string" }, "mountPath": { "type": "string" }, "readOnly": { "type": "boolean" } } } } } } },
                "volumes": { "type": "array", "items": { "type": "object", "required": ["name"], "properties": {
                  "name": { "type": "string" },
                  "persistentVolumeClaim": { "type": "object", "required": ["claimName"], "properties": {
                    "claimName": { "type": "string" }, "readOnly": { "type": "boolean" } } } } } } } } } } } } } }
        """;

    /// <summary>The schema's rules (type, format int32, enum, pattern, maxLength, required, properties with unknown
    /// names refused, additionalProperties as the schema of every value of a map, items); returns what is wrong.</summary>
    static IEnumerable<string> Violations(JsonNode? value, JsonObject schema, string at)
    {
        var type = schema["type"]!.GetValue<string>();
        var kind = value?.GetValueKind();
        bool ok = type switch
        {
            "object" => kind == System.Text.Json.JsonValueKind.Object,
            "array" => kind == System.Text.Json.JsonValueKind.Array,
            "string" => kind == System.Text.Json.JsonValueKind.String,
            "boolean" => kind is System.Text.Json.JsonValueKind.True or System.Text.Json.JsonValueKind.False,
            "integer" => kind == System.Text.Json.JsonValueKind.Number && value!.AsValue().TryGetValue<long>(out var n) && (schema["format"]?.GetValue<string>() != "int32" || n is >= int.MinValue and <= int.MaxValue),
            _ => throw new InvalidDataException($"schema type {type} at {at}"),
        };
        if (!ok) { yield return $"{at}: expected {type}{(schema["format"] is null ? "" : $" ({schema["format"]})")}, found {kind?.ToString() ?? "null"}"; yield break; }
        if (schema["enum"] is JsonArray allowed && !allowed.Any(a => a!.GetValue<string>() == value!.GetValue<string>()))
            yield return $"{at}: '{value}' is not one of {allowed.ToJsonString()}";
        if (schema["pattern"] is JsonNode pattern && !System.Text.RegularExpressions.Regex.IsMatch(value!.GetValue<string>(), pattern.GetValue<string>()))
            yield return $"{at}: '{value}' does not match {pattern}";
        if (schema["maxLength"] is JsonNode max && value!.GetValue<string>().Length > max.GetValue<int>())
            yield return $"{at}: longer than {max}";
        if (value is JsonObject obj)
        {
            foreach (var required in (schema["required"] as JsonArray ?? []).Select(r => r!.GetValue<string>()))
                if (!obj.ContainsKey(required)) yield return $"{at}.{required}: required, missing";
            foreach (var (name, member) in obj)
            {
                var memberSchema = schema["properties"]?[name] as JsonObject ?? schema["additionalProperties"] as JsonObject;
                if (memberSchema is null) { if (schema["properties"] is not null) yield return $"{at}.{name}: not a field of this object"; continue; }
                foreach (var v in Violations(member, memberSchema, $"{at}.{name}")) yield return v;
            }
        }
        if (value is JsonArray array && schema["items"] is JsonObject items)
            for (int i = 0; i < array.Count; i++)
                foreach (var v in Violations(array[i], items, $"{at}[{i}]")) yield return v;
    }

    static readonly JsonObject JobSchema = JsonNode.Parse(Schema)!.AsObject();

    [Fact]
    public void The_schema_check_finds_wrong_types_missing_required_fields_and_unknown_fields()
    {
        var bad = JsonNode.Parse("""
            { "apiVersion": "batch/v1", "kind": "Job", "spec": { "completions": "4", "completionMode": "indexed", "paralelism": 2,
              "template": { "spec": { "containers": [ { "image": "x" } ] } } } }
            """);
        Assert.Equal(
        [
            "$.spec.completions: expected integer (int32), found String",
            "$.spec.completionMode: 'indexed' is not one of [\"NonIndexed\",\"Indexed\"]",
            "$.spec.paralelism: not a field of this object",
            "$.spec.template.spec.containers[0].name: required, missing",
        ], Violations(bad, JobSchema, "$"));
    }

    [Fact]
    public void The_emitted_indexed_job_has_a_completion_per_cell_the_throttle_as_parallelism_and_passes_the_schema()
    {
        File.WriteAllText(_temp.File("sweep.json"), """
            { "name": "Layers 10/20/30", "artifacts": "/data/model", "rwku": "/data/rwku", "targets": "1-5", "presets": ["paper"], "layers": [10, 20, 30],
              "slurm": { "gpus": 1, "cpus": 8, "memory": "64G", "throttle": 6 },
              "kubernetes": { "image": "registry.example/atu:1.0", "volume_claim": "atu-data", "namespace": "ml" } }
            """);
        var sweep = _temp.File("sweep");
        var manifest = SweepPlanner.Plan(_temp.File("sweep.json"), sweep, ["atu"]);
        var path = KubernetesJob.Write(sweep, manifest);
        var job = JsonNode.Parse(File.ReadAllText(path))!;

        Assert.Empty(Violations(job, JobSchema, "$"));
        Assert.Equal("Indexed", job["spec"]!["completionMode"]!.GetValue<string>());
        Assert.Equal(15, job["spec"]!["completions"]!.GetValue<int>());   // 5 targets x 3 layers
        Assert.Equal(6, job["spec"]!["parallelism"]!.GetValue<int>());
        Assert.Equal("atu-sweep-layers-10-20-30", job["metadata"]!["name"]!.GetValue<string>());
        var container = job["spec"]!["template"]!["spec"]!["containers"]![0]!;
        Assert.Equal($"exec atu sweep cell {sweep} \"$JOB_COMPLETION_INDEX\"", container["command"]![2]!.GetValue<string>());
        // 64G = 64 x 1024 MiB = 65536Mi
        Assert.Equal("""{"cpu":"8","memory":"65536Mi","nvidia.com/gpu":"1"}""", container["resources"]!["limits"]!.ToJsonString());
        Assert.Equal(sweep, container["volumeMounts"]![0]!["mountPath"]!.GetValue<string>());
    }

    [Fact]
    public void Without_an_image_nothing_is_emitted()
    {
        File.WriteAllText(_temp.File("sweep.json"), """{ "artifacts": "/m", "rwku": "/r", "targets": "1" }""");
        var manifest = SweepPlanner.Plan(_temp.File("sweep.json"), _temp.File("sweep"), ["atu"]);
        Assert.Contains("kubernetes.image", Assert.Throws<InvalidDataException>(() => KubernetesJob.Write(_temp.File("sweep"), manifest)).Message);
    }
}
