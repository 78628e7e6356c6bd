// HyperTinyPW on TensorFlow Lite Micro: the portable core (see hypertiny_app.h).
#include "hypertiny_app.h"

#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <new>

#include "tensorflow/lite/c/builtin_op_data.h"
#include "tensorflow/lite/micro/kernels/kernel_util.h"
#include "tensorflow/lite/micro/memory_helpers.h"  // TfLiteEvalTensorByteLength
#include "tensorflow/lite/micro/micro_allocator.h"
#include "tensorflow/lite/micro/micro_context.h"
#include "tensorflow/lite/micro/micro_graph.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"  // declares Register_CALL_ONCE
#include "tensorflow/lite/micro/micro_op_resolver.h"
#include "tensorflow/lite/micro/micro_resource_variable.h"
#include "tensorflow/lite/schema/schema_generated.h"
#include "tensorflow/lite/schema/schema_utils.h"

namespace {

// The sketch's model, arena (all tensors, the allocator's bookkeeping and the
// resource variables: the synthesised kernels) and op resolver.
HypertinyConfig g_config = {};
// The config the sketch last gave hypertiny_setup(): its model is slot A, the
// base of code patches (g_config.model is slot B while a patch runs).
HypertinyConfig g_base = {};
uint8_t g_base_id[kHypertinyPatchBaseIdBytes];  // SHA-256(g_base.model)[:8], once g_base_id_known
bool g_base_id_known = false;

// HYPERTINY_STOCK_VARIABLES=1 builds the core with TFLM's own READ_VARIABLE
// and ASSIGN_VARIABLE, as a stock TFLM runs a boot file (each kernel in a
// resource buffer and copied into a planned filter at every inference): for
// measuring that RAM beside the core's (benchmarks/device.py).
#ifndef HYPERTINY_STOCK_VARIABLES
#define HYPERTINY_STOCK_VARIABLES 0
#endif

// What a resolver returns: TfLiteRegistration in TFLM of 2023 (the Arduino
// libraries), TFLMRegistration later.
using Registration = decltype(tflite::Register_CALL_ONCE());

// The interpreter is constructed in place: no heap.
alignas(tflite::MicroInterpreter) unsigned char
    g_interpreter_storage[sizeof(tflite::MicroInterpreter)];
tflite::MicroInterpreter* g_interpreter = nullptr;

HypertinyLogFn g_log = nullptr;
HypertinyMicrosFn g_micros = nullptr;
tflite::MicroProfilerInterface* g_profiler = nullptr;

// The init subgraph, as the core's CALL_ONCE kernel found it in Prepare
// (null for a model without CALL_ONCE).
tflite::MicroGraph* g_init_graph = nullptr;
int g_init_subgraph = -1;

// A generated kernel's only copy in RAM. The core's READ_VARIABLE takes it
// from the arena's persistent part in Prepare and points its output (the
// main graph's filter tensor) at it; TFLM then plans nothing for that tensor
// (it plans only tensors whose data is unset after Prepare, as it does for
// VAR_HANDLE's id), and Eval copies nothing. The core's ASSIGN_VARIABLE
// points the init subgraph's value at the same bytes, so the generator
// writes the kernel there. Indexed by resource id (TFLM numbers them 0, 1,
// ... in VAR_HANDLE's Prepare), g_variables entries in the arena.
struct HeldKernel {
  void* data;    // null until a READ_VARIABLE of the resource is prepared
  size_t bytes;
};
HeldKernel* g_held = nullptr;

bool g_ready = false;        // setup succeeded
bool g_synthesised = false;  // the init subgraph has run
int g_variables = 0;
uint32_t g_synthesis_us = 0;
uint32_t g_last_us = 0;

uint32_t now_us() { return g_micros != nullptr ? g_micros() : 0; }

// printf-style line to the platform log (truncated to the buffer).
void log_line(const char* format, ...) {
  if (g_log == nullptr) return;
  static char line[160];
  va_list args;
  va_start(args, format);
  vsnprintf(line, sizeof(line), format, args);
  va_end(args);
  g_log(line);
}

HypertinyStatus fail(HypertinyStatus status) {
  log_line("hypertiny: setup failed: %s", hypertiny_status_name(status));
  return status;
}

// Error strings of TFLM are compiled out of release builds, so the core
// checks the model against the sketch's resolver itself and names what is missing.
HypertinyStatus check_ops(const tflite::Model* model) {
  const tflite::MicroOpResolver& resolver = *g_config.resolver;
  const auto* codes = model->operator_codes();
  for (uint32_t i = 0; codes != nullptr && i < codes->size(); ++i) {
    const tflite::BuiltinOperator code = tflite::GetBuiltinCode(codes->Get(i));
    // A CUSTOM operator (TFLM's DECODE: "TFLM_DECODE") is registered by its custom code.
    const auto* custom = code == tflite::BuiltinOperator_CUSTOM ? codes->Get(i)->custom_code() : nullptr;
    const bool found = custom != nullptr ? resolver.FindOp(custom->c_str()) != nullptr
                                         : resolver.FindOp(code) != nullptr;
    if (!found) {
      log_line("hypertiny: op %s is not registered by the resolver (model_ops.h)",
               custom != nullptr ? custom->c_str() : tflite::EnumNameBuiltinOperator(code));
      return HypertinyStatus::kUnregisteredOp;
    }
  }
  return HypertinyStatus::kOk;
}

// The shared name of `op` if it is a VAR_HANDLE, else null.
const char* var_handle_name(const tflite::Model* model, const tflite::Operator* op) {
  const auto* options = op->builtin_options_as_VarHandleOptions();
  if (options == nullptr ||
      tflite::GetBuiltinCode(model->operator_codes()->Get(op->opcode_index())) != tflite::BuiltinOperator_VAR_HANDLE) {
    return nullptr;
  }
  return options->shared_name() != nullptr ? options->shared_name()->c_str() : "";
}

// Whether a VAR_HANDLE before operator `index` of subgraph `graph` (in
// subgraph order) has the shared name `name`.
bool named_before(const tflite::Model* model, uint32_t graph, uint32_t index, const char* name) {
  for (uint32_t g = 0; g <= graph; ++g) {
    const auto* ops = model->subgraphs()->Get(g)->operators();
    const uint32_t end = g < graph ? (ops != nullptr ? ops->size() : 0) : index;
    for (uint32_t i = 0; i < end; ++i) {
      const char* other = var_handle_name(model, ops->Get(i));
      if (other != nullptr && std::strcmp(other, name) == 0) return true;
    }
  }
  return false;
}

// Distinct VAR_HANDLE shared names over all subgraphs: the resource
// variables the model creates (one per generated layer). No storage: each
// name is compared with those before it (a few dozen operators).
int count_resource_variables(const tflite::Model* model) {
  int count = 0;
  const auto* subgraphs = model->subgraphs();
  for (uint32_t g = 0; subgraphs != nullptr && g < subgraphs->size(); ++g) {
    const auto* ops = subgraphs->Get(g)->operators();
    for (uint32_t i = 0; ops != nullptr && i < ops->size(); ++i) {
      const char* name = var_handle_name(model, ops->Get(i));
      if (name != nullptr && !named_before(model, g, i, name)) ++count;
    }
  }
  return count;
}

void teardown() {
  if (g_interpreter != nullptr) g_interpreter->~MicroInterpreter();
  g_interpreter = nullptr;
  g_init_graph = nullptr;
  g_init_subgraph = -1;
  g_held = nullptr;
  g_ready = false;
  g_synthesised = false;
  g_variables = 0;
  g_synthesis_us = 0;
  g_last_us = 0;
}

// Runs the init subgraph if it has not run yet, and times it.
HypertinyStatus synthesise() {
  if (g_synthesised || g_init_graph == nullptr) return HypertinyStatus::kOk;
  const uint32_t start = now_us();
  const TfLiteStatus status = g_init_graph->InvokeSubgraph(g_init_subgraph);
  g_synthesis_us = now_us() - start;
  if (status != kTfLiteOk) return HypertinyStatus::kInvoke;
  g_synthesised = true;
  return HypertinyStatus::kOk;
}

// The core's CALL_ONCE: TFLM's checks in Prepare, and an Eval that runs the
// init subgraph through synthesise(), so that BOOT can run it in setup
// without an inference and the first classify then skips it.
TfLiteStatus call_once_prepare(TfLiteContext* context, TfLiteNode* node) {
  const auto* params = static_cast<const TfLiteCallOnceParams*>(node->builtin_data);
  tflite::MicroGraph& graph = tflite::GetMicroContext(context)->graph();
  TF_LITE_ENSURE(context, node->inputs->size == 0 && node->outputs->size == 0);
  TF_LITE_ENSURE(context, params->init_subgraph_index > 0 && params->init_subgraph_index < graph.NumSubgraphs());
  // One init subgraph per model (what the exporter writes).
  TF_LITE_ENSURE(context, g_init_subgraph < 0 || g_init_subgraph == params->init_subgraph_index);
  g_init_graph = &graph;
  g_init_subgraph = params->init_subgraph_index;
  return kTfLiteOk;
}

TfLiteStatus call_once_eval(TfLiteContext* context, TfLiteNode* node) {
  (void)context;
  (void)node;
  return synthesise() == HypertinyStatus::kOk ? kTfLiteOk : kTfLiteError;
}

// A registration of the core's kernel for the builtin `code`.
Registration core_kernel(tflite::BuiltinOperator code, TfLiteStatus (*prepare)(TfLiteContext*, TfLiteNode*),
                         TfLiteStatus (*eval)(TfLiteContext*, TfLiteNode*)) {
  Registration registration = tflite::micro::RegisterOp(nullptr, prepare, eval);
  // The interpreter looks the op's parser up by this code (AddBuiltin sets it).
  registration.builtin_code = code;
  return registration;
}

// TFLM's own kernel for `op`, as the sketch's resolver registers it.
const Registration& stock(tflite::BuiltinOperator op) { return *g_config.resolver->FindOp(op); }

// The entry of a resource id, or null for an id outside the table.
HeldKernel* held_kernel(int32_t resource_id) {
  return g_held != nullptr && resource_id >= 0 && resource_id < g_variables ? &g_held[resource_id] : nullptr;
}

// The resource id a VAR_HANDLE of the same subgraph set in its Prepare, or
// null (a handle TFLM only knows at Eval: TFLM's kernels then do the work).
const int32_t* known_id(TfLiteContext* context, TfLiteNode* node) {
  const TfLiteEvalTensor* id = tflite::micro::GetEvalInput(context, node, 0);
  return id != nullptr ? id->data.i32 : nullptr;
}

// The core's READ_VARIABLE: TFLM's checks, then the filter tensor it writes
// becomes the resource's held kernel (taken here, persistent, once per
// resource); Eval copies nothing. Stock TFLM copies the resource into a
// planned filter tensor at every inference instead.
TfLiteStatus read_variable_prepare(TfLiteContext* context, TfLiteNode* node) {
  TF_LITE_ENSURE_OK(context, stock(tflite::BuiltinOperator_READ_VARIABLE).prepare(context, node));
  node->user_data = nullptr;
  const int32_t* id = known_id(context, node);
  if (id == nullptr) return kTfLiteOk;
  TfLiteEvalTensor* filter = tflite::micro::GetEvalOutput(context, node, 0);
  size_t bytes = 0;
  TF_LITE_ENSURE_OK(context, tflite::TfLiteEvalTensorByteLength(filter, &bytes));
  HeldKernel* entry = held_kernel(*id);
  TF_LITE_ENSURE(context, entry != nullptr);
  if (entry->data == nullptr) {  // the first read of this resource
    entry->data = context->AllocatePersistentBuffer(context, bytes);
    TF_LITE_ENSURE(context, entry->data != nullptr);
    entry->bytes = bytes;
  }
  TF_LITE_ENSURE_EQ(context, entry->bytes, bytes);
  filter->data.data = entry->data;
  node->user_data = entry;
  return kTfLiteOk;
}

TfLiteStatus read_variable_eval(TfLiteContext* context, TfLiteNode* node) {
  if (node->user_data != nullptr) return kTfLiteOk;  // the filter tensor is the kernel
  return stock(tflite::BuiltinOperator_READ_VARIABLE).invoke(context, node);
}

// The core's ASSIGN_VARIABLE: a resource held by a READ_VARIABLE takes no
// resource buffer (TFLM's Prepare would take one of the kernel's size). The
// value tensor, unless something already set its data (a constant, another
// resource's kernel), is pointed at the held kernel: TFLM plans nothing for
// it and the generator writes the kernel in place. Eval copies only a value
// that lives elsewhere.
TfLiteStatus assign_variable_prepare(TfLiteContext* context, TfLiteNode* node) {
  node->user_data = nullptr;
  const int32_t* id = known_id(context, node);
  HeldKernel* entry = id != nullptr ? held_kernel(*id) : nullptr;
  if (entry == nullptr || entry->data == nullptr) {  // no READ_VARIABLE holds it: TFLM's resource buffer
    return stock(tflite::BuiltinOperator_ASSIGN_VARIABLE).prepare(context, node);
  }
  TfLiteEvalTensor* value = context->GetEvalTensor(context, node->inputs->data[1]);
  TF_LITE_ENSURE(context, value != nullptr);
  size_t bytes = 0;
  TF_LITE_ENSURE_OK(context, tflite::TfLiteEvalTensorByteLength(value, &bytes));
  TF_LITE_ENSURE_EQ(context, bytes, entry->bytes);
  if (value->data.data == nullptr) value->data.data = entry->data;
  node->user_data = entry;
  return kTfLiteOk;
}

TfLiteStatus assign_variable_eval(TfLiteContext* context, TfLiteNode* node) {
  const auto* entry = static_cast<const HeldKernel*>(node->user_data);
  if (entry == nullptr) return stock(tflite::BuiltinOperator_ASSIGN_VARIABLE).invoke(context, node);
  const TfLiteEvalTensor* value = tflite::micro::GetEvalInput(context, node, 1);
  if (value->data.data != entry->data) std::memcpy(entry->data, value->data.data, entry->bytes);
  return kTfLiteOk;
}

// The resolver the interpreter sees: the sketch's (model_ops.h), except that
// CALL_ONCE, READ_VARIABLE and ASSIGN_VARIABLE (registered there with the
// plain Add...() every TFLM snapshot has) resolve to the core's kernels above.
class CoreResolver : public tflite::MicroOpResolver {
 public:
  using tflite::MicroOpResolver::FindOp;

