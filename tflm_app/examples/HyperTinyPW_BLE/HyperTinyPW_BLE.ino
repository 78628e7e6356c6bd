// HyperTinyPW over Bluetooth LE on an Arduino Nano 33 BLE (Mbed OS core):
// runs the model that `hypertiny export --arduino` wrote into this folder,
// takes code patches and windows from a BLE central (a phone, a PC) and
// notifies the patch status and every window's class and scores.
//
// Needs three Arduino libraries installed (tflm_app/README.md of hypertiny-keras):
//   - HyperTinyPW (this example's library, the portable core):
//       hypertiny arduino-library --out ~/Arduino/libraries/HyperTinyPW
//   - a TensorFlow Lite Micro library, the one tflm_library.h names (default
//     Chirale_TensorFLowLite: Library Manager, search "Chirale");
//   - ArduinoBLE (Library Manager, search "ArduinoBLE"; arduino-cli lib
//     install ArduinoBLE).
//
// The model is not part of the library: this sketch compiles only in a
// folder made by
//   hypertiny export --arduino <folder> MODEL.tflite --sketch ble
//                    [--windows WINDOWS.npz] [--patch-key-file KEY]
// which writes the generated headers (model_data.h/.cc, model_ops.h,
// arena_config.h, test_vectors.h, tflm_library.h; patch_config.h with a key)
// and a copy of this file named after the folder. Opened from File >
// Examples, it stops with the #error below.
//
// GATT service a5e10001-dc37-43e1-bec8-b1c84ade90dd, advertised with the
// local name "HyperTinyPW". Characteristics (a5e1000N-dc37-43e1-bec8-b1c84ade90dd;
// integers little-endian):
//   N=2 patch   write (with response). The code patch, binary, exactly the
//               bytes of `hypertiny patch make` (tens of bytes: 16 header +
//               3 + L per code buffer + 8 tag). At most 512 bytes: the
//               longest attribute value ATT allows and ArduinoBLE's cap
//               (BLELocalCharacteristic), and the Serial example's limit.
//               A patch longer than the MTU allows (MTU - 3 bytes: 20 at the
//               default MTU of 23, 244 at the Nano's largest, 247) needs a
//               long write (prepared writes; bleak, Android and iOS do it by
//               themselves for a write with response); ArduinoBLE refuses a
//               long write past 512 bytes (ATT error 0x07, invalid offset),
//               and a single write cannot exceed 244, so nothing longer ever
//               reaches the sketch. Only with a patch_config.h here.
//   N=3 status  read, notify. ASCII text, the answer to the last patch:
//                 "NONE 0"                   none since reset: the base runs
//                 "OK <counter> <us>"        verified, applied, the patched
//                                            model runs (kernels re-synthesised);
//                                            <us>: verify + apply + setup
//                 "<REFUSAL> <counter>"      refused (BAD_TAG, REPLAYED, WRONG_BASE,
//                                            TRUNCATED, ...: hypertiny_patch.h);
//                                            the model that ran keeps running
//                 "SETUP <STATUS> <counter>" verified, but the interpreter could
//                                            not be set up on it: the base runs
//                 "OFF 0"                    no patch_config.h: patches are off
//               <counter>: last_counter, the counter of the last patch applied
//               (0: none); that patch runs, except after SETUP (the base does).
//               A notification carries MTU - 3 bytes (20 at MTU 23); read the
//               characteristic for the whole text.
//   N=4 window  write, write without response. One chunk of a window:
//                 offset  bytes  field
//                 0       2      uint16 offset of the chunk in the window (bytes)
//                 2       n      int8 window values (already quantized), n >= 1
//               A window is kHypertinyInputBytes (test_vectors.h; 256 for the
//               quickstart model) and one write carries at most MTU - 5 of it
//               (18 at MTU 23, 242 at MTU 247), so it comes in chunks, in
//               order: offset 0 starts a new window (dropping an unfinished
//               one), each next chunk starts where the last ended, and the
//               chunk that fills the window has it classified. A chunk out of
//               order or past the end drops the window and is answered on the
//               result characteristic (status 0x80 / 0x81).
//   N=5 result  read, notify. 8 + K bytes (K = kHypertinyOutputBytes, the
//               scores; 10 for two classes, within one notification at MTU 23
//               for K <= 12):
//                 offset  bytes  field
//                 0       1      status: 0 classified; 1..8 hypertiny_classify's
//                                HypertinyStatus (hypertiny_app.h, in enum order);
//                                0x80 chunk out of order, 0x81 chunk past the
//                                window's end, 0x82 chunk without values
//                 1       1      class (argmax of the scores); 0xff unless status 0
//                 2       2      uint16 window number: windows completed or
//                                dropped since reset, counting from 1; a gap
//                                means a window was replaced before it ran
//                 4       4      uint32 microseconds of the inference
//                 8       K      int8 scores (dequantize with the model's output
//                                scale and zero point, test_vectors.h)
//   N=6 info    read. ASCII: "in <input bytes> out <K> model <bytes> tests
//               <passed>/<run>" (the compiled-in test windows at boot).
//
// A central should wait for each answer (the status after a patch, the result
// after a window's last chunk) before sending the next: applying a patch
// (hashing the model twice, setup, re-synthesis) keeps loop() from polling
// BLE for tens of milliseconds, and ArduinoBLE's Cordio transport drops what
// overflows its 256-byte receive buffer meanwhile.
//
// Where the work runs: ArduinoBLE calls the characteristics' event handlers
// from BLE.poll() in loop(), on the sketch's own thread (the Cordio HCI driver
// only copies received bytes into a ring buffer, in ArduinoBLE's
// HCICordioTransport; HCI.poll() parses them and ATT calls the handler), not
// from an interrupt. The handlers below still only copy the bytes: a patch is
// applied and a window classified in loop() after BLE.poll() returns, since
// ArduinoBLE polls again from inside a notification (HCIClass::sendAclPkt
// while the controller's buffers are full), which would run a handler in the
// middle of that work.
//
// Serial (115200 baud) only logs: setup, the test windows' summary, patches.
// The sketch does not wait for a Serial Monitor. The compiled-in test check,
// argmax and setup repeat a few lines of examples/HyperTinyPW/HyperTinyPW.ino
// (they print, so they stay out of the Arduino-free core).
//
// Code patches need a patch_config.h in this folder (`hypertiny export --arduino
// DIR boot.tflite --patch-key-file KEY --sketch ble`, tflm_app/README.md). The
// patched model lives in RAM (one model copy); after a reset the base runs
// again and the counter starts from 0 (nothing is kept in flash yet).
#if !__has_include("model_data.h")
#error "HyperTinyPW: no model here. Run `hypertiny export --arduino <sketch folder> MODEL.tflite --sketch ble` and open the sketch it writes (see the top of this file)."
#else
#include "tflm_library.h"  // the TFLM Arduino library's header (export --library): the IDE then builds it

