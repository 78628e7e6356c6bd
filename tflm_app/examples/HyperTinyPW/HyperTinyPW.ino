// HyperTinyPW on an Arduino Nano 33 BLE (Mbed OS core): runs the model that
// `hypertiny export --arduino` wrote into this folder, first on the
// compiled-in test windows, then on windows sent over Serial.
//
// Needs two Arduino libraries installed (tflm_app/README.md of hypertiny-keras):
//   - HyperTinyPW (this example's library, the portable core):
//       hypertiny arduino-library --out ~/Arduino/libraries/HyperTinyPW
//     (or --zip HyperTinyPW.zip, then Sketch > Include Library > Add .ZIP Library);
//   - a TensorFlow Lite Micro library, the one tflm_library.h names (default
//     Chirale_TensorFLowLite: Library Manager, search "Chirale").
//
// The model is not part of the library: this sketch compiles only in a
// folder made by
//   hypertiny export --arduino <folder> MODEL.tflite --windows WINDOWS.npz
// which writes the generated headers (model_data.h/.cc, model_ops.h,
// arena_config.h, test_vectors.h, tflm_library.h) and a copy of this file
// named after the folder. Opened from File > Examples, it stops with the
// #error below.
//
// Serial protocol (115200 baud, lines end with '\n'; '\r' is ignored):
//   host -> board  "W v0 v1 ... vN-1"  one window: N = input bytes int8
//                                       values (already quantized), separated
//                                       by spaces or commas
//                  "T"                 run the compiled-in test windows again
//                  "I"                 print the figures again
//                  "P <hex>"           a code patch (`hypertiny patch make`), in
//                                       hex; only with a patch_config.h here
//   board -> host  "R <class> <s0> ... <sK-1> <us>"  predicted class (argmax),
//                                       the K int8 scores, microseconds
//                  "A <counter> <us>"  the patch was verified and the patched
//                                       model runs (kernels re-synthesised)
//                  "E <message>"       the line was not understood, or the
//                                       patch refused ("E patch BAD_TAG", ...)
//
// Code patches need a patch_config.h in this folder (`hypertiny export --arduino
// DIR boot.tflite --patch-key-file KEY` writes it; tflm_app/README.md): HYPERTINY_PATCH_MODEL_BYTES
// (= g_model_len), kHypertinyPatchKey[] and kHypertinyPatchKeyBytes (the HMAC
// key), kHypertinyPatchTargets[] and kHypertinyPatchTargetCount (the base's
// code buffers). The patched model lives in RAM (one model copy). On the
// Mbed OS core (Nano 33 BLE) the last accepted patch is also kept in the
// last two 4 kB flash pages (hypertiny_patch_store.h): at setup it is
// verified again and applied, with its counter (a replay stays refused after
// a reset); an upload of a sketch erases those pages. Elsewhere a reset
// brings back the base and the counter 0.
#if !__has_include("model_data.h")
#error "HyperTinyPW: no model here. Run `hypertiny export --arduino <sketch folder> MODEL.tflite` and open the sketch it writes (see the top of this file)."
#else
#include "tflm_library.h"  // the TFLM Arduino library's header (export --library): the IDE then builds it

#include <HyperTinyPW.h>  // the HyperTinyPW library: the IDE then builds it

#include "arena_config.h"
#include "model_data.h"
#include "model_ops.h"
#include "tensorflow/lite/micro/system_setup.h"
#include "test_vectors.h"
#if __has_include("patch_config.h")
#include "patch_config.h"
#define HYPERTINY_PATCHES 1
#endif

// The tensor arena and the op resolver of exactly the model's operators
// (model_ops.h), handed to the library's core with the model.
alignas(16) static uint8_t g_arena[HYPERTINY_ARENA_BYTES];
static HypertinyOpResolver g_resolver;

// BOOT: weight synthesis during setup. kLazy: the first inference pays it.
static const HypertinyMode kMode = HypertinyMode::kBoot;

static int8_t g_window[kHypertinyInputBytes];
static int8_t g_scores[kHypertinyOutputBytes];
static char g_line[96];

#ifdef HYPERTINY_PATCHES
// Slot B: the patched model, in RAM. Slot A is g_model in flash.
alignas(16) static uint8_t g_slot_b[HYPERTINY_PATCH_MODEL_BYTES];
static HypertinyPatchSlots g_slots = {g_slot_b, sizeof(g_slot_b), kHypertinyPatchKey, kHypertinyPatchKeyBytes,
                                      kHypertinyPatchTargets, kHypertinyPatchTargetCount, 0};