  const Registration* FindOp(tflite::BuiltinOperator op) const override {
    const Registration* found = g_config.resolver->FindOp(op);
    if (found == nullptr) return found;
    switch (op) {
      case tflite::BuiltinOperator_CALL_ONCE: return &call_once_;
#if !HYPERTINY_STOCK_VARIABLES
      case tflite::BuiltinOperator_READ_VARIABLE: return &read_variable_;
      case tflite::BuiltinOperator_ASSIGN_VARIABLE: return &assign_variable_;
#endif
      default: return found;
    }
  }
  const Registration* FindOp(const char* op) const override { return g_config.resolver->FindOp(op); }
  tflite::TfLiteBridgeBuiltinParseFunction GetOpDataParser(tflite::BuiltinOperator op) const override {
    return g_config.resolver->GetOpDataParser(op);
  }

 private:
  const Registration call_once_ = core_kernel(tflite::BuiltinOperator_CALL_ONCE, call_once_prepare, call_once_eval);
  const Registration read_variable_ =
      core_kernel(tflite::BuiltinOperator_READ_VARIABLE, read_variable_prepare, read_variable_eval);
  const Registration assign_variable_ =
      core_kernel(tflite::BuiltinOperator_ASSIGN_VARIABLE, assign_variable_prepare, assign_variable_eval);
};

CoreResolver g_core_resolver;

// Runs the interpreter once and records the time.
HypertinyStatus invoke_timed() {
  const uint32_t start = now_us();
  const TfLiteStatus status = g_interpreter->Invoke();
  g_last_us = now_us() - start;
  return status == kTfLiteOk ? HypertinyStatus::kOk : HypertinyStatus::kInvoke;
}

}  // namespace

