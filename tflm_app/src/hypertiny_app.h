// HyperTinyPW on TensorFlow Lite Micro: the portable core of tflm_app.
//
// The core of the HyperTinyPW Arduino library (tflm_app/src). It knows no model:
// the sketch hands it one in a HypertinyConfig, built from the files
// `hypertiny export --arduino` generates into the sketch folder (model_data.h/.cc:
// the model; arena_config.h: the arena size; model_ops.h: the op resolver and
// the resource-variable count). A `boot`
// model synthesises its pointwise kernels on the device: subgraph 0 starts
// with CALL_ONCE of an init subgraph that writes them into resource variables.
// The core runs CALL_ONCE with its own kernel (model_ops.h registers the plain
// AddCallOnce(); the core's resolver swaps the kernel in, which works with the
// 2023 TFLM of the Arduino libraries and today's): it runs the init subgraph exactly once,
// in hypertiny_setup() (BOOT) or inside the first classify (LAZY), and times
// the synthesis alone. Later invokes only read the variables. READ_VARIABLE
// and ASSIGN_VARIABLE (also registered plain) resolve to the core's kernels
// as well: each kernel is held once in the arena, the generator writes it in
// place and the convolution reads it there (TFLM's would keep a resource
// buffer and copy it into a planned tensor at every inference).
//
// C++17, no dynamic allocation (the interpreter lives in static storage, all
// tensors in the sketch's arena), no exceptions. Not thread-safe.
#ifndef HYPERTINY_APP_H_
#define HYPERTINY_APP_H_

#include <cstddef>
#include <cstdint>

#include "hypertiny_patch.h"
#include "hypertiny_patch_store.h"

namespace tflite {
class MicroOpResolver;
class MicroProfilerInterface;
}  // namespace tflite

// When the one-off weight synthesis is paid.
enum class HypertinyMode : uint8_t {
  kBoot,  // hypertiny_setup() runs the init subgraph (no inference)
  kLazy,  // the first hypertiny_classify() pays it
};

enum class HypertinyStatus : uint8_t {
  kOk,
  kNotSetUp,           // hypertiny_classify() before a successful setup
  kConfig,             // a null model, arena or resolver in the HypertinyConfig
  kSchemaVersion,      // model flatbuffer has another schema version
  kOpResolver,         // registering the model's operators failed
  kUnregisteredOp,     // the model uses an op the resolver does not register
  kResourceVariables,  // more than config.resource_variables, or none could be created
  kAllocateTensors,    // arena too small or a kernel's Prepare failed
  kInputOutput,        // input or output tensor is not int8
  kInvoke,             // a kernel's Eval failed
};

// Platform hooks. `log` receives one line without its newline; `micros` is a
// free-running microsecond clock (wrap-around is handled). Either may be null.
using HypertinyLogFn = void (*)(const char* line);
using HypertinyMicrosFn = uint32_t (*)();
void hypertiny_set_platform(HypertinyLogFn log, HypertinyMicrosFn micros);

// Optional per-operator profiler (TFLM's MicroProfiler or any
// MicroProfilerInterface), handed to the interpreter by the next
// hypertiny_setup(); null (the default) profiles nothing. TFLM calls it only
// in builds that keep error strings (no -DTF_LITE_STRIP_ERROR_STRINGS).
void hypertiny_set_profiler(tflite::MicroProfilerInterface* profiler);

// What the sketch hands the core; with the files of `hypertiny export --arduino`:
//
//   #include "arena_config.h"
//   #include "model_data.h"
//   #include "model_ops.h"
//   alignas(16) static uint8_t g_arena[HYPERTINY_ARENA_BYTES];
//   static HypertinyOpResolver g_resolver;  // register once: hypertiny_register_ops(g_resolver)
//   HypertinyConfig config{g_model, g_model_len, g_arena, sizeof(g_arena), &g_resolver,
//                          HYPERTINY_RESOURCE_VARIABLES};
//
// The core keeps the pointers: all of them must outlive the interpreter.
struct HypertinyConfig {
  const unsigned char* model;  // the .tflite flatbuffer, 16-byte aligned (g_model)
  size_t model_bytes;          // g_model_len
  uint8_t* arena;              // tensor arena, 16-byte aligned
  size_t arena_bytes;          // HYPERTINY_ARENA_BYTES
  // Registers exactly the model's operators, CALL_ONCE with the plain
  // AddCallOnce() (model_ops.h's hypertiny_register_ops fills one).
  const tflite::MicroOpResolver* resolver;
  int resource_variables;      // most the model may create (HYPERTINY_RESOURCE_VARIABLES)
};

