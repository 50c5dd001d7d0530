/* Run a .tflite model with the LiteRT C API (libLiteRt.so from the ai-edge-litert wheel).
 *
 * usage: litert_run MODEL.tflite IN.bin OUT.bin [IN.bin OUT.bin ...]
 *
 * Each IN.bin holds one or more of the model's single input tensor, back to back, exactly as the
 * runtime takes it (layout and dtype of the artifact: NCHW or NHWC, float32 or int8, little-endian,
 * no header); the raw output tensors are written to OUT.bin in the same order. The model is compiled
 * once for the CPU and run once per tensor, so one process (one emulator start under qemu) serves a
 * whole batch. Prints one JSON line describing the model, then one per IN.bin with the milliseconds
 * of each run.
 * Packing (layout, quantisation) is the caller's job: this program proves the artifact runs in
 * the native runtime a phone links, byte for byte as given.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "litert_c_api.h"

#define CHECK(call)                                                              \
  do {                                                                           \
    LiteRtStatus status_ = (call);                                               \
    if (status_ != 0) {                                                          \
      fprintf(stderr, "litert_run: %s failed with status %d\n", #call, status_); \
      exit(2);                                                                   \
    }                                                                            \
  } while (0)

static void* read_file(const char* path, size_t* size) {
  FILE* f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "litert_run: cannot open %s\n", path);
    exit(2);
  }
  fseek(f, 0, SEEK_END);
  *size = (size_t)ftell(f);
  fseek(f, 0, SEEK_SET);
  void* data = malloc(*size ? *size : 1);
  if (fread(data, 1, *size, f) != *size) {
    fprintf(stderr, "litert_run: short read on %s\n", path);
    exit(2);
  }
  fclose(f);
  return data;
}

static void write_file(const char* path, const void* data, size_t size) {
  FILE* f = fopen(path, "wb");
  if (!f || fwrite(data, 1, size, f) != size) {
    fprintf(stderr, "litert_run: cannot write %s\n", path);
    exit(2);
  }
  fclose(f);
}

/* A managed host buffer shaped like signature tensor `tensor`, as the compiled model requires. */
static LiteRtTensorBuffer make_buffer(LiteRtEnvironment env, LiteRtTensor tensor, LiteRtTensorBufferRequirements req,
                                      int* element_type, size_t* bytes) {
  LiteRtRankedTensorTypeStorage type;
  memset(&type, 0, sizeof type);
  CHECK(LiteRtGetRankedTensorType(tensor, &type));
  LiteRtTensorBuffer buffer;
  CHECK(LiteRtCreateManagedTensorBufferFromRequirements(env, &type, req, &buffer));
  CHECK(LiteRtGetTensorBufferPackedSize(buffer, bytes));
  *element_type = type.element_type;
  return buffer;
}

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

int main(int argc, char** argv) {
  if (argc < 4 || argc % 2 != 0) {
    fprintf(stderr, "usage: %s MODEL.tflite IN.bin OUT.bin [IN.bin OUT.bin ...]\n", argv[0]);
    return 1;
  }
  LiteRtEnvironment env;
  LiteRtModel model;
  LiteRtSignature signature;
  LiteRtParamIndex n_in, n_out;
  CHECK(LiteRtCreateEnvironment(0, NULL, &env));
  CHECK(LiteRtCreateModelFromFile(env, argv[1], &model));
  CHECK(LiteRtGetModelSignature(model, 0, &signature));
  CHECK(LiteRtGetNumSignatureInputs(signature, &n_in));
  CHECK(LiteRtGetNumSignatureOutputs(signature, &n_out));
  if (n_in != 1 || n_out != 1) {
    fprintf(stderr, "litert_run: expected one input and one output, got %zu and %zu\n", n_in, n_out);
    return 2;
  }

  LiteRtOptions options;
  LiteRtCompiledModel compiled;
  CHECK(LiteRtCreateOptions(&options));
  CHECK(LiteRtSetOptionsHardwareAccelerators(options, kLiteRtHwAcceleratorCpu));
  CHECK(LiteRtCreateCompiledModel(env, model, options, &compiled));

  LiteRtTensor in_tensor, out_tensor;
  LiteRtTensorBufferRequirements in_req, out_req;
  CHECK(LiteRtGetSignatureInputTensorByIndex(signature, 0, &in_tensor));
  CHECK(LiteRtGetSignatureOutputTensorByIndex(signature, 0, &out_tensor));
  CHECK(LiteRtGetCompiledModelInputBufferRequirements(compiled, 0, 0, &in_req));
  CHECK(LiteRtGetCompiledModelOutputBufferRequirements(compiled, 0, 0, &out_req));
  int in_type, out_type;
  size_t in_bytes, out_bytes;
  LiteRtTensorBuffer in_buf = make_buffer(env, in_tensor, in_req, &in_type, &in_bytes);
  LiteRtTensorBuffer out_buf = make_buffer(env, out_tensor, out_req, &out_type, &out_bytes);
  printf("{\"model\": \"%s\", \"input_element_type\": %d, \"input_bytes\": %zu, "
         "\"output_element_type\": %d, \"output_bytes\": %zu}\n",
         argv[1], in_type, in_bytes, out_type, out_bytes);

  for (int i = 2; i < argc; i += 2) {
    size_t size;
    unsigned char* input = read_file(argv[i], &size);
    if (size == 0 || size % in_bytes != 0) {
      fprintf(stderr, "litert_run: %s has %zu bytes, not a multiple of the input tensor's %zu\n", argv[i], size, in_bytes);
      return 2;
    }
    size_t count = size / in_bytes;
    unsigned char* output = malloc(count * out_bytes);
    printf("{\"input\": \"%s\", \"output\": \"%s\", \"tensors\": %zu, \"ms\": [", argv[i], argv[i + 1], count);
    for (size_t k = 0; k < count; ++k) {
      void* host;
      CHECK(LiteRtLockTensorBuffer(in_buf, &host, kLiteRtTensorBufferLockModeWrite));
      memcpy(host, input + k * in_bytes, in_bytes);
      CHECK(LiteRtUnlockTensorBuffer(in_buf));

      double start = now_ms();
      CHECK(LiteRtRunCompiledModelWithOptions(compiled, 0, 1, &in_buf, 1, &out_buf, NULL));
      double ms = now_ms() - start;

      CHECK(LiteRtLockTensorBuffer(out_buf, &host, kLiteRtTensorBufferLockModeRead));
      memcpy(output + k * out_bytes, host, out_bytes);
      CHECK(LiteRtUnlockTensorBuffer(out_buf));
      printf("%s%.3f", k ? ", " : "", ms);
    }
    printf("]}\n");
    write_file(argv[i + 1], output, count * out_bytes);
    free(input);
    free(output);
  }

  LiteRtDestroyTensorBuffer(in_buf);
  LiteRtDestroyTensorBuffer(out_buf);
  LiteRtDestroyCompiledModel(compiled);
  LiteRtDestroyOptions(options);
  LiteRtDestroyModel(model);
  LiteRtDestroyEnvironment(env);
  return 0;
}