void hypertiny_set_profiler(tflite::MicroProfilerInterface* profiler) { g_profiler = profiler; }

void hypertiny_set_platform(HypertinyLogFn log, HypertinyMicrosFn micros) {
  g_log = log;
  g_micros = micros;
}

namespace {

HypertinyStatus setup_on(const HypertinyConfig& config, HypertinyMode mode) {
  teardown();
  if (config.model == nullptr || config.arena == nullptr || config.resolver == nullptr) {
    g_config = {};
    return fail(HypertinyStatus::kConfig);
  }
  g_config = config;
  const tflite::Model* model = tflite::GetModel(config.model);
  if (model->version() != TFLITE_SCHEMA_VERSION) {
    log_line("hypertiny: model schema %u, TFLM expects %d", static_cast<unsigned>(model->version()),
             TFLITE_SCHEMA_VERSION);
    return fail(HypertinyStatus::kSchemaVersion);
  }
  const HypertinyStatus ops = check_ops(model);
  if (ops != HypertinyStatus::kOk) return fail(ops);

  const int needed = count_resource_variables(model);
  if (needed > config.resource_variables) {
    log_line("hypertiny: model needs %d resource variables, the config (model_ops.h) reserves %d", needed,
             config.resource_variables);
    return fail(HypertinyStatus::kResourceVariables);
  }

  tflite::MicroAllocator* allocator = tflite::MicroAllocator::Create(config.arena, config.arena_bytes);
  if (allocator == nullptr) return fail(HypertinyStatus::kAllocateTensors);
  tflite::MicroResourceVariables* variables = nullptr;
  if (needed > 0) {
    // Exactly the model's count: with fewer, VAR_HANDLE fails in Prepare.
    variables = tflite::MicroResourceVariables::Create(allocator, needed);
#if !HYPERTINY_STOCK_VARIABLES
    g_held = static_cast<HeldKernel*>(allocator->AllocatePersistentBuffer(needed * sizeof(HeldKernel)));
#endif
    if (variables == nullptr || (!HYPERTINY_STOCK_VARIABLES && g_held == nullptr)) {
      log_line("hypertiny: no room in the arena for %d resource variables", needed);
      return fail(HypertinyStatus::kResourceVariables);
    }
    if (g_held != nullptr) std::memset(g_held, 0, needed * sizeof(HeldKernel));
  }
  g_variables = needed;
  g_interpreter =
      new (g_interpreter_storage) tflite::MicroInterpreter(model, g_core_resolver, allocator, variables, g_profiler);
  if (g_interpreter->AllocateTensors() != kTfLiteOk) {
    log_line("hypertiny: AllocateTensors failed (arena %u bytes, %d resource variables)",
             static_cast<unsigned>(config.arena_bytes), needed);
    return fail(HypertinyStatus::kAllocateTensors);
  }
  const TfLiteTensor* input = g_interpreter->input(0);
  const TfLiteTensor* output = g_interpreter->output(0);
  if (input == nullptr || output == nullptr || input->type != kTfLiteInt8 || output->type != kTfLiteInt8) {
    return fail(HypertinyStatus::kInputOutput);
  }
  if (mode == HypertinyMode::kBoot) {
    const HypertinyStatus status = synthesise();
    if (status != HypertinyStatus::kOk) return fail(status);
  }
  g_ready = true;
  return HypertinyStatus::kOk;
}

// Whether hypertiny_setup() gave a base (slot A); *setup (may be null) = kOk, or kNotSetUp if not. Slot A's
// id is hashed once (constant); then each patch costs an HMAC over it, not a hash of the model.
bool know_base(HypertinyStatus* setup) {
  if (setup != nullptr) *setup = g_base.model != nullptr ? HypertinyStatus::kOk : HypertinyStatus::kNotSetUp;
  if (g_base.model == nullptr) return false;
  if (!g_base_id_known) {
    uint8_t digest[32];
    hypertiny_sha256(g_base.model, g_base.model_bytes, digest);
    std::memcpy(g_base_id, digest, sizeof(g_base_id));
    g_base_id_known = true;
  }
  return true;
}

}  // namespace