#endif
#if defined(ARDUINO_ARCH_MBED) && defined(HYPERTINY_PATCHES)
// The patch store over mbed::FlashIAP: pages P0, P1 = the last two sectors of
// the flash (4 kB each on the nRF52840), used only if they lie past the
// sketch. The nRF52840's flash is memory mapped: a page is read in place.
#include <FlashIAP.h>
#define HYPERTINY_PATCH_STORE 1
static mbed::FlashIAP g_flash_iap;
static uint32_t g_store_address = 0;  // P0; P1 follows it
static HypertinyPatchStore g_store = {};
static bool g_store_ready = false;

static const uint8_t* store_read(void*, unsigned page) {
  return reinterpret_cast<const uint8_t*>(g_store_address + page * g_store.flash.page_bytes);
}
static bool store_erase(void*, unsigned page) {
  return g_flash_iap.erase(g_store_address + page * g_store.flash.page_bytes, g_store.flash.page_bytes) == 0;
}
static bool store_write(void*, unsigned page, size_t offset, const uint8_t* data, size_t len) {
  return g_flash_iap.program(data, g_store_address + page * g_store.flash.page_bytes + offset, len) == 0;
}

// At setup: finds the two pages and applies the stored patch, if one verifies.
static void restore_patch() {
  const bool flash_ok = g_flash_iap.init() == 0;
  const uint32_t end = flash_ok ? g_flash_iap.get_flash_start() + g_flash_iap.get_flash_size() : 0;
  const uint32_t sector = flash_ok ? g_flash_iap.get_sector_size(end - 1) : 0;
  g_store_address = end - 2 * sector;
  if (!flash_ok || g_flash_iap.get_sector_size(g_store_address) != sector ||
      g_store_address < FLASHIAP_APP_ROM_END_ADDR) {
    Serial.println("patch store: no two free flash sectors past the sketch: patches are not kept");
    return;
  }
  g_store.flash = {sector, g_flash_iap.get_page_size(), store_read, store_erase, store_write, nullptr};
  HypertinyStatus setup = HypertinyStatus::kOk;
  const HypertinyStoreStatus status = hypertiny_restore_patch(g_slots, g_store, kMode, &setup);
  g_store_ready = status == HypertinyStoreStatus::kOk || status == HypertinyStoreStatus::kNothing;
  snprintf(g_line, sizeof(g_line), "patch store at 0x%lx: %s, counter %lu%s%s",
           static_cast<unsigned long>(g_store_address), hypertiny_store_status_name(status),
           static_cast<unsigned long>(g_slots.last_counter), setup == HypertinyStatus::kOk ? "" : ", setup: ",
           setup == HypertinyStatus::kOk ? "" : hypertiny_status_name(setup));
  Serial.println(g_line);
}

// After a patch ran: keeps it (one page erase, ~85 ms, and its words).
static void save_patch(const uint8_t* patch, size_t bytes) {
  const uint32_t start = micros();
  const HypertinyStoreStatus status =
      g_store_ready ? hypertiny_patch_store_save(&g_store, patch, bytes) : HypertinyStoreStatus::kNotLoaded;
  snprintf(g_line, sizeof(g_line), "patch store: save %s (%lu us)%s", hypertiny_store_status_name(status),
           static_cast<unsigned long>(micros() - start),
           status == HypertinyStoreStatus::kOk ? "" : ", not kept over a reset");
  Serial.println(g_line);
}
#endif
static uint8_t g_patch[512];  // a patch being read ("P" line)
static size_t g_patch_bytes = 0;
static int g_nibble = -1;     // the high half of the byte being read, or -1

static void platform_log(const char* line) { Serial.println(line); }
static uint32_t platform_micros() { return micros(); }

static int argmax(const int8_t* scores) {
  int best = 0;
  for (int i = 1; i < kHypertinyOutputBytes; ++i) best = scores[i] > scores[best] ? i : best;
  return best;
}

static void print_scores(const int8_t* scores) {
  for (int i = 0; i < kHypertinyOutputBytes; ++i) {
    Serial.print(' ');
    Serial.print(static_cast<int>(scores[i]));
  }
}

