// Run a .pte program with the ExecuTorch C++ runtime (libexecutorch.so and the XNNPACK backend from the
// executorch wheel), no Python and no torch.
//
// usage: executorch_run [--etdump FILE.etdp] MODEL.pte [IN.bin OUT.bin ...]
//
// Each IN.bin holds one or more of the program's single input tensor, back to back, exactly as the method
// "forward" takes it (its shape and dtype, little-endian, no header); the raw output tensors are written to
// OUT.bin in the same order. The program is loaded once and run once per tensor, so one process (one emulator
// start under qemu) serves a whole batch. Prints one JSON line describing the method's input and output (and the
// string the program's constant method "egeunet" returns, egeunet's contract, null without it), then one per
// IN.bin with the milliseconds of each run. --etdump records every run's per-operator events (ETDump,
// read by executorch.devtools.Inspector) into FILE.etdp.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <numeric>
#include <string>
#include <string_view>
#include <vector>

#include <executorch/devtools/etdump/etdump_flatcc.h>
#include <executorch/extension/module/module.h>

using executorch::aten::ScalarType;
using executorch::aten::Tensor;
using executorch::aten::TensorImpl;
using executorch::extension::Module;
using executorch::runtime::Error;
using executorch::runtime::EValue;

static void fail(const std::string& what) {
  std::fprintf(stderr, "executorch_run: %s\n", what.c_str());
  std::exit(2);
}

static void check(Error error, const char* what) {
  if (error != Error::Ok) fail(std::string(what) + " failed with error " + std::to_string(static_cast<int>(error)));
}

static std::vector<char> read_file(const char* path) {
  FILE* f = std::fopen(path, "rb");
  if (!f) fail(std::string("cannot open ") + path);
  std::fseek(f, 0, SEEK_END);
  std::vector<char> data(static_cast<size_t>(std::ftell(f)));
  std::fseek(f, 0, SEEK_SET);
  if (std::fread(data.data(), 1, data.size(), f) != data.size()) fail(std::string("short read on ") + path);
  std::fclose(f);
  return data;
}

static void write_file(const char* path, const void* data, size_t size) {
  FILE* f = std::fopen(path, "wb");
  if (!f || std::fwrite(data, 1, size, f) != size) fail(std::string("cannot write ") + path);
  std::fclose(f);
}

static std::string json_string(std::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\u%04x", c);
      out += escaped;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// The contract: the string returned by the constant method "egeunet" (egeunet's export), "null" without it.
static std::string contract_json(Module& module) {
  auto names = module.method_names();
  if (!names.ok() || !names->count("egeunet")) return "null";
  auto result = module.execute("egeunet");
  if (!result.ok() || result->empty() || !result->at(0).isString()) fail("method egeunet does not return a string");
  return json_string(result->at(0).toString());
}

static std::string shape_json(executorch::runtime::Span<const int32_t> sizes) {
  std::string out = "[";
  for (size_t i = 0; i < sizes.size(); ++i) out += (i ? ", " : "") + std::to_string(sizes[i]);
  return out + "]";
}

int main(int argc, char** argv) {
  const char* etdump_path = nullptr;
  int first = 1;
  if (argc > 2 && std::strcmp(argv[1], "--etdump") == 0) {
    etdump_path = argv[2];
    first = 3;
  }
  if (argc - first < 1 || (argc - first) % 2 != 1) {
    std::fprintf(stderr, "usage: %s [--etdump FILE.etdp] MODEL.pte [IN.bin OUT.bin ...]\n", argv[0]);
    return 1;
  }
  const char* model = argv[first];
  std::unique_ptr<executorch::etdump::ETDumpGen> tracer;
  if (etdump_path) tracer = std::make_unique<executorch::etdump::ETDumpGen>();
  executorch::etdump::ETDumpGen* etdump = tracer.get();
  Module module(model, Module::LoadMode::File, std::move(tracer));
  check(module.load_method("forward"), "loading method forward");
  auto meta = module.method_meta("forward");
  if (!meta.ok()) fail("reading the metadata of method forward");
  if (meta->num_inputs() != 1 || meta->num_outputs() != 1) {
    fail("expected one input and one output, got " + std::to_string(meta->num_inputs()) + " and " +
         std::to_string(meta->num_outputs()));
  }
  auto in_meta = meta->input_tensor_meta(0);
  auto out_meta = meta->output_tensor_meta(0);
  if (!in_meta.ok() || !out_meta.ok()) fail("the input and output must be tensors");
  const size_t in_bytes = in_meta->nbytes(), out_bytes = out_meta->nbytes();
  std::printf("{\"model\": %s, \"input_shape\": %s, \"input_dtype\": %d, \"input_bytes\": %zu, "
              "\"output_shape\": %s, \"output_dtype\": %d, \"output_bytes\": %zu, \"contract\": %s}\n",
              json_string(model).c_str(), shape_json(in_meta->sizes()).c_str(), static_cast<int>(in_meta->scalar_type()), in_bytes,
              shape_json(out_meta->sizes()).c_str(), static_cast<int>(out_meta->scalar_type()), out_bytes,
              contract_json(module).c_str());
  std::fflush(stdout);

  // A contiguous tensor over caller memory, shaped like the method's input (its dim order is the identity).
  const auto in_sizes = in_meta->sizes();
  std::vector<TensorImpl::SizesType> sizes(in_sizes.begin(), in_sizes.end());
  std::vector<TensorImpl::DimOrderType> dim_order(sizes.size());
  std::iota(dim_order.begin(), dim_order.end(), 0);
  std::vector<TensorImpl::StridesType> strides(sizes.size(), 1);
  for (size_t d = sizes.size(); d-- > 1;) strides[d - 1] = strides[d] * sizes[d];

  for (int i = first + 1; i < argc; i += 2) {
    std::vector<char> input = read_file(argv[i]);
    if (input.empty() || input.size() % in_bytes != 0) {
      fail(std::string(argv[i]) + " has " + std::to_string(input.size()) +
           " bytes, not a multiple of the input tensor's " + std::to_string(in_bytes));
    }
    const size_t count = input.size() / in_bytes;
    std::vector<char> output(count * out_bytes);
    std::printf("{\"input\": %s, \"output\": %s, \"tensors\": %zu, \"ms\": [", json_string(argv[i]).c_str(),
                json_string(argv[i + 1]).c_str(), count);
    for (size_t k = 0; k < count; ++k) {
      TensorImpl impl(in_meta->scalar_type(), static_cast<ssize_t>(sizes.size()), sizes.data(),
                      input.data() + k * in_bytes, dim_order.data(), strides.data());
      const auto start = std::chrono::steady_clock::now();
      auto result = module.execute("forward", std::vector<EValue>{EValue(Tensor(&impl))});
      const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
      if (!result.ok()) check(result.error(), "executing forward");
      const Tensor out = result->at(0).toTensor();
      if (out.nbytes() != out_bytes) fail("output has " + std::to_string(out.nbytes()) + " bytes, not the declared " +
                                          std::to_string(out_bytes));
      std::memcpy(output.data() + k * out_bytes, out.const_data_ptr(), out_bytes);
      std::printf("%s%.3f", k ? ", " : "", ms);
    }
    std::printf("]}\n");
    write_file(argv[i + 1], output.data(), output.size());
  }
  if (etdump) {
    executorch::etdump::ETDumpResult dump = etdump->get_etdump_data();
    if (!dump.buf || !dump.size) fail("ETDump recorded nothing");
    write_file(etdump_path, dump.buf, dump.size);
    std::free(dump.buf);
  }
  return 0;
}
