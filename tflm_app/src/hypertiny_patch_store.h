// HyperTinyPW patch store: the last accepted code patch, kept in two flash
// pages so that it (and its counter) survives a reset or a power cut.
//
// What is kept is the patch (hypertiny_patch.h, tens of bytes), not the
// patched model: at boot the patch is verified again against the base
// (slot A) and applied into the RAM slot B. The caller gives the flash as a
// HypertinyFlash: two pages P0/P1 it may erase and write, read through a
// pointer (memory-mapped flash, e.g. the nRF52840's).
//
// A page holds at most one record (W = write_unit, integers little-endian;
// H = 8 rounded up to W, C = H + L rounded up to W):
//
//   offset  bytes            field
//   0       4                magic "HPS1"
//   4       4                L: patch length, uint32 (1 .. capacity)
//   8       H - 8            0xFF (padding to the write unit)
//   H       L                the patch, as hypertiny_patch_check verifies it
//   H + L   C - H - L        0xFF (padding to the write unit)
//   C       4 rounded to W   commit: "HPOK", then 0x00 up to the write unit
//
// capacity = page_bytes - H - (4 rounded up to W): 4,084 bytes for a 4 kB
// page with 4-byte words. A record is committed when its commit field reads
// exactly "HPOK..." at C; save writes it LAST, after the header and the
// patch were written and read back.
//
// save (after the patch was verified and applied): erase the page that does
// NOT hold the record that runs (the one load or the last save chose),
// check that it reads erased, write header and patch, read them back, write
// the commit, read it back. The other page is never touched, so a power cut
// at any point leaves the record that ran intact: during the erase or the
// writes the page being written is erased, half erased or uncommitted.
//
// load (at boot): for each page, in bounds only (a length past the page is
// a bad record, never read): magic, length, commit, then the patch itself
// through hypertiny_patch_check_id (tag, base id, records, targets; the
// counter check off: a record's counter is authenticated by its tag). Of
// the records that verify, the one with the larger counter is the result:
// the device applies it (hypertiny_restore_patch in hypertiny_app.h, or
// hypertiny_patch_apply_id with last_counter = counter - 1) and its counter
// is the device's last_counter, so a replay of an older patch stays refused
// across resets. A committed record that does not verify (BAD_TAG: flipped
// bits, a half-done erase; WRONG_BASE: another base was flashed since) is
// ignored, and so is its counter (an unauthenticated or foreign counter
// must not block the new base's patches): after a new base is flashed the
// counter starts from 0 again, which reopens nothing, since every patch of
// the old base is refused as WRONG_BASE. If nothing verifies, the base runs.
//
// Integrity: no CRC. The patch is authenticated by its HMAC tag (8 bytes),
// re-checked at every boot: a damaged patch passes with probability 2^-64,
// far below a 32-bit CRC's 2^-32. The fields outside the patch (magic,
// length, commit) are bounds-checked; a wrong length that stays in bounds
// moves the tag and fails it. The commit word makes a half-written record
// cheap to skip; correctness does not rest on it alone (a record committed
// too early would still fail its tag).
//
// Portable C++11: no heap, no exceptions, no TFLM, no Arduino; <cstdint>,
// <cstddef> and <cstring> only. Stack use: that of hypertiny_patch_check_id
// (a few hundred bytes) and 16 bytes.
#ifndef HYPERTINY_PATCH_STORE_H_
#define HYPERTINY_PATCH_STORE_H_

#include <cstddef>
#include <cstdint>

#include "hypertiny_patch.h"

// The flash the store uses: two pages, 0 and 1, erased to 0xFF bytes; a
// write can only clear bits, in whole write units at offsets that are
// multiples of write_unit (nRF52840 NVMC: 4 kB pages, 4-byte words).
struct HypertinyFlash {
  size_t page_bytes;  // bytes of one page (each page is erased as a whole)
  size_t write_unit;  // bytes of one write: 1, 2, 4, 8 or 16; page_bytes a multiple of it
  // The page's page_bytes bytes, readable in place (memory-mapped flash), or
  // null if it cannot be read (treated as holding no record).
  const uint8_t* (*read)(void* ctx, unsigned page);
  // Sets the page to 0xFF. False on a failure.
  bool (*erase)(void* ctx, unsigned page);
  // Writes len bytes at offset of the page (both multiples of write_unit).
  bool (*write)(void* ctx, unsigned page, size_t offset, const uint8_t* data, size_t len);
  void* ctx;  // handed to the three functions
};