static void print_figures() {
  snprintf(g_line, sizeof(g_line), "model bytes: %u", static_cast<unsigned>(hypertiny_model_bytes()));
  Serial.println(g_line);
  snprintf(g_line, sizeof(g_line), "arena bytes: %u used of %u", static_cast<unsigned>(hypertiny_arena_used_bytes()),
           static_cast<unsigned>(hypertiny_arena_bytes()));
  Serial.println(g_line);
  snprintf(g_line, sizeof(g_line), "resource variables: %d", hypertiny_resource_variables());
  Serial.println(g_line);
  snprintf(g_line, sizeof(g_line), "synthesis us: %lu (%s)", static_cast<unsigned long>(hypertiny_synthesis_us()),
           kMode == HypertinyMode::kBoot ? "boot: the synthesis alone, in setup" : "lazy: paid by the first window");
  Serial.println(g_line);
  if (hypertiny_patched()) Serial.println("patched model: the test windows' expected scores are the base's");
}

// Classifies the compiled-in windows. A window passes when all its int8
// scores equal those of the TFLM Python interpreter; "near" when they differ
// but the class does not (a TFLM that computes a kernel differently, e.g. a
// 2023 snapshot given a per-channel classifier: tflm_app/README.md step 3).
static void run_tests() {
  int passed = 0, near = 0, worst = 0;
  for (int n = 0; n < kHypertinyTestCount; ++n) {
    const HypertinyStatus status = hypertiny_classify(kHypertinyTestWindows[n], g_scores);
    int off = 0;
    for (int i = 0; i < kHypertinyOutputBytes; ++i) {
      const int d = g_scores[i] - kHypertinyTestExpected[n][i];
      const int distance = d < 0 ? -d : d;
      off = distance > off ? distance : off;
    }
    const bool exact = status == HypertinyStatus::kOk && off == 0;
    const bool same_class = status == HypertinyStatus::kOk && argmax(g_scores) == argmax(kHypertinyTestExpected[n]);
    passed += exact ? 1 : 0;
    near += !exact && same_class ? 1 : 0;
    worst = !exact && same_class && off > worst ? off : worst;
    snprintf(g_line, sizeof(g_line), "test %d: label %d predicted %d scores", n, kHypertinyTestLabels[n],
             argmax(g_scores));
    Serial.print(g_line);
    print_scores(g_scores);
    char verdict[48];
    snprintf(verdict, sizeof(verdict), exact ? "pass" : (same_class ? "near: %d steps off, same class"
                                                                     : "FAIL: another class"), off);
    snprintf(g_line, sizeof(g_line), " | %lu us | %s", static_cast<unsigned long>(hypertiny_last_inference_us()),
             status == HypertinyStatus::kOk ? verdict : hypertiny_status_name(status));
    Serial.println(g_line);
  }
  snprintf(g_line, sizeof(g_line), "%d passed, %d near (at most %d steps off), %d failed", passed, near, worst,
           kHypertinyTestCount - passed - near);
  Serial.println(g_line);
}

// Serial parser state: one window is read value by value, no line buffer.
static char g_command = 0;   // 'W', 'T', 'I' or 0 before the first character
static int g_count = 0;      // values of the current window
static int g_value = 0;      // digits of the current value
static bool g_in_value = false;
static bool g_negative = false;
static bool g_bad = false;   // a value out of int8 range, or an unknown character

static void end_value() {
  if (!g_in_value) return;
  const int value = g_negative ? -g_value : g_value;
  if (value < -128 || value > 127 || g_count >= kHypertinyInputBytes) {
    g_bad = true;
  } else {
    g_window[g_count] = static_cast<int8_t>(value);
  }
  ++g_count;
  g_in_value = false;
  g_negative = false;
  g_value = 0;
}

static void read_hex(char c) {
  const int v = c >= '0' && c <= '9' ? c - '0' : (c >= 'a' && c <= 'f' ? c - 'a' + 10
                                                  : (c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1));
  if (c == ' ' || c == '\t') return;
  if (v < 0 || (g_nibble >= 0 && g_patch_bytes >= sizeof(g_patch))) {
    g_bad = true;
  } else if (g_nibble < 0) {
    g_nibble = v;
  } else {
    g_patch[g_patch_bytes++] = static_cast<uint8_t>(g_nibble << 4 | v);
    g_nibble = -1;
  }
}

