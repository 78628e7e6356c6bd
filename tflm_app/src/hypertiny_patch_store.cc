// HyperTinyPW patch store: two flash pages, a commit word written last (see hypertiny_patch_store.h).
#include "hypertiny_patch_store.h"

#include <cstring>

namespace {

const uint8_t kMagic[4] = {'H', 'P', 'S', '1'};
const uint8_t kCommit[4] = {'H', 'P', 'O', 'K'};
const size_t kMaxWriteUnit = 16;

size_t round_up(size_t n, size_t unit) { return (n + unit - 1) / unit * unit; }

bool valid_flash(const HypertinyFlash& flash) {
  const size_t w = flash.write_unit;
  return w >= 1 && w <= kMaxWriteUnit && (w & (w - 1)) == 0 && flash.page_bytes % w == 0 &&
         flash.read != nullptr && flash.erase != nullptr && flash.write != nullptr;
}

size_t header_bytes(const HypertinyFlash& flash) { return round_up(8, flash.write_unit); }
size_t commit_bytes(const HypertinyFlash& flash) { return round_up(sizeof(kCommit), flash.write_unit); }

// The commit field: "HPOK" then zeros up to the write unit.
void commit_field(uint8_t out[kMaxWriteUnit]) {
  std::memset(out, 0, kMaxWriteUnit);
  std::memcpy(out, kCommit, sizeof(kCommit));
}

bool all_erased(const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (p[i] != 0xFF) return false;
  }
  return true;
}

uint32_t read_u32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) | (static_cast<uint32_t>(p[2]) << 16) |
         (static_cast<uint32_t>(p[3]) << 24);
}

// The page's committed record (patch and length), or its state if it has none. Reads only inside the page.
HypertinyPageState find_record(const HypertinyFlash& flash, unsigned page, const uint8_t** patch, size_t* length) {
  const uint8_t* p = flash.read(flash.ctx, page);
  const size_t header = header_bytes(flash);
  if (p == nullptr || flash.page_bytes < header) return HypertinyPageState::kBadRecord;
  if (all_erased(p, header)) return HypertinyPageState::kErased;
  if (std::memcmp(p, kMagic, sizeof(kMagic)) != 0) return HypertinyPageState::kBadRecord;
  const uint32_t stored = read_u32(p + 4);
  const size_t capacity = hypertiny_patch_store_capacity(flash);
  if (stored == 0 || stored > capacity) return HypertinyPageState::kBadRecord;
  uint8_t commit[kMaxWriteUnit];
  commit_field(commit);
  const size_t at = header + round_up(stored, flash.write_unit);  // <= page_bytes - commit_bytes (capacity)
  if (std::memcmp(p + at, commit, commit_bytes(flash)) != 0) return HypertinyPageState::kUncommitted;
  *patch = p + header;
  *length = stored;
  return HypertinyPageState::kValid;
}

// Writes `len` bytes (any length) at `offset` (a multiple of the write unit): whole units, then the last
// partial unit padded with 0xFF. Then reads them back.
bool write_padded(const HypertinyFlash& flash, unsigned page, size_t offset, const uint8_t* data, size_t len) {
  const size_t w = flash.write_unit;
  const size_t whole = len / w * w;
  if (whole > 0 && !flash.write(flash.ctx, page, offset, data, whole)) return false;
  if (whole < len) {
    uint8_t tail[kMaxWriteUnit];
    std::memset(tail, 0xFF, sizeof(tail));
    std::memcpy(tail, data + whole, len - whole);
    if (!flash.write(flash.ctx, page, offset + whole, tail, w)) return false;
  }
  const uint8_t* p = flash.read(flash.ctx, page);
  return p != nullptr && std::memcmp(p + offset, data, len) == 0;
}

}  // namespace

size_t hypertiny_patch_store_capacity(const HypertinyFlash& flash) {
  if (!valid_flash(flash)) return 0;
  const size_t overhead = header_bytes(flash) + commit_bytes(flash);
  return flash.page_bytes > overhead ? flash.page_bytes - overhead : 0;
}

