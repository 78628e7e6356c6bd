// The emulated-board check of a sketch folder (`hypertiny export --arduino`):
// runs the library's core (tflm_app/src/hypertiny_app.cc) with the sketch's
// generated files on QEMU mps2-an386 in place of the .ino (which sets up the
// core the same way: arena, resolver, config), and prints one line per fact for
// hypertiny_keras.emulator.parse_log:
//
//   CALIBRATION expected=<insns> measured=<insns>
//   MODEL bytes=<B> input=<B> output=<B> tests=<n>
//   SETUP mode=BOOT|LAZY status=<s> insns=<n> arena=<B> used=<B> needed=<B> variables=<n>
//   VECTOR mode=<m> n=<i> result=pass|FAIL insns=<n> [scores=.. expected=..]
//   INFERENCE mode=<m> first=<insns> synthesis=<insns> steady_median=<insns> steady_min=.. steady_max=.. steady_n=..
//   EVENT invoke=<k> depth=<d> op=<name> insns=<n>     (per operator, MicroProfilerInterface)
//   DONE failures=<n>
//
// With patch_config.h and patch_test.h in the sketch folder (export_arduino
// with patch_key and test_patch: a code patch of the model and the int8
// outputs the TFLM Python wheel gives for the test windows on the patched
// file) it also applies that patch and bad patches made from it, printing
// before DONE, per case:
//
//   PATCH case=<name> mode=BOOT|LAZY status=<patch status> expected=<status> setup=<s> patched=0|1
//         counter=<n> insns=<apply: check + copy + setup> synthesis=<insns of the last synthesis>
//   PATCH_VECTOR after=<case> model=base|patched n=<i> result=FAIL scores=.. expected=..  (failures only)
//   PATCH_VECTORS after=<case> model=base|patched passed=<n> failed=<n> first=<insns of the first vector>
//
// Every vector is classified 1 + kRepeats times; the first pass is compared
// with the expected int8 outputs (the TFLM Python wheel's), the repeats too.
#include <cstdint>
#include <cstring>

#include "arena_config.h"
#include "board.h"
#include "hypertiny_app.h"
#include "model_data.h"
#include "model_ops.h"
#include "tensorflow/lite/micro/micro_profiler_interface.h"
#include "test_vectors.h"
#if __has_include("patch_test.h")
#include "patch_config.h"
#include "patch_test.h"
#define HYPERTINY_PATCH_TEST 1
#endif

namespace {

// What the .ino has: the arena, the resolver of the model's operators, the config.
alignas(16) uint8_t g_arena[HYPERTINY_ARENA_BYTES];
HypertinyOpResolver g_resolver;
HypertinyConfig g_config = {g_model, 0, g_arena, sizeof(g_arena), &g_resolver, HYPERTINY_RESOURCE_VARIABLES};

constexpr int kRepeats = 2;
constexpr int kMaxRuns = (kHypertinyTestCount > 0 ? kHypertinyTestCount : 1) * (1 + kRepeats);
uint32_t g_runs[kMaxRuns];

uint32_t insns(uint32_t ticks) { return ticks * kBoardInstructionsPerTick; }

void core_log(const char* line) { board_print("LOG %s\n", line); }

// The core's clock: raw timer ticks, so its "us" figures are ticks here.
uint32_t core_clock() { return board_ticks(); }

// Per-operator events with nesting depth (1 = inside CALL_ONCE's init subgraph).
class EventRecorder : public tflite::MicroProfilerInterface {
 public:
  static constexpr int kMaxEvents = 512;

  uint32_t BeginEvent(const char* tag) override {
    if (count_ >= kMaxEvents) return kMaxEvents;
    Event& event = events_[count_];
    event.tag = tag;
    event.depth = open_++;
    event.begin = board_ticks();
    event.end = event.begin;
    return count_++;
  }

  void EndEvent(uint32_t handle) override {
    if (handle < kMaxEvents) events_[handle].end = board_ticks();
    --open_;
  }

  void Clear() { count_ = open_ = 0; }

  void Print(int invoke) const {
    for (int i = 0; i < count_; ++i) {
      const Event& e = events_[i];
      board_print("EVENT invoke=%d depth=%d op=%s insns=%lu\n", invoke, e.depth, e.tag,
                  static_cast<unsigned long>(insns(e.end - e.begin)));
    }
  }