static void apply_patch() {
#ifdef HYPERTINY_PATCHES
  if (g_bad || g_nibble >= 0) {
    Serial.println("E patch: not an even number of hex digits, or over 512 bytes");
    return;
  }
  const uint32_t start = micros();
  HypertinyStatus setup = HypertinyStatus::kOk;
  const HypertinyPatchStatus status = hypertiny_apply_patch(g_slots, g_patch, g_patch_bytes, kMode, &setup);
  const uint32_t took = micros() - start;
  if (status == HypertinyPatchStatus::kOk && setup == HypertinyStatus::kOk) {
#ifdef HYPERTINY_PATCH_STORE
    save_patch(g_patch, g_patch_bytes);
#endif
    snprintf(g_line, sizeof(g_line), "A %lu %lu", static_cast<unsigned long>(g_slots.last_counter),
             static_cast<unsigned long>(took));
  } else {
    snprintf(g_line, sizeof(g_line), "E patch %s%s%s", hypertiny_patch_status_name(status),
             setup == HypertinyStatus::kOk ? "" : ", setup: ",
             setup == HypertinyStatus::kOk ? "" : hypertiny_status_name(setup));
  }
  Serial.println(g_line);
#else
  Serial.println("E patches are off: no patch_config.h in the sketch folder");
#endif
}

static void end_line() {
  end_value();
  if (g_command == 'P') {
    apply_patch();
  } else if (g_command == 'T') {
    run_tests();
  } else if (g_command == 'I') {
    print_figures();
  } else if (g_command == 'W' && !g_bad && g_count == kHypertinyInputBytes) {
    const HypertinyStatus status = hypertiny_classify(g_window, g_scores);
    if (status == HypertinyStatus::kOk) {
      Serial.print("R ");
      Serial.print(argmax(g_scores));
      print_scores(g_scores);
      Serial.print(' ');
      Serial.println(hypertiny_last_inference_us());
    } else {
      Serial.print("E ");
      Serial.println(hypertiny_status_name(status));
    }
  } else if (g_command == 'W') {
    snprintf(g_line, sizeof(g_line), "E expected %d int8 values, got %d%s", kHypertinyInputBytes, g_count,
             g_bad ? " (some out of range or not numbers)" : "");
    Serial.println(g_line);
  } else if (g_command != 0) {
    Serial.println("E unknown command (W, T, I or P)");
  }
  g_command = 0;
  g_count = 0;
  g_bad = false;
  g_patch_bytes = 0;
  g_nibble = -1;
}

static void read_serial() {
  while (Serial.available() > 0) {
    const char c = static_cast<char>(Serial.read());
    if (c == '\r') continue;
    if (c == '\n') {
      end_line();
    } else if (g_command == 0) {
      g_command = c == ' ' ? 0 : c;
    } else if (g_command == 'P') {
      read_hex(c);
    } else if (c >= '0' && c <= '9') {
      g_value = g_value < 1000 ? g_value * 10 + (c - '0') : g_value;
      g_in_value = true;
    } else if (c == '-' && !g_in_value) {
      g_negative = true;
    } else if (c == ' ' || c == ',' || c == '\t') {
      end_value();
    } else {
      g_bad = true;
    }
  }
}

void setup() {
  tflite::InitializeTarget();  // Serial for TFLM's own messages
  Serial.begin(115200);
  while (!Serial) {
  }  // wait for the Serial Monitor so that nothing is missed
  hypertiny_set_platform(platform_log, platform_micros);
  Serial.println("HyperTinyPW on TensorFlow Lite Micro");
  HypertinyStatus status = hypertiny_register_ops(g_resolver) == kTfLiteOk ? HypertinyStatus::kOk
                                                                            : HypertinyStatus::kOpResolver;
  if (status == HypertinyStatus::kOk) {
    const HypertinyConfig config = {g_model, g_model_len, g_arena, sizeof(g_arena), &g_resolver,
                                    HYPERTINY_RESOURCE_VARIABLES};
    status = hypertiny_setup(config, kMode);
  }
  if (status != HypertinyStatus::kOk) {
    Serial.print("setup failed: ");
    Serial.println(hypertiny_status_name(status));
    while (true) {
      delay(1000);
    }
  }
  if (hypertiny_input_bytes() != kHypertinyInputBytes || hypertiny_output_bytes() != kHypertinyOutputBytes) {
    Serial.println("test_vectors.h does not match the model: export again");
    while (true) {
      delay(1000);
    }
  }
#ifdef HYPERTINY_PATCH_STORE
  restore_patch();
#endif
  print_figures();
  run_tests();
  if (kMode == HypertinyMode::kLazy) print_figures();  // the synthesis figure is known now
  Serial.println("ready: send W lines (see the top of HyperTinyPW.ino)");
}

void loop() { read_serial(); }
#endif  // __has_include("model_data.h")
