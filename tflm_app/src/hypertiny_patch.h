// HyperTinyPW code patches on the device: verify one, then write it into a RAM
// copy of the model.
//
// A code patch (format version 1, made on the host by
// `hypertiny_keras.tflite.patch.make_patch` / `hypertiny patch make`) changes
// only the code tensors (z_l, int8) of a `boot` .tflite file, the "base": a
// device that holds the base re-synthesises personalised kernels from it.
//
//   offset  bytes  field (integers little-endian)
//   0       2      magic "HP"
//   2       1      version (1)
//   3       8      base id: the first 8 bytes of SHA-256 of the base file
//   11      4      counter: uint32, greater than the last counter applied
//   15      1      record count n (1..255)
//   16      3 + L  n records: uint16 buffer index, uint8 length L (1..255), L bytes
//   end-8   8      tag: HMAC-SHA256(key, every byte before the tag), first 8 bytes
//
// A record replaces the whole data of one code buffer of the base. The sketch
// knows which buffers those are from a table of HypertinyPatchTarget (buffer
// index, byte offset of its data in the model, length); on the host the same
// table is `hypertiny_keras.tflite.patch.code_buffers(base)`.
//
// Portable C++11: no heap, no exceptions, no TFLM, no Arduino; <cstdint>,
// <cstddef> and <cstring> only. No static state (reentrant); stack use is a
// few hundred bytes (one SHA-256 context and a 64-byte key block).
//
// ---------------------------------------------------------------------------
// Where things live, and surviving a power cut (Arduino Nano 33 BLE: nRF52840,
// 1 MB flash, 256 kB RAM)
//
//   * Slot A, the base model: `g_model` in flash, const, part of the sketch
//     image. Never written, so the device can always boot the base.
//   * Slot B, the personalised model: a 16-byte aligned RAM array of
//     g_model_len bytes. RAM cost of patching = one model copy
//     (g_model_len bytes, beside the arena). The
//     interpreter is set up again on slot B (the init subgraph re-synthesises
//     the kernels from the new codes); slot A stays untouched.
//   * Patches are always made against the base, so hypertiny_patch_apply
//     copies slot A into slot B and then writes the records: applying a
//     second patch does not keep codes of the first one.
//   * What persists across reboots is the patch, not the patched model (tens
//     of bytes instead of a model copy; no erase of the model's pages):
//     hypertiny_patch_store.h keeps the last accepted patch in two flash
//     pages P0/P1 (nRF52840 NVMC: 4 kB pages, a 32-bit word written at a
//     time), written alternately, each holding one record {magic, patch
//     length, patch bytes, commit word}. A save erases the page that does not
//     hold the record that runs, writes magic, length and patch, reads them
//     back and writes the commit word LAST. At boot (hypertiny_restore_patch
//     in hypertiny_app.h) the committed records are re-verified with
//     hypertiny_patch_check_id (tag, base id, targets) and the one with the
//     larger counter is applied into slot B; its counter is the device's
//     last_counter (replay protection across resets); if none verifies, slot
//     A runs. A power cut while a page is erased or written leaves that page
//     erased, garbled or uncommitted and the other page (the patch that ran)
//     intact: tests/device/test_patch_store.py cuts every save at every word
//     write and during the erase on a simulated NOR flash, and the device
//     always boots the previous patch (or the base), never a mix.
//     The RAM apply below writes nothing on any refusal, so a refused patch
//     never leaves slot B half written; a power cut during the RAM apply
//     loses only RAM, and the boot path above rebuilds it.
// ---------------------------------------------------------------------------
#ifndef HYPERTINY_PATCH_H_
#define HYPERTINY_PATCH_H_

#include <cstddef>
#include <cstdint>

// Sizes of the format (version 1).
static const size_t kHypertinyPatchHeaderBytes = 16;  // magic, version, base id, counter, count
static const size_t kHypertinyPatchRecordHeaderBytes = 3;
static const size_t kHypertinyPatchTagBytes = 8;
static const size_t kHypertinyPatchBaseIdBytes = 8;
static const size_t kHypertinyPatchMinKeyBytes = 16;
static const uint8_t kHypertinyPatchVersion = 1;

// Why a patch is refused (or kOk). The checks run in this order, and the
// first that fails is returned:
//   kBadArgument  a null pointer, a key shorter than 16 bytes, a target that
//                 lies outside the model, or (apply) an output smaller than
//                 the model
//   kTruncated    shorter than header + tag (24 bytes)
//   kBadMagic     does not start with "HP"
//   kBadVersion   version is not 1
//   kBadTag       HMAC-SHA256(key, body)[:8] differs (wrong key, altered or
//                 cut patch). Nothing after the magic and version is read
//                 before the tag is checked.
//   then the (authenticated) records, in order:
//   kTruncated    a record header or its bytes run past the tag, or no record
//   kBadLength    a record of length 0
//   kDuplicate    a buffer named twice
//   kTrailing     bytes left between the last record and the tag
//   kWrongBase    the base id is not SHA-256(model)[:8]: made for another file
//   kReplayed     counter <= last_counter
//   kNotACodeBuffer  a record names a buffer that is not in the targets
//   kBadLength    a record's length differs from its target's
enum class HypertinyPatchStatus : uint8_t {
  kOk,
  kTruncated,
  kBadMagic,
  kBadVersion,
  kBadTag,
  kWrongBase,
  kReplayed,
  kNotACodeBuffer,
  kBadLength,
  kDuplicate,
  kTrailing,
  kBadArgument,
};