#include <ArduinoBLE.h>
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

#define HYPERTINY_UUID(n) "a5e1000" #n "-dc37-43e1-bec8-b1c84ade90dd"

static const int kPatchMaxBytes = 512;   // the ATT maximum and ArduinoBLE's cap (top of this file)
static const int kChunkMaxBytes = 244;   // one write at the Nano's largest MTU (247 - 3)
static const int kResultBytes = 8 + kHypertinyOutputBytes;
static const uint8_t kChunkOutOfOrder = 0x80, kChunkPastEnd = 0x81, kChunkEmpty = 0x82;

BLEService g_service(HYPERTINY_UUID(1));
BLECharacteristic g_patch_char(HYPERTINY_UUID(2), BLEWrite, kPatchMaxBytes);
BLECharacteristic g_status_char(HYPERTINY_UUID(3), BLERead | BLENotify, 48);
BLECharacteristic g_window_char(HYPERTINY_UUID(4), BLEWrite | BLEWriteWithoutResponse, kChunkMaxBytes);
BLECharacteristic g_result_char(HYPERTINY_UUID(5), BLERead | BLENotify, kResultBytes, true);
BLECharacteristic g_info_char(HYPERTINY_UUID(6), BLERead, 64);

// The tensor arena and the op resolver of exactly the model's operators
// (model_ops.h), handed to the library's core with the model.
alignas(16) static uint8_t g_arena[HYPERTINY_ARENA_BYTES];
static HypertinyOpResolver g_resolver;

// BOOT: weight synthesis during setup. kLazy: the first inference pays it.
static const HypertinyMode kMode = HypertinyMode::kBoot;

