/* The few LiteRT C API declarations litert_run.c needs.
 *
 * The ai-edge-litert wheel ships libLiteRt.so (the LiteRT C API: environment, model, compiled model,
 * tensor buffers) but no headers, and no TfLite* interpreter symbols. These prototypes follow the
 * LiteRT C headers (litert/c/litert_*.h) of the 2.x releases; the argument lists were checked
 * against the shipped 2.3.0 library (LiteRtCreateModelFromFile takes the environment first, and
 * the synchronous run entry point exported is LiteRtRunCompiledModelWithOptions).
 * Handles are opaque pointers. LiteRtRankedTensorType is only ever filled by the library and passed
 * back to it, so it is held in an opaque, generously sized buffer whose first field (the element
 * type) is the only one read here.
 */
#ifndef EGEUNET_LITERT_C_API_H_
#define EGEUNET_LITERT_C_API_H_

#include <stddef.h>

typedef int LiteRtStatus; /* kLiteRtStatusOk == 0 */
typedef size_t LiteRtParamIndex;
typedef struct LiteRtEnvironmentT* LiteRtEnvironment;
typedef struct LiteRtModelT* LiteRtModel;
typedef struct LiteRtSignatureT* LiteRtSignature;
typedef struct LiteRtTensorT* LiteRtTensor;
typedef struct LiteRtOptionsT* LiteRtOptions;
typedef struct LiteRtCompiledModelT* LiteRtCompiledModel;
typedef struct LiteRtTensorBufferT* LiteRtTensorBuffer;
typedef struct LiteRtTensorBufferRequirementsT* LiteRtTensorBufferRequirements;

/* Opaque storage for LiteRtRankedTensorType (about 72 bytes in 2.x: element type + layout). */
typedef struct {
  _Alignas(16) int element_type; /* LiteRtElementType: 1 float32, 9 int8, 3 uint8, ... */
  unsigned char rest[508];
} LiteRtRankedTensorTypeStorage;

enum { kLiteRtHwAcceleratorCpu = 1 };
enum { kLiteRtTensorBufferLockModeRead = 0, kLiteRtTensorBufferLockModeWrite = 1 };

LiteRtStatus LiteRtCreateEnvironment(int num_options, const void* options, LiteRtEnvironment* environment);
void LiteRtDestroyEnvironment(LiteRtEnvironment environment);

LiteRtStatus LiteRtCreateModelFromFile(LiteRtEnvironment environment, const char* filename, LiteRtModel* model);
void LiteRtDestroyModel(LiteRtModel model);
LiteRtStatus LiteRtGetModelSignature(LiteRtModel model, LiteRtParamIndex signature_index, LiteRtSignature* signature);
LiteRtStatus LiteRtGetNumSignatureInputs(LiteRtSignature signature, LiteRtParamIndex* num_inputs);
LiteRtStatus LiteRtGetNumSignatureOutputs(LiteRtSignature signature, LiteRtParamIndex* num_outputs);
LiteRtStatus LiteRtGetSignatureInputTensorByIndex(LiteRtSignature signature, LiteRtParamIndex index, LiteRtTensor* tensor);
LiteRtStatus LiteRtGetSignatureOutputTensorByIndex(LiteRtSignature signature, LiteRtParamIndex index, LiteRtTensor* tensor);
LiteRtStatus LiteRtGetRankedTensorType(LiteRtTensor tensor, LiteRtRankedTensorTypeStorage* ranked_tensor_type);

LiteRtStatus LiteRtCreateOptions(LiteRtOptions* options);
LiteRtStatus LiteRtSetOptionsHardwareAccelerators(LiteRtOptions options, int hardware_accelerators);
void LiteRtDestroyOptions(LiteRtOptions options);

LiteRtStatus LiteRtCreateCompiledModel(LiteRtEnvironment environment, LiteRtModel model, LiteRtOptions options,
                                       LiteRtCompiledModel* compiled_model);
void LiteRtDestroyCompiledModel(LiteRtCompiledModel compiled_model);
LiteRtStatus LiteRtGetCompiledModelInputBufferRequirements(LiteRtCompiledModel compiled_model,
                                                           LiteRtParamIndex signature_index, LiteRtParamIndex input_index,
                                                           LiteRtTensorBufferRequirements* requirements);
LiteRtStatus LiteRtGetCompiledModelOutputBufferRequirements(LiteRtCompiledModel compiled_model,
                                                            LiteRtParamIndex signature_index, LiteRtParamIndex output_index,
                                                            LiteRtTensorBufferRequirements* requirements);
LiteRtStatus LiteRtRunCompiledModelWithOptions(LiteRtCompiledModel compiled_model, LiteRtParamIndex signature_index,
                                               size_t num_input_buffers, LiteRtTensorBuffer* input_buffers,
                                               size_t num_output_buffers, LiteRtTensorBuffer* output_buffers,
                                               LiteRtOptions options);

LiteRtStatus LiteRtCreateManagedTensorBufferFromRequirements(LiteRtEnvironment environment,
                                                             const LiteRtRankedTensorTypeStorage* tensor_type,
                                                             LiteRtTensorBufferRequirements requirements,
                                                             LiteRtTensorBuffer* buffer);
LiteRtStatus LiteRtGetTensorBufferPackedSize(LiteRtTensorBuffer buffer, size_t* size);
LiteRtStatus LiteRtLockTensorBuffer(LiteRtTensorBuffer buffer, void** host_memory_addr, int lock_mode);
LiteRtStatus LiteRtUnlockTensorBuffer(LiteRtTensorBuffer buffer);
void LiteRtDestroyTensorBuffer(LiteRtTensorBuffer buffer);

#endif /* EGEUNET_LITERT_C_API_H_ */