HypertinyStatus hypertiny_setup(const HypertinyConfig& config, HypertinyMode mode) {
  if (config.model != g_base.model || config.model_bytes != g_base.model_bytes) g_base_id_known = false;
  g_base = config;
  return setup_on(config, mode);
}

HypertinyPatchStatus hypertiny_apply_patch(HypertinyPatchSlots& slots, const uint8_t* patch, size_t patch_bytes,
                                           HypertinyMode mode, HypertinyStatus* setup) {
  if (!know_base(setup)) return HypertinyPatchStatus::kBadArgument;
  // Verified against slot A while the current model keeps running.
  const HypertinyPatchStatus checked =
      hypertiny_patch_check_id(patch, patch_bytes, g_base_id, g_base.model_bytes, slots.key, slots.key_bytes,
                               slots.last_counter, slots.targets, slots.n_targets, nullptr);
  if (checked != HypertinyPatchStatus::kOk) {
    log_line("hypertiny: patch refused: %s", hypertiny_patch_status_name(checked));
    return checked;
  }
  if (slots.ram == nullptr || slots.ram_bytes < g_base.model_bytes) return HypertinyPatchStatus::kBadArgument;
  teardown();  // the interpreter may be reading slot B
  HypertinyPatchInfo info;
  const HypertinyPatchStatus applied = hypertiny_patch_apply_id(
      patch, patch_bytes, g_base.model, g_base_id, g_base.model_bytes, slots.key, slots.key_bytes,
      slots.last_counter, slots.targets, slots.n_targets, slots.ram, slots.ram_bytes, &info);
  HypertinyConfig patched = g_base;
  patched.model = slots.ram;
  const HypertinyStatus status =
      applied == HypertinyPatchStatus::kOk ? setup_on(patched, mode) : HypertinyStatus::kConfig;
  if (setup != nullptr) *setup = status;
  if (status != HypertinyStatus::kOk) {
    log_line("hypertiny: the patched model did not set up (%s): back to the base", hypertiny_status_name(status));
    setup_on(g_base, mode);
    return applied;
  }
  slots.last_counter = info.counter;
  log_line("hypertiny: patch %u applied: %u code buffer(s), %u bytes", static_cast<unsigned>(info.counter),
           static_cast<unsigned>(info.records), static_cast<unsigned>(info.value_bytes));
  return HypertinyPatchStatus::kOk;
}