// One code buffer a patch may rewrite: `length` bytes at `offset` of the model.
struct HypertinyPatchTarget {
  uint16_t buffer;  // index in model->buffers()
  uint32_t offset;  // byte offset of the buffer's data in the .tflite file
  uint32_t length;  // bytes of the buffer's data
};

// What a verified patch holds (filled by check/apply when they return kOk;
// left untouched otherwise).
struct HypertinyPatchInfo {
  uint32_t counter;                               // the patch's counter: the new last_counter
  uint8_t records;                                // records (code buffers rewritten)
  uint32_t value_bytes;                           // code bytes they carry
  uint8_t base_id[kHypertinyPatchBaseIdBytes];    // SHA-256(base)[:8]
};

// Verifies `patch` against the base `model` without writing anything:
// structure, tag (HMAC-SHA256 with `key`, compared in constant time), base id
// (SHA-256 of the model_len bytes of `model`), counter (> last_counter), and
// every record against `targets`. `out` may be null. The cost is one SHA-256
// over the model and one HMAC over the patch.
HypertinyPatchStatus hypertiny_patch_check(const uint8_t* patch, size_t patch_len, const uint8_t* model,
                                           size_t model_len, const uint8_t* key, size_t key_len,
                                           uint32_t last_counter, const HypertinyPatchTarget* targets,
                                           size_t n_targets, HypertinyPatchInfo* out);

// hypertiny_patch_check, then, only if it returned kOk: copies the base
// `model` into `dest` (skipped when dest == model) and writes every record
// into `dest` at its target's offset. On any other status `dest` is not
// written at all. `dest` (dest_len >= model_len) is the RAM slot B; the
// model (slot A) may be in flash. Afterwards the caller stores info->counter
// as its last_counter and sets the interpreter up on `dest` again.
HypertinyPatchStatus hypertiny_patch_apply(const uint8_t* patch, size_t patch_len, const uint8_t* model,
                                           size_t model_len, const uint8_t* key, size_t key_len,
                                           uint32_t last_counter, const HypertinyPatchTarget* targets,
                                           size_t n_targets, uint8_t* dest, size_t dest_len,
                                           HypertinyPatchInfo* out);

// check and apply with the base id SHA-256(model)[:8] given instead of
// computed: a device that patches more than once hashes its base (constant,
// slot A) once, e.g. with hypertiny_sha256, and each patch then costs one
// HMAC over the patch (no hash over the model). base_id: 8 bytes; the first
// check of kWrongBase compares it with the patch's. check_id reads no model
// byte (model_len bounds the targets).
HypertinyPatchStatus hypertiny_patch_check_id(const uint8_t* patch, size_t patch_len, const uint8_t* base_id,
                                              size_t model_len, const uint8_t* key, size_t key_len,
                                              uint32_t last_counter, const HypertinyPatchTarget* targets,
                                              size_t n_targets, HypertinyPatchInfo* out);
HypertinyPatchStatus hypertiny_patch_apply_id(const uint8_t* patch, size_t patch_len, const uint8_t* model,
                                              const uint8_t* base_id, size_t model_len, const uint8_t* key,
                                              size_t key_len, uint32_t last_counter,
                                              const HypertinyPatchTarget* targets, size_t n_targets, uint8_t* dest,
                                              size_t dest_len, HypertinyPatchInfo* out);

// "OK", "TRUNCATED", "BAD_MAGIC", ... (the enumerator without its k, in capitals).
const char* hypertiny_patch_status_name(HypertinyPatchStatus status);

// SHA-256 and HMAC-SHA256 (FIPS 180-4, RFC 2104), usable on their own.
struct HypertinySha256 {
  uint32_t state[8];
  uint64_t bytes;      // bytes hashed so far
  uint8_t block[64];   // the partial block
  size_t used;         // bytes of it in use
};
void hypertiny_sha256_init(HypertinySha256* ctx);
void hypertiny_sha256_update(HypertinySha256* ctx, const uint8_t* data, size_t len);
void hypertiny_sha256_final(HypertinySha256* ctx, uint8_t digest[32]);
void hypertiny_sha256(const uint8_t* data, size_t len, uint8_t digest[32]);
void hypertiny_hmac_sha256(const uint8_t* key, size_t key_len, const uint8_t* data, size_t len,
                           uint8_t mac[32]);

#endif  // HYPERTINY_PATCH_H_