 private:
  struct Event {
    const char* tag;
    int depth;
    uint32_t begin, end;
  };
  Event events_[kMaxEvents];
  int count_ = 0;
  int open_ = 0;
};
EventRecorder g_recorder;

void sort(uint32_t* values, int n) {
  for (int i = 1; i < n; ++i) {
    const uint32_t v = values[i];
    int j = i - 1;
    for (; j >= 0 && values[j] > v; --j) values[j + 1] = values[j];
    values[j + 1] = v;
  }
}

void print_scores(const char* name, const int8_t* scores) {
  board_print(" %s=", name);
  for (int i = 0; i < kHypertinyOutputBytes; ++i) board_print(i ? ",%d" : "%d", scores[i]);
}

// Setup in `mode`, then every test vector 1 + kRepeats times. Returns the failures.
int run(HypertinyMode mode, const char* name) {
  const uint32_t start = board_ticks();
  const HypertinyStatus status = hypertiny_setup(g_config, mode);
  const uint32_t setup = board_ticks() - start;
  board_print("SETUP mode=%s status=%s insns=%lu arena=%u used=%u needed=%u variables=%d\n", name,
              hypertiny_status_name(status), static_cast<unsigned long>(insns(setup)),
              static_cast<unsigned>(hypertiny_arena_bytes()), static_cast<unsigned>(hypertiny_arena_used_bytes()),
              static_cast<unsigned>(hypertiny_arena_needed_bytes()), hypertiny_resource_variables());
  if (status != HypertinyStatus::kOk) return 1;
  if (hypertiny_input_bytes() != static_cast<size_t>(kHypertinyInputBytes) ||
      hypertiny_output_bytes() != static_cast<size_t>(kHypertinyOutputBytes)) {
    board_print("LOG test_vectors.h does not match the model: %u/%u input, %u/%u output bytes\n",
                static_cast<unsigned>(hypertiny_input_bytes()), static_cast<unsigned>(kHypertinyInputBytes),
                static_cast<unsigned>(hypertiny_output_bytes()), static_cast<unsigned>(kHypertinyOutputBytes));
    return 1;
  }
  int failures = 0, runs = 0;
  int8_t scores[kHypertinyOutputBytes > 0 ? kHypertinyOutputBytes : 1];
  for (int pass = 0; pass <= kRepeats; ++pass) {
    for (int n = 0; n < kHypertinyTestCount; ++n) {
      const uint32_t a = board_ticks();
      const HypertinyStatus s = hypertiny_classify(kHypertinyTestWindows[n], scores);
      g_runs[runs++] = board_ticks() - a;
      const bool ok = s == HypertinyStatus::kOk &&
                      std::memcmp(scores, kHypertinyTestExpected[n], kHypertinyOutputBytes) == 0;
      failures += ok ? 0 : 1;
      if (pass > 0 && ok) continue;
      board_print("VECTOR mode=%s n=%d pass=%d result=%s insns=%lu", name, n, pass,
                  s != HypertinyStatus::kOk ? hypertiny_status_name(s) : (ok ? "pass" : "FAIL"),
                  static_cast<unsigned long>(insns(g_runs[runs - 1])));
      if (!ok) {
        print_scores("scores", scores);
        print_scores("expected", kHypertinyTestExpected[n]);
      }
      board_print("\n");
    }
  }
  if (runs > 1) {
    const uint32_t first = g_runs[0];
    sort(g_runs + 1, runs - 1);
    const int n = runs - 1;
    const uint32_t median = n % 2 ? g_runs[1 + n / 2] : (g_runs[n / 2] + g_runs[1 + n / 2]) / 2;
    board_print("INFERENCE mode=%s first=%lu synthesis=%lu steady_median=%lu steady_min=%lu steady_max=%lu steady_n=%d\n",
                name, static_cast<unsigned long>(insns(first)),
                static_cast<unsigned long>(insns(hypertiny_synthesis_us())), static_cast<unsigned long>(insns(median)),
                static_cast<unsigned long>(insns(g_runs[1])), static_cast<unsigned long>(insns(g_runs[runs - 1])), n);
  }
  return failures;
}

// Per-operator instructions of the first invoke (LAZY: it runs the init
// subgraph) and of a steady-state one.
int profile() {
  hypertiny_set_profiler(&g_recorder);
  const HypertinyStatus status = hypertiny_setup(g_config, HypertinyMode::kLazy);
  if (status != HypertinyStatus::kOk || kHypertinyTestCount == 0) {
    hypertiny_set_profiler(nullptr);
    return status == HypertinyStatus::kOk ? 0 : 1;
  }
  int8_t scores[kHypertinyOutputBytes > 0 ? kHypertinyOutputBytes : 1];
  int failures = 0;
  for (int invoke = 1; invoke <= 3; ++invoke) {
    g_recorder.Clear();
    failures += hypertiny_classify(kHypertinyTestWindows[0], scores) == HypertinyStatus::kOk ? 0 : 1;
    if (invoke != 2) g_recorder.Print(invoke);
  }
  hypertiny_set_profiler(nullptr);
  return failures;
}

#ifdef HYPERTINY_PATCH_TEST
// patch_config.h (the key, the code-buffer targets) and patch_test.h (a valid
// patch, its counter, the expected outputs of the patched model), both
// written by export_arduino(patch_key=..., test_patch=...).
alignas(16) uint8_t g_slot_b[HYPERTINY_PATCH_MODEL_BYTES];
uint8_t g_bad[kPatchTestPatchBytes];

// Signs g_bad[0, bytes) as the host does: its last 8 bytes become HMAC(key, the rest)[:8].
void resign(size_t bytes) {
  uint8_t mac[32];
  hypertiny_hmac_sha256(kHypertinyPatchKey, kHypertinyPatchKeyBytes, g_bad, bytes - kHypertinyPatchTagBytes, mac);
  std::memcpy(g_bad + bytes - kHypertinyPatchTagBytes, mac, kHypertinyPatchTagBytes);
}

// Every test vector on the running model against `expected`: failures are
// printed with their scores, then one PATCH_VECTORS line.
int patch_vectors(const char* after, const char* model, const int8_t (*expected)[kHypertinyOutputBytes]) {
  int failures = 0;
  uint32_t first = 0;
  int8_t scores[kHypertinyOutputBytes > 0 ? kHypertinyOutputBytes : 1];
  for (int n = 0; n < kHypertinyTestCount; ++n) {
    const uint32_t a = board_ticks();
    const HypertinyStatus s = hypertiny_classify(kHypertinyTestWindows[n], scores);
    if (n == 0) first = board_ticks() - a;
    const bool ok = s == HypertinyStatus::kOk && std::memcmp(scores, expected[n], kHypertinyOutputBytes) == 0;
    if (ok) continue;
    ++failures;
    board_print("PATCH_VECTOR after=%s model=%s n=%d result=FAIL", after, model, n);
    print_scores("scores", scores);
    print_scores("expected", expected[n]);
    board_print("\n");
  }
  board_print("PATCH_VECTORS after=%s model=%s passed=%d failed=%d first=%lu\n", after, model,
              kHypertinyTestCount - failures, failures, static_cast<unsigned long>(insns(first)));
  return failures;
}

// One apply of g_bad[0, bytes) (or of the valid patch) in `mode`, its PATCH
// line, then every vector on what runs afterwards. Returns the failures.
int patch_case(const char* name, HypertinyPatchSlots& slots, const uint8_t* patch, size_t bytes,
               HypertinyMode mode, HypertinyPatchStatus expected, bool patched_after) {
  HypertinyStatus setup = HypertinyStatus::kOk;
  const uint32_t start = board_ticks();
  const HypertinyPatchStatus status = hypertiny_apply_patch(slots, patch, bytes, mode, &setup);
  const uint32_t ticks = board_ticks() - start;
  board_print("PATCH case=%s mode=%s status=%s expected=%s setup=%s patched=%d counter=%lu insns=%lu synthesis=%lu\n",
              name, mode == HypertinyMode::kBoot ? "BOOT" : "LAZY", hypertiny_patch_status_name(status),
              hypertiny_patch_status_name(expected), hypertiny_status_name(setup), hypertiny_patched() ? 1 : 0,
              static_cast<unsigned long>(slots.last_counter), static_cast<unsigned long>(insns(ticks)),
              static_cast<unsigned long>(insns(hypertiny_synthesis_us())));
  int failures = status == expected && setup == HypertinyStatus::kOk && hypertiny_patched() == patched_after ? 0 : 1;
  failures += patched_after ? patch_vectors(name, "patched", kPatchTestExpected)
                            : patch_vectors(name, "base", kHypertinyTestExpected);
  return failures;
}

// The base; bad patches (each refused, the base still passes every vector);
// the valid patch in BOOT; a replay of it and a tampered one (refused, the
// patched model keeps running); the valid patch again in LAZY.
int patch_run() {
  if (hypertiny_setup(g_config, HypertinyMode::kBoot) != HypertinyStatus::kOk) {
    board_print("LOG patch test: setup failed\n");
    return 1;
  }
  HypertinyPatchSlots slots = {g_slot_b, sizeof(g_slot_b), kHypertinyPatchKey, kHypertinyPatchKeyBytes,
                               kHypertinyPatchTargets, kHypertinyPatchTargetCount, kPatchTestCounter - 1};
  const size_t n = kPatchTestPatchBytes;
  const size_t record = kHypertinyPatchHeaderBytes;  // the first record: u16 buffer, u8 length, bytes
  const HypertinyMode boot = HypertinyMode::kBoot;
  using S = HypertinyPatchStatus;
  int failures = 0;
  std::memcpy(g_bad, kPatchTestPatch, n);
  g_bad[record + kHypertinyPatchRecordHeaderBytes] ^= 1;  // a code byte, tag not renewed
  failures += patch_case("tampered", slots, g_bad, n, boot, S::kBadTag, false);
  failures += patch_case("cut", slots, kPatchTestPatch, n - 1, boot, S::kBadTag, false);  // a byte lost in transit
  failures += patch_case("short", slots, kPatchTestPatch, kHypertinyPatchHeaderBytes, boot, S::kTruncated, false);
  std::memcpy(g_bad, kPatchTestPatch, n - kHypertinyPatchTagBytes - 1);  // the last code byte dropped, re-signed
  resign(n - 1);
  failures += patch_case("truncated", slots, g_bad, n - 1, boot, S::kTruncated, false);
  std::memcpy(g_bad, kPatchTestPatch, n);
  g_bad[3] ^= 0x80;  // the base id, re-signed: a genuine patch of another file
  resign(n);
  failures += patch_case("wrong_base", slots, g_bad, n, boot, S::kWrongBase, false);
  std::memcpy(g_bad, kPatchTestPatch, n);
  g_bad[record] = 0;  // the first record names buffer 0 (never a code buffer), re-signed
  g_bad[record + 1] = 0;
  resign(n);
  failures += patch_case("out_of_bounds", slots, g_bad, n, boot, S::kNotACodeBuffer, false);
  failures += patch_case("valid", slots, kPatchTestPatch, n, boot, S::kOk, true);
  failures += patch_case("replayed", slots, kPatchTestPatch, n, boot, S::kReplayed, true);
  std::memcpy(g_bad, kPatchTestPatch, n);
  g_bad[n - 1] ^= 1;  // the tag
  failures += patch_case("tampered_tag", slots, g_bad, n, boot, S::kBadTag, true);
  slots.last_counter = kPatchTestCounter - 1;  // as after a reset of the counter (tests only)
  failures += patch_case("valid_lazy", slots, kPatchTestPatch, n, HypertinyMode::kLazy, S::kOk, true);
  return failures;
}
#endif

// A loop of exactly 4 instructions an iteration checks the counter's scale.
void calibrate() {
  constexpr uint32_t kLoops = 250000;
  uint32_t n = kLoops;
  const uint32_t a = board_ticks();
  asm volatile(
      "1: subs %0, %0, #1\n\t"
      "nop\n\t"
      "nop\n\t"
      "bne 1b"
      : "+r"(n)
      :
      : "cc");
  board_print("CALIBRATION expected=%lu measured=%lu\n", static_cast<unsigned long>(4 * kLoops),
              static_cast<unsigned long>(insns(board_ticks() - a)));
}

}  // namespace

int main() {
  calibrate();
  hypertiny_set_platform(core_log, core_clock);
  g_config.model_bytes = g_model_len;
  if (hypertiny_register_ops(g_resolver) != kTfLiteOk) {
    board_print("LOG hypertiny_register_ops failed\nDONE failures=1\n");
    return 1;
  }
  board_print("MODEL bytes=%u input=%d output=%d tests=%d\n", static_cast<unsigned>(g_model_len),
              kHypertinyInputBytes, kHypertinyOutputBytes, kHypertinyTestCount);
  int failures = run(HypertinyMode::kBoot, "BOOT");
  failures += run(HypertinyMode::kLazy, "LAZY");
  failures += profile();
#ifdef HYPERTINY_PATCH_TEST
  failures += patch_run();
#endif
  board_print("DONE failures=%d\n", failures);
  return failures == 0 ? 0 : 1;
}