// Builds the interpreter for `config` (may be called again to start over,
// e.g. to switch mode). Logs what failed, with the counts involved, before
// returning it.
HypertinyStatus hypertiny_setup(const HypertinyConfig& config, HypertinyMode mode);

// Runs one window: `window` holds hypertiny_input_bytes() int8 values in the
// model's input quantization, `scores` receives hypertiny_output_bytes().
HypertinyStatus hypertiny_classify(const int8_t* window, int8_t* scores);

// Figures, valid after a successful setup.
size_t hypertiny_model_bytes();       // bytes of the model (config.model_bytes)
size_t hypertiny_arena_bytes();       // bytes of the arena (config.arena_bytes)
size_t hypertiny_arena_used_bytes();  // bytes of it the interpreter used
// Smallest arena that is known to work for this model on this
// target: used + 16 (TFLM's rule; the tail of the arena is aligned, so an
// arena of exactly the used bytes can fail).
size_t hypertiny_arena_needed_bytes();
size_t hypertiny_input_bytes();       // int8 values of one window
size_t hypertiny_output_bytes();      // int8 scores of one window
int hypertiny_resource_variables();   // resource variables created
// Microseconds the init subgraph took (the synthesis alone, no inference):
// in setup (BOOT) or inside the first classify (LAZY; 0 before it). 0 for a
// model without an init subgraph.
uint32_t hypertiny_synthesis_us();
bool hypertiny_has_init_subgraph();   // the model synthesises its kernels
uint32_t hypertiny_last_inference_us();  // microseconds of the last classify

const char* hypertiny_status_name(HypertinyStatus status);

// Code patches (hypertiny_patch.h): slot A is the base model the sketch gave
// hypertiny_setup() (config.model, g_model in flash; never written), slot B a
// 16-byte aligned RAM array of at least config.model_bytes (the RAM cost of
// patching: one model copy).
struct HypertinyPatchSlots {
  uint8_t* ram;                          // slot B
  size_t ram_bytes;
  const uint8_t* key;                    // the HMAC key (16 bytes or more)
  size_t key_bytes;
  const HypertinyPatchTarget* targets;   // the base's code buffers
  size_t n_targets;
  uint32_t last_counter;                 // raised to the patch's counter when it runs
};

// Verifies `patch` against slot A (hypertiny_patch_check). On a refusal
// nothing changes: the model that was running keeps running, slot B is not
// written, and *setup is kOk. On OK: stops the interpreter, writes slot A +
// the patch's records into slot B and sets the interpreter up on slot B with
// the last hypertiny_setup()'s arena and resolver, in `mode` (kBoot: the init
// subgraph re-synthesises the kernels from the new codes now); *setup is that
// setup's status. If it fails, the core sets the base up again (and
// last_counter is not raised). Needs a hypertiny_setup() first (else
// kBadArgument and *setup = kNotSetUp). `setup` may be null.
HypertinyPatchStatus hypertiny_apply_patch(HypertinyPatchSlots& slots, const uint8_t* patch, size_t patch_bytes,
                                           HypertinyMode mode, HypertinyStatus* setup);

// Whether the interpreter runs slot B (a patched model) rather than the base.
bool hypertiny_patched();

// Boot with the patch kept in flash (hypertiny_patch_store.h): after
// hypertiny_setup(), loads the store (hypertiny_patch_store_load against
// slot A, with slots' key and targets) and, if a committed record verifies,
// applies the newest one as hypertiny_apply_patch does (*setup: its setup
// status) and sets slots.last_counter to its counter, also when the patched
// model fails to set up (the base then runs). Returns kOk (the stored patch
// runs, or was tried), kNothing (the base runs, slots.last_counter
// unchanged), kBadArgument (no setup yet, or a bad store). After a later
// hypertiny_apply_patch returns kOk, the sketch keeps the patch with
// hypertiny_patch_store_save(&store, patch, bytes).
HypertinyStoreStatus hypertiny_restore_patch(HypertinyPatchSlots& slots, HypertinyPatchStore& store,
                                             HypertinyMode mode, HypertinyStatus* setup);

#endif  // HYPERTINY_APP_H_