bool hypertiny_patched() { return g_ready && g_base.model != nullptr && g_config.model != g_base.model; }

// The patch kept in flash (hypertiny_patch_store.h), applied at boot.
HypertinyStoreStatus hypertiny_restore_patch(HypertinyPatchSlots& slots, HypertinyPatchStore& store,
                                             HypertinyMode mode, HypertinyStatus* setup) {
  if (!know_base(setup)) return HypertinyStoreStatus::kBadArgument;
  HypertinyStoredPatch stored;
  const HypertinyStoreStatus loaded = hypertiny_patch_store_load(
      &store, g_base_id, g_base.model_bytes, slots.key, slots.key_bytes, slots.targets, slots.n_targets, &stored);
  for (unsigned page = 0; page < 2 && loaded != HypertinyStoreStatus::kBadArgument; ++page) {
    log_line("hypertiny: patch store page %u: %s%s%s", page, hypertiny_page_state_name(store.state[page]),
             store.state[page] == HypertinyPageState::kRefused ? " " : "",
             store.state[page] == HypertinyPageState::kRefused ? hypertiny_patch_status_name(store.refused[page])
                                                               : "");
  }
  if (loaded != HypertinyStoreStatus::kOk) return loaded;
  const uint32_t previous = slots.last_counter;
  slots.last_counter = stored.counter - 1;  // load verified it: counter >= 1
  const HypertinyPatchStatus applied = hypertiny_apply_patch(slots, stored.patch, stored.patch_bytes, mode, setup);
  // Also if the patched model did not set up (the base runs): the counter was accepted once.
  slots.last_counter = stored.counter > previous ? stored.counter : previous;
  return applied == HypertinyPatchStatus::kOk ? HypertinyStoreStatus::kOk : HypertinyStoreStatus::kBadArgument;
}

