// Native harness for tflm_app/src/hypertiny_patch_store.cc (tests/device/test_patch_store.py builds it with g++):
// a device with a simulated NOR flash of two pages, driven by a script, with power-cut injection.
//
//   patch_store_harness PAGE_BYTES WRITE_UNIT MODEL KEY TARGETS SCRIPT
//
// The flash: erase sets a page to 0xFF; a write takes whole units at aligned offsets inside the page
// (anything else stops the harness: exit 2), can only clear bits, and each unit may be written once per
// erase (the nRF52840 allows two). The device: slot A is MODEL (the base), slot B a RAM copy, last_counter
// in RAM; it boots once (not printed) before the script. SCRIPT lines:
//
//   boot        reboot: RAM is lost (fresh store, last_counter 0, slot B = base), then
//               hypertiny_patch_store_load and, on OK, hypertiny_patch_apply_id(counter - 1) into slot B
//               (what hypertiny_restore_patch does). Prints
//               "boot <load status> counter <c> last <last_counter> pages <page0> <page1> model <sha256>"
//               (a page: its state; VALID:<counter>, REFUSED:<patch status>; sha256 of slot B).
//   patch FILE  a patch arrives: hypertiny_patch_apply_id with last_counter; on OK last_counter = its
//               counter and hypertiny_patch_store_save. Prints "patch <status>[ save <store status>]".
//   save FILE   hypertiny_patch_store_save alone (no apply). Prints "save <store status>".
//   cut FILE    power cuts during the save of FILE (which must apply): for each cut, the flash and RAM are
//               put back as they were, FILE is applied and saved with the power cut at that point, then
//               "boot" runs. The cuts: during the erase (erase not started; bits partly set to 1; the first
//               half erased; every bit random) and, for every k from 0 to N - 1 (N: the unit writes of a
//               whole save), after k unit writes ("after k") and during write k + 1 ("during k": a random,
//               strict subset of the bits it clears is cleared). Then "none": the save runs whole. Prints
//               "units N" and one "cut <erase:MODE|after K|during K|none> <boot line>" per cut; afterwards
//               flash and RAM are as before the sweep.
//   flip PAGE OFFSET MASK   XORs a byte of the flash with MASK (decimal): damage.
//   base FILE   another base is flashed (slot A = FILE; the pages are kept). Takes effect at the next boot.
//   wipe        both pages erased.
//
// Exit code 0, or 2 on a usage, I/O or flash-rule error.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "harness_io.h"
#include "hypertiny_patch.h"
#include "hypertiny_patch_store.h"

namespace {

[[noreturn]] void fail(const char* message, const char* what) {
  std::fprintf(stderr, "patch_store_harness: %s %s\n", message, what);
  std::exit(2);
}

// The simulated NOR flash, with power-cut injection.
struct Flash {
  size_t page_bytes = 0;
  size_t unit = 0;
  std::vector<uint8_t> mem[2];
  std::vector<uint8_t> written[2];  // per unit: written since the last erase
  // Power cut: -1 none armed; erase_cut >= 0 cuts the next erase in that mode; else the cut comes at unit
  // write number `cut_at` (0-based), `partial` telling whether that write happens partly.
  int erase_cut = -1;
  long cut_at = -1;
  bool partial = false;
  bool dead = false;  // the power is off: nothing changes any more
  long unit_writes = 0;
  long erases = 0;
  std::mt19937 rng{1};