HypertinyStoreStatus hypertiny_patch_store_load(HypertinyPatchStore* store, const uint8_t* base_id,
                                                size_t model_len, const uint8_t* key, size_t key_len,
                                                const HypertinyPatchTarget* targets, size_t n_targets,
                                                HypertinyStoredPatch* out) {
  if (store == nullptr || base_id == nullptr || out == nullptr || !valid_flash(store->flash)) {
    return HypertinyStoreStatus::kBadArgument;
  }
  store->current = -1;
  for (unsigned page = 0; page < 2; ++page) {
    const uint8_t* patch = nullptr;
    size_t length = 0;
    store->counter[page] = 0;
    store->refused[page] = HypertinyPatchStatus::kOk;
    store->state[page] = find_record(store->flash, page, &patch, &length);
    if (store->state[page] != HypertinyPageState::kValid) continue;
    HypertinyPatchInfo info;
    // last_counter 0: any counter of 1 or more passes (it is authenticated by the tag).
    const HypertinyPatchStatus status =
        hypertiny_patch_check_id(patch, length, base_id, model_len, key, key_len, 0, targets, n_targets, &info);
    if (status != HypertinyPatchStatus::kOk) {
      store->state[page] = HypertinyPageState::kRefused;
      store->refused[page] = status;
      continue;
    }
    store->counter[page] = info.counter;
    if (store->current < 0 || info.counter > store->counter[store->current]) {
      store->current = static_cast<int>(page);
      out->patch = patch;
      out->patch_bytes = length;
      out->counter = info.counter;
      out->page = page;
    }
  }
  store->loaded = true;
  return store->current >= 0 ? HypertinyStoreStatus::kOk : HypertinyStoreStatus::kNothing;
}

HypertinyStoreStatus hypertiny_patch_store_save(HypertinyPatchStore* store, const uint8_t* patch,
                                                size_t patch_len) {
  if (store == nullptr || patch == nullptr || patch_len < kHypertinyPatchHeaderBytes || !valid_flash(store->flash)) {
    return HypertinyStoreStatus::kBadArgument;
  }
  if (!store->loaded) return HypertinyStoreStatus::kNotLoaded;
  const HypertinyFlash& flash = store->flash;
  const size_t capacity = hypertiny_patch_store_capacity(flash);
  if (capacity == 0) return HypertinyStoreStatus::kBadArgument;
  if (patch_len > capacity) return HypertinyStoreStatus::kTooLong;
  const uint32_t counter = read_u32(patch + 11);
  if (store->current >= 0 && counter <= store->counter[store->current]) return HypertinyStoreStatus::kNotNewer;
  // Never the page that runs. With none running (both refused, erased or half written) either page will do:
  // the first one that holds no committed record, to keep a refused one as long as possible.
  unsigned page = 0;
  if (store->current >= 0) {
    page = store->current == 0 ? 1 : 0;
  } else if (store->state[0] == HypertinyPageState::kRefused) {
    page = 1;
  }
  store->state[page] = HypertinyPageState::kUncommitted;
  const size_t header = header_bytes(flash);
  const size_t commit_at = header + round_up(patch_len, flash.write_unit);
  const size_t end = commit_at + commit_bytes(flash);
  if (!flash.erase(flash.ctx, page)) return HypertinyStoreStatus::kFlashError;
  const uint8_t* p = flash.read(flash.ctx, page);
  if (p == nullptr || !all_erased(p, end)) return HypertinyStoreStatus::kFlashError;
  uint8_t head[16];  // magic, length, 0xFF up to the write unit (header_bytes <= 16)
  std::memset(head, 0xFF, sizeof(head));
  std::memcpy(head, kMagic, sizeof(kMagic));
  const uint32_t length = static_cast<uint32_t>(patch_len);
  for (int i = 0; i < 4; ++i) head[4 + i] = static_cast<uint8_t>(length >> (8 * i));
  if (!write_padded(flash, page, 0, head, header)) return HypertinyStoreStatus::kFlashError;
  if (!write_padded(flash, page, header, patch, patch_len)) return HypertinyStoreStatus::kFlashError;
  // The commit, last: until it reads back whole, load ignores the page.
  uint8_t commit[kMaxWriteUnit];
  commit_field(commit);
  if (!write_padded(flash, page, commit_at, commit, commit_bytes(flash))) return HypertinyStoreStatus::kFlashError;
  store->state[page] = HypertinyPageState::kValid;
  store->refused[page] = HypertinyPatchStatus::kOk;
  store->counter[page] = counter;
  store->current = static_cast<int>(page);
  return HypertinyStoreStatus::kOk;
}

const char* hypertiny_store_status_name(HypertinyStoreStatus status) {
  switch (status) {
    case HypertinyStoreStatus::kOk: return "OK";
    case HypertinyStoreStatus::kNothing: return "NOTHING";
    case HypertinyStoreStatus::kNotLoaded: return "NOT_LOADED";
    case HypertinyStoreStatus::kTooLong: return "TOO_LONG";
    case HypertinyStoreStatus::kNotNewer: return "NOT_NEWER";
    case HypertinyStoreStatus::kFlashError: return "FLASH_ERROR";
    case HypertinyStoreStatus::kBadArgument: return "BAD_ARGUMENT";
  }
  return "UNKNOWN";
}

const char* hypertiny_page_state_name(HypertinyPageState state) {
  switch (state) {
    case HypertinyPageState::kErased: return "ERASED";
    case HypertinyPageState::kBadRecord: return "BAD_RECORD";
    case HypertinyPageState::kUncommitted: return "UNCOMMITTED";
    case HypertinyPageState::kRefused: return "REFUSED";
    case HypertinyPageState::kValid: return "VALID";
  }
  return "UNKNOWN";
}