HypertinyStatus hypertiny_classify(const int8_t* window, int8_t* scores) {
  if (!g_ready) return HypertinyStatus::kNotSetUp;
  TfLiteTensor* input = g_interpreter->input(0);
  std::memcpy(input->data.int8, window, input->bytes);
  const HypertinyStatus status = invoke_timed();
  if (status != HypertinyStatus::kOk) return status;
  const TfLiteTensor* output = g_interpreter->output(0);
  std::memcpy(scores, output->data.int8, output->bytes);
  return HypertinyStatus::kOk;
}

size_t hypertiny_model_bytes() { return g_config.model_bytes; }
size_t hypertiny_arena_bytes() { return g_config.arena_bytes; }
size_t hypertiny_arena_used_bytes() { return g_ready ? g_interpreter->arena_used_bytes() : 0; }
size_t hypertiny_arena_needed_bytes() { return g_ready ? g_interpreter->arena_used_bytes() + 16 : 0; }
size_t hypertiny_input_bytes() { return g_ready ? g_interpreter->input(0)->bytes : 0; }
size_t hypertiny_output_bytes() { return g_ready ? g_interpreter->output(0)->bytes : 0; }
int hypertiny_resource_variables() { return g_variables; }
uint32_t hypertiny_synthesis_us() { return g_synthesis_us; }
bool hypertiny_has_init_subgraph() { return g_init_graph != nullptr; }
uint32_t hypertiny_last_inference_us() { return g_last_us; }

const char* hypertiny_status_name(HypertinyStatus status) {
  switch (status) {
    case HypertinyStatus::kOk: return "ok";
    case HypertinyStatus::kNotSetUp: return "not set up";
    case HypertinyStatus::kConfig: return "config";
    case HypertinyStatus::kSchemaVersion: return "schema version";
    case HypertinyStatus::kOpResolver: return "op resolver";
    case HypertinyStatus::kUnregisteredOp: return "unregistered op";
    case HypertinyStatus::kResourceVariables: return "resource variables";
    case HypertinyStatus::kAllocateTensors: return "allocate tensors";
    case HypertinyStatus::kInputOutput: return "input/output not int8";
    case HypertinyStatus::kInvoke: return "invoke";
  }
  return "unknown";
}