  void reset_cut() {
    erase_cut = -1;
    cut_at = -1;
    partial = false;
    dead = false;
  }
};

Flash g_flash;

const uint8_t* flash_read(void* ctx, unsigned page) {
  Flash* f = static_cast<Flash*>(ctx);
  return page < 2 ? f->mem[page].data() : nullptr;
}

bool flash_erase(void* ctx, unsigned page) {
  Flash* f = static_cast<Flash*>(ctx);
  if (page >= 2) fail("erase of a page that does not exist", "");
  if (f->dead) return false;
  if (f->erase_cut >= 0) {
    std::vector<uint8_t>& m = f->mem[page];
    for (size_t i = 0; i < m.size(); ++i) {
      if (f->erase_cut == 1) m[i] = static_cast<uint8_t>(m[i] | (f->rng() & 0xFF));  // some bits back to 1
      if (f->erase_cut == 2 && i < m.size() / 2) m[i] = 0xFF;                      // the first half erased
      if (f->erase_cut == 3) m[i] = static_cast<uint8_t>(f->rng() & 0xFF);          // undefined
    }
    f->dead = true;
    return false;
  }
  f->mem[page].assign(f->page_bytes, 0xFF);
  f->written[page].assign(f->page_bytes / f->unit, 0);
  ++f->erases;
  return true;
}

bool flash_write(void* ctx, unsigned page, size_t offset, const uint8_t* data, size_t len) {
  Flash* f = static_cast<Flash*>(ctx);
  if (page >= 2 || offset % f->unit != 0 || len % f->unit != 0 || offset > f->page_bytes ||
      len > f->page_bytes - offset) {
    std::fprintf(stderr, "page %u offset %zu len %zu\n", page, offset, len);
    fail("write breaks the flash rules (unit, alignment, bounds)", "");
  }
  for (size_t at = offset; at < offset + len; at += f->unit) {
    if (f->dead) return false;
    uint8_t& once = f->written[page][at / f->unit];
    if (once) {
      std::fprintf(stderr, "page %u offset %zu\n", page, at);
      fail("a unit written twice without an erase", "");
    }
    const uint8_t* src = data + (at - offset);
    uint8_t* dst = f->mem[page].data() + at;
    if (f->cut_at == f->unit_writes) {
      if (f->partial) {
        // A strict subset of the bits this write clears: at least one of them stays 1.
        std::vector<int> to_clear;
        for (size_t b = 0; b < 8 * f->unit; ++b) {
          if ((dst[b / 8] >> (b % 8) & 1) && !(src[b / 8] >> (b % 8) & 1)) to_clear.push_back(static_cast<int>(b));
        }
        if (!to_clear.empty()) {
          const size_t keep = f->rng() % to_clear.size();  // this one stays 1
          for (size_t i = 0; i < to_clear.size(); ++i) {
            const int b = to_clear[i];
            if (i != keep && (f->rng() & 1)) dst[b / 8] = static_cast<uint8_t>(dst[b / 8] & ~(1u << (b % 8)));
          }
        }
        once = 1;
      }
      f->dead = true;
      return false;
    }
    for (size_t i = 0; i < f->unit; ++i) dst[i] = static_cast<uint8_t>(dst[i] & src[i]);  // NOR: clears only
    once = 1;
    ++f->unit_writes;
  }
  return true;
}

// The device: what survives a reboot is only g_flash.
struct Device {
  std::vector<uint8_t> model;  // slot A
  uint8_t base_id[kHypertinyPatchBaseIdBytes];
  std::vector<uint8_t> slot_b;
  uint32_t last_counter = 0;
  HypertinyPatchStore store;
};

Device g_device;
std::vector<uint8_t> g_key;
std::vector<HypertinyPatchTarget> g_targets;

void set_base(const std::vector<uint8_t>& model) {
  g_device.model = model;
  uint8_t digest[32];
  hypertiny_sha256(model.data(), model.size(), digest);
  std::memcpy(g_device.base_id, digest, sizeof(g_device.base_id));
}

std::string boot() {
  g_flash.reset_cut();
  g_device.slot_b = g_device.model;
  g_device.last_counter = 0;
  std::memset(&g_device.store, 0, sizeof(g_device.store));
  HypertinyFlash& flash = g_device.store.flash;
  flash.page_bytes = g_flash.page_bytes;
  flash.write_unit = g_flash.unit;
  flash.read = flash_read;
  flash.erase = flash_erase;
  flash.write = flash_write;
  flash.ctx = &g_flash;
  HypertinyStoredPatch stored;
  const HypertinyStoreStatus loaded =
      hypertiny_patch_store_load(&g_device.store, g_device.base_id, g_device.model.size(), g_key.data(),
                                 g_key.size(), g_targets.data(), g_targets.size(), &stored);
  char line[200];
  std::string out;
  if (loaded == HypertinyStoreStatus::kOk) {
    HypertinyPatchInfo info;
    const HypertinyPatchStatus applied = hypertiny_patch_apply_id(
        stored.patch, stored.patch_bytes, g_device.model.data(), g_device.base_id, g_device.model.size(),
        g_key.data(), g_key.size(), stored.counter - 1, g_targets.data(), g_targets.size(), g_device.slot_b.data(),
        g_device.slot_b.size(), &info);
    if (applied != HypertinyPatchStatus::kOk) fail("a loaded record does not apply:", hypertiny_patch_status_name(applied));
    g_device.last_counter = stored.counter;
  }
  std::snprintf(line, sizeof(line), "%s counter %u last %u pages", hypertiny_store_status_name(loaded),
                static_cast<unsigned>(loaded == HypertinyStoreStatus::kOk ? stored.counter : 0),
                static_cast<unsigned>(g_device.last_counter));
  out += line;
  for (int page = 0; page < 2; ++page) {
    out += " ";
    out += hypertiny_page_state_name(g_device.store.state[page]);
    if (g_device.store.state[page] == HypertinyPageState::kRefused) {
      out += ":";
      out += hypertiny_patch_status_name(g_device.store.refused[page]);
    } else if (g_device.store.state[page] == HypertinyPageState::kValid) {
      out += ":" + std::to_string(g_device.store.counter[page]);
    }
  }
  uint8_t digest[32];
  hypertiny_sha256(g_device.slot_b.data(), g_device.slot_b.size(), digest);
  out += " model ";
  for (int i = 0; i < 32; ++i) {
    std::snprintf(line, sizeof(line), "%02x", digest[i]);
    out += line;
  }
  return out;
}

// A patch arrives: apply (RAM), then save. Returns the line.
std::string receive(const std::vector<uint8_t>& patch) {
  HypertinyPatchInfo info;
  const HypertinyPatchStatus applied = hypertiny_patch_apply_id(
      patch.data(), patch.size(), g_device.model.data(), g_device.base_id, g_device.model.size(), g_key.data(),
      g_key.size(), g_device.last_counter, g_targets.data(), g_targets.size(), g_device.slot_b.data(),
      g_device.slot_b.size(), &info);
  std::string out = hypertiny_patch_status_name(applied);
  if (applied != HypertinyPatchStatus::kOk) return out;
  g_device.last_counter = info.counter;
  out += " save ";
  out += hypertiny_store_status_name(hypertiny_patch_store_save(&g_device.store, patch.data(), patch.size()));
  return out;
}

void cut_sweep(const std::vector<uint8_t>& patch) {
  const Flash flash_before = g_flash;
  const Device device_before = g_device;
  // A whole save first, to count its unit writes.
  g_flash.unit_writes = 0;
  const std::string whole = receive(patch);
  if (whole != "OK save OK") fail("cut: the patch does not apply and save:", whole.c_str());
  const long units = g_flash.unit_writes;
  std::printf("units %ld\n", units);
  struct Cut {
    std::string name;
    int erase_cut;
    long cut_at;
    bool partial;
  };
  std::vector<Cut> cuts;
  for (int mode = 0; mode < 4; ++mode) cuts.push_back({"erase:" + std::to_string(mode), mode, -1, false});
  for (long k = 0; k < units; ++k) {
    cuts.push_back({"after " + std::to_string(k), -1, k, false});
    cuts.push_back({"during " + std::to_string(k), -1, k, true});
  }
  cuts.push_back({"none", -1, -1, false});
  unsigned seed = 1;
  for (const Cut& cut : cuts) {
    g_flash = flash_before;
    g_device = device_before;
    g_device.store.flash.ctx = &g_flash;
    g_flash.rng.seed(seed++);
    g_flash.unit_writes = 0;
    g_flash.erase_cut = cut.erase_cut;
    g_flash.cut_at = cut.cut_at;
    g_flash.partial = cut.partial;
    receive(patch);  // power goes at the cut; what the device did after it is lost
    std::printf("cut %s %s\n", cut.name.c_str(), boot().c_str());
  }
  g_flash = flash_before;
  g_device = device_before;
  g_device.store.flash.ctx = &g_flash;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 7) fail("usage: PAGE_BYTES WRITE_UNIT MODEL KEY TARGETS SCRIPT", "");
  g_flash.page_bytes = std::strtoul(argv[1], nullptr, 10);
  g_flash.unit = std::strtoul(argv[2], nullptr, 10);
  if (g_flash.unit == 0 || g_flash.page_bytes % g_flash.unit != 0) fail("bad flash geometry", "");
  for (int page = 0; page < 2; ++page) {
    g_flash.mem[page].assign(g_flash.page_bytes, 0xFF);
    g_flash.written[page].assign(g_flash.page_bytes / g_flash.unit, 0);
  }
  std::vector<uint8_t> model;
  if (!read_file(argv[3], &model)) fail("cannot read", argv[3]);
  if (!read_file(argv[4], &g_key)) fail("cannot read", argv[4]);
  if (!read_targets(argv[5], &g_targets)) fail("cannot read", argv[5]);
  set_base(model);
  boot();  // power on (not printed)
  FILE* script = std::fopen(argv[6], "r");
  if (script == nullptr) fail("cannot read", argv[6]);
  char line[1024], word[16], path[1000];
  while (std::fgets(line, sizeof(line), script) != nullptr) {
    unsigned page = 0, offset = 0, mask = 0;
    std::vector<uint8_t> data;
    if (std::sscanf(line, "%15s", word) != 1) continue;
    const std::string command = word;
    if (command == "boot") {
      std::printf("boot %s\n", boot().c_str());
    } else if ((command == "patch" || command == "save" || command == "cut" || command == "base") &&
               std::sscanf(line, "%*s %999s", path) == 1) {
      if (!read_file(path, &data)) fail("cannot read", path);
      if (command == "patch") std::printf("patch %s\n", receive(data).c_str());
      if (command == "save") {
        std::printf("save %s\n", hypertiny_store_status_name(
                                      hypertiny_patch_store_save(&g_device.store, data.data(), data.size())));
      }
      if (command == "cut") cut_sweep(data);
      if (command == "base") set_base(data);
    } else if (command == "flip" && std::sscanf(line, "%*s %u %u %u", &page, &offset, &mask) == 3 && page < 2 &&
               offset < g_flash.page_bytes) {
      g_flash.mem[page][offset] = static_cast<uint8_t>(g_flash.mem[page][offset] ^ mask);
    } else if (command == "wipe") {
      for (int p = 0; p < 2; ++p) {
        g_flash.mem[p].assign(g_flash.page_bytes, 0xFF);
        g_flash.written[p].assign(g_flash.page_bytes / g_flash.unit, 0);
      }
    } else {
      fail("bad script line:", line);
    }
  }
  std::fclose(script);
  return 0;
}