#ifdef HYPERTINY_PATCHES
// Slot B: the patched model, in RAM. Slot A is g_model in flash.
alignas(16) static uint8_t g_slot_b[HYPERTINY_PATCH_MODEL_BYTES];
static HypertinyPatchSlots g_slots = {g_slot_b, sizeof(g_slot_b), kHypertinyPatchKey, kHypertinyPatchKeyBytes,
                                      kHypertinyPatchTargets, kHypertinyPatchTargetCount, 0};
#endif

// Filled by the write handlers (inside BLE.poll()), consumed by loop().
static uint8_t g_patch[kPatchMaxBytes];
static int g_patch_bytes = 0;
static bool g_patch_pending = false;
static int8_t g_received[kHypertinyInputBytes];  // the window being received
static int g_received_bytes = 0;
static int8_t g_window[kHypertinyInputBytes];    // the last complete window, waiting for loop()
static bool g_window_pending = false;
static uint16_t g_window_number = 0;             // windows completed or dropped since reset
static uint16_t g_pending_number = 0;            // the number of g_window
static uint8_t g_chunk_error = 0;                // why the last dropped window was dropped, or 0 (reported)
static uint16_t g_error_number = 0;              // its number

static int8_t g_scores[kHypertinyOutputBytes];
static char g_line[64];

static void platform_log(const char* line) {
  if (Serial) Serial.println(line);
}
static uint32_t platform_micros() { return micros(); }

static int argmax(const int8_t* scores) {
  int best = 0;
  for (int i = 1; i < kHypertinyOutputBytes; ++i) best = scores[i] > scores[best] ? i : best;
  return best;
}

static void put_le(uint8_t* at, uint32_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) at[i] = static_cast<uint8_t>(value >> (8 * i));
}

// Compiled-in test windows whose int8 scores all equal those of the TFLM
// Python interpreter (HyperTinyPW.ino prints each one; here only the count).
static int passed_tests() {
  int passed = 0;
  for (int n = 0; n < kHypertinyTestCount; ++n) {
    bool same = hypertiny_classify(kHypertinyTestWindows[n], g_scores) == HypertinyStatus::kOk;
    for (int i = 0; same && i < kHypertinyOutputBytes; ++i) same = g_scores[i] == kHypertinyTestExpected[n][i];
    passed += same ? 1 : 0;
  }
  return passed;
}

static void on_patch_written(BLEDevice, BLECharacteristic characteristic) {
  g_patch_bytes = characteristic.readValue(g_patch, sizeof(g_patch));
  g_patch_pending = true;
}

static void drop_window(uint8_t error) {
  g_received_bytes = 0;
  g_chunk_error = error;
  g_error_number = ++g_window_number;
}

static void on_window_written(BLEDevice, BLECharacteristic characteristic) {
  const uint8_t* chunk = characteristic.value();
  const int length = characteristic.valueLength();
  if (length < 3) return drop_window(kChunkEmpty);
  const int offset = chunk[0] | chunk[1] << 8;
  const int values = length - 2;
  if (offset != 0 && offset != g_received_bytes) return drop_window(kChunkOutOfOrder);
  if (offset + values > kHypertinyInputBytes) return drop_window(kChunkPastEnd);
  memcpy(g_received + offset, chunk + 2, values);
  g_received_bytes = offset + values;
  if (g_received_bytes < kHypertinyInputBytes) return;
  memcpy(g_window, g_received, sizeof(g_window));  // an earlier window still waiting is replaced
  g_received_bytes = 0;
  g_window_pending = true;
  g_pending_number = ++g_window_number;
}

static void on_disconnected(BLEDevice) { g_received_bytes = 0; }

static void set_status(const char* text) {
  g_status_char.writeValue(text);  // notifies a subscribed central
  platform_log(text);
}

