/* Opens ONNX models with ONNX Runtime's CUDA execution provider and reports how it partitions them, without running
 * anything: the session is created (graph optimised, nodes assigned to providers, copy nodes inserted) and the
 * optimised model saved. Built and run by PlacementCheckTests against no-op stand-ins of the CUDA libraries.
 * Usage: placement_probe LIBONNXRUNTIME OUT_DIR MODEL.onnx...  (writes OUT_DIR/<model file name>.optimized.onnx)
 * libonnxruntime.so is opened by path (the package's file has no versioned name to link against), and ONNX Runtime
 * finds libonnxruntime_providers_cuda.so beside it.
 * stdout: "=== MODEL <path>" before each model, ONNX Runtime's verbose log lines ("Node placements" and the lines
 * under it), then "=== OK" or "=== ERROR <message>". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dlfcn.h>
#include "onnxruntime_c_api.h"

static const OrtApi* ort;

static void ORT_API_CALL log_line(void* param, OrtLoggingLevel severity, const char* category, const char* logid,
                                  const char* location, const char* message)
{
    (void)param; (void)severity; (void)category; (void)logid; (void)location;
    printf("%s\n", message);
}

static int failed(OrtStatus* status)
{
    if (!status) return 0;
    printf("=== ERROR %s\n", ort->GetErrorMessage(status));
    ort->ReleaseStatus(status);
    return 1;
}

int main(int argc, char** argv)
{
    if (argc < 4) { fprintf(stderr, "usage: placement_probe LIBONNXRUNTIME OUT_DIR MODEL.onnx...\n"); return 2; }
    void* library = dlopen(argv[1], RTLD_NOW | RTLD_GLOBAL);
    if (!library) { fprintf(stderr, "%s\n", dlerror()); return 2; }
    const OrtApiBase* (*get_api_base)(void) = (const OrtApiBase* (*)(void))dlsym(library, "OrtGetApiBase");
    if (!get_api_base) { fprintf(stderr, "%s: no OrtGetApiBase\n", argv[1]); return 2; }
    ort = get_api_base()->GetApi(ORT_API_VERSION);
    OrtEnv* env;
    if (failed(ort->CreateEnvWithCustomLogger(log_line, NULL, ORT_LOGGING_LEVEL_VERBOSE, "placement", &env))) return 1;
    int errors = 0;
    for (int i = 3; i < argc; i++)
    {
        printf("=== MODEL %s\n", argv[i]);
        fflush(stdout);
        const char* slash = strrchr(argv[i], '/');
        char out[4096];
        snprintf(out, sizeof out, "%s/%s.optimized.onnx", argv[2], slash ? slash + 1 : argv[i]);
        OrtSessionOptions* options;
        OrtCUDAProviderOptionsV2* cuda;
        OrtSession* session = NULL;
        if (failed(ort->CreateSessionOptions(&options))) return 1;
        int bad = failed(ort->SetSessionLogSeverityLevel(options, ORT_LOGGING_LEVEL_VERBOSE))
            || failed(ort->SetOptimizedModelFilePath(options, out))
            || failed(ort->CreateCUDAProviderOptions(&cuda));
        if (!bad)
        {
            bad = failed(ort->SessionOptionsAppendExecutionProvider_CUDA_V2(options, cuda))
                || failed(ort->CreateSession(env, argv[i], options, &session));
            ort->ReleaseCUDAProviderOptions(cuda);
        }
        if (!bad) printf("=== OK\n");
        errors += bad;
        if (session) ort->ReleaseSession(session);
        ort->ReleaseSessionOptions(options);
        fflush(stdout);
    }
    ort->ReleaseEnv(env);
    return errors == 0 ? 0 : 1;
}