enum class HypertinyStoreStatus : uint8_t {
  kOk,           // load: a record verified (out filled); save: written and committed
  kNothing,      // load: no committed record verifies: the base runs
  kNotLoaded,    // save before a load: the store does not know which page runs
  kTooLong,      // save: the patch does not fit a page (capacity above)
  kNotNewer,     // save: the patch's counter is not above that of the record that runs
  kFlashError,   // save: erase or write failed, or the page did not read back
                 // as written; the record that ran is untouched
  kBadArgument,  // a null pointer, a patch shorter than a patch header, a write
                 // unit not 1..16 (a power of two), pages too small for a record
};

// What load found in a page (for logs and tests).
enum class HypertinyPageState : uint8_t {
  kErased,       // no record: the header reads 0xFF
  kBadRecord,    // not a record: a wrong magic, or a length out of bounds
  kUncommitted,  // a record whose commit is not (fully) written
  kRefused,      // committed, but the patch does not verify (refused[page] says why)
  kValid,        // committed and verified (or written by save)
};

// The store: the flash plus what load and save learnt (RAM; zero it, set
// `flash`, then call load once at boot before any save).
struct HypertinyPatchStore {
  HypertinyFlash flash;
  bool loaded;                         // load has run
  int current;                         // page of the record that runs, -1: none (the base)
  HypertinyPageState state[2];         // per page, as load found it (save updates it)
  HypertinyPatchStatus refused[2];     // for kRefused pages: the status of hypertiny_patch_check_id
  uint32_t counter[2];                 // for kValid pages: the patch's counter
};

// A record load chose: the patch is read in place from the flash.
struct HypertinyStoredPatch {
  const uint8_t* patch;  // points into the page (valid until the page is erased)
  size_t patch_bytes;
  uint32_t counter;      // the patch's counter: the device's last_counter
  unsigned page;         // 0 or 1
};

// Bytes of the longest patch a page of `flash` holds (0 if none fits).
size_t hypertiny_patch_store_capacity(const HypertinyFlash& flash);

// Boot: examines both pages (see the top of this file) and fills *out with
// the newest committed record that verifies against the base: base_id
// (SHA-256 of the base, first 8 bytes), model_len, the key and the targets
// as for hypertiny_patch_check_id. kOk, or kNothing (then the base runs and
// last_counter is 0), or kBadArgument. Writes nothing to the flash.
HypertinyStoreStatus hypertiny_patch_store_load(HypertinyPatchStore* store, const uint8_t* base_id,
                                                size_t model_len, const uint8_t* key, size_t key_len,
                                                const HypertinyPatchTarget* targets, size_t n_targets,
                                                HypertinyStoredPatch* out);

// After a patch was verified and applied (its counter above every stored
// one): makes it the stored record, in the page that does not hold the
// record that runs (see the top of this file). The patch is not verified
// again here (load verifies it at boot), but a counter (bytes 11..14) not
// above the running record's is refused (kNotNewer): saving an older patch
// would make the next save erase the newer one. On anything but kOk the
// record that ran is still the one load returns at the next boot. Costs one
// page erase (nRF52840: about 85 ms) and (L + 12) / 4 word writes.
HypertinyStoreStatus hypertiny_patch_store_save(HypertinyPatchStore* store, const uint8_t* patch,
                                                size_t patch_len);

// "OK", "NOTHING", "NOT_LOADED", "TOO_LONG", "NOT_NEWER", "FLASH_ERROR", "BAD_ARGUMENT";
// and "ERASED", "BAD_RECORD", "UNCOMMITTED", "REFUSED", "VALID".
const char* hypertiny_store_status_name(HypertinyStoreStatus status);
const char* hypertiny_page_state_name(HypertinyPageState state);

#endif  // HYPERTINY_PATCH_STORE_H_