static void apply_patch() {
#ifdef HYPERTINY_PATCHES
  const uint32_t start = micros();
  HypertinyStatus setup = HypertinyStatus::kOk;
  const HypertinyPatchStatus status = hypertiny_apply_patch(g_slots, g_patch, g_patch_bytes, kMode, &setup);
  const uint32_t took = micros() - start;
  const unsigned long counter = g_slots.last_counter;
  if (status == HypertinyPatchStatus::kOk && setup == HypertinyStatus::kOk) {
    snprintf(g_line, sizeof(g_line), "OK %lu %lu", counter, static_cast<unsigned long>(took));
  } else if (status == HypertinyPatchStatus::kOk) {
    snprintf(g_line, sizeof(g_line), "SETUP %s %lu", hypertiny_status_name(setup), counter);
  } else {
    snprintf(g_line, sizeof(g_line), "%s %lu", hypertiny_patch_status_name(status), counter);
  }
  set_status(g_line);
#else
  set_status("OFF 0");
#endif
}

static void send_result(uint8_t status, uint16_t number) {
  uint8_t result[kResultBytes] = {status, 0xff};
  put_le(result + 2, number, 2);
  if (status == 0) {
    result[1] = static_cast<uint8_t>(argmax(g_scores));
    put_le(result + 4, hypertiny_last_inference_us(), 4);
    memcpy(result + 8, g_scores, kHypertinyOutputBytes);
  }
  g_result_char.writeValue(result, sizeof(result));  // notifies a subscribed central
}

static void halt(const char* why) {
  platform_log(why);
  while (true) {
    delay(1000);
  }
}

void setup() {
  tflite::InitializeTarget();  // Serial for TFLM's own messages
  Serial.begin(115200);
  for (const uint32_t start = millis(); !Serial && millis() - start < 3000;) {
  }  // a Serial Monitor opened within 3 s sees the whole log; none is needed
  hypertiny_set_platform(platform_log, platform_micros);
  platform_log("HyperTinyPW on TensorFlow Lite Micro, over BLE");
  HypertinyStatus status = hypertiny_register_ops(g_resolver) == kTfLiteOk ? HypertinyStatus::kOk
                                                                            : HypertinyStatus::kOpResolver;
  if (status == HypertinyStatus::kOk) {
    const HypertinyConfig config = {g_model, g_model_len, g_arena, sizeof(g_arena), &g_resolver,
                                    HYPERTINY_RESOURCE_VARIABLES};
    status = hypertiny_setup(config, kMode);
  }
  if (status != HypertinyStatus::kOk) halt(hypertiny_status_name(status));
  if (hypertiny_input_bytes() != kHypertinyInputBytes || hypertiny_output_bytes() != kHypertinyOutputBytes) {
    halt("test_vectors.h does not match the model: export again");
  }
  snprintf(g_line, sizeof(g_line), "in %d out %d model %u tests %d/%d", kHypertinyInputBytes,
           kHypertinyOutputBytes, static_cast<unsigned>(hypertiny_model_bytes()), passed_tests(),
           kHypertinyTestCount);
  platform_log(g_line);

  if (!BLE.begin()) halt("BLE.begin() failed");
  BLE.setLocalName("HyperTinyPW");
  BLE.setDeviceName("HyperTinyPW");
  BLE.setAdvertisedService(g_service);
  g_service.addCharacteristic(g_patch_char);
  g_service.addCharacteristic(g_status_char);
  g_service.addCharacteristic(g_window_char);
  g_service.addCharacteristic(g_result_char);
  g_service.addCharacteristic(g_info_char);
  BLE.addService(g_service);
  g_info_char.writeValue(g_line);
#ifdef HYPERTINY_PATCHES
  g_status_char.writeValue("NONE 0");
#else
  g_status_char.writeValue("OFF 0");
#endif
  g_patch_char.setEventHandler(BLEWritten, on_patch_written);
  g_window_char.setEventHandler(BLEWritten, on_window_written);
  BLE.setEventHandler(BLEDisconnected, on_disconnected);
  BLE.advertise();
  platform_log("advertising as HyperTinyPW (see the top of HyperTinyPW_BLE.ino)");
}

void loop() {
  BLE.poll();  // runs the write handlers above
  if (g_patch_pending) {
    g_patch_pending = false;
    apply_patch();
  }
  if (g_window_pending) {
    g_window_pending = false;
    const HypertinyStatus status = hypertiny_classify(g_window, g_scores);
    send_result(static_cast<uint8_t>(status), g_pending_number);
  }
  if (g_chunk_error != 0) {
    const uint8_t error = g_chunk_error;
    g_chunk_error = 0;
    send_result(error, g_error_number);
  }
}
#endif  // __has_include("model_data.h")
