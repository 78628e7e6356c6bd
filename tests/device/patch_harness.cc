// Native harness for tflm_app/src/hypertiny_patch.cc (tests/device/test_patch_core.py builds it with g++).
//
//   patch_harness sha256 FILE
//       prints the SHA-256 of FILE in hex
//   patch_harness hmac KEYFILE FILE
//       prints HMAC-SHA256(key, FILE) in hex
//   patch_harness apply MODEL PATCH KEY LAST_COUNTER TARGETS OUT [inplace]
//       TARGETS: a text file of "buffer offset length" lines. Runs hypertiny_patch_check (and
//       hypertiny_patch_check_id with the base's hash: the same status), then
//       hypertiny_patch_apply into a RAM copy (slot B; or into the model itself with `inplace`),
//       prints the status name (and on OK "counter N records N bytes N"), writes OUT only on OK.
//       Exit code 0 on OK, 3 on a refusal, 2 on a usage or I/O error.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "harness_io.h"
#include "hypertiny_patch.h"

namespace {

int fail(const char* message, const char* what) {
  std::fprintf(stderr, "patch_harness: %s %s\n", message, what);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::strcmp(argv[1], "sha256") == 0) {
    std::vector<uint8_t> data;
    if (!read_file(argv[2], &data)) return fail("cannot read", argv[2]);
    uint8_t digest[32];
    hypertiny_sha256(data.data(), data.size(), digest);
    print_hex(digest, 32);
    return 0;
  }
  if (argc == 4 && std::strcmp(argv[1], "hmac") == 0) {
    std::vector<uint8_t> key, data;
    if (!read_file(argv[2], &key) || !read_file(argv[3], &data)) return fail("cannot read", argv[3]);
    uint8_t mac[32];
    hypertiny_hmac_sha256(key.data(), key.size(), data.data(), data.size(), mac);
    print_hex(mac, 32);
    return 0;
  }
  if ((argc != 8 && argc != 9) || std::strcmp(argv[1], "apply") != 0) {
    return fail("usage: sha256 FILE | hmac KEY FILE | apply MODEL PATCH KEY LAST_COUNTER TARGETS OUT [inplace]",
                "");
  }
  std::vector<uint8_t> model, patch, key;
  if (!read_file(argv[2], &model)) return fail("cannot read", argv[2]);
  if (!read_file(argv[3], &patch)) return fail("cannot read", argv[3]);
  if (!read_file(argv[4], &key)) return fail("cannot read", argv[4]);
  const uint32_t last_counter = static_cast<uint32_t>(std::strtoul(argv[5], nullptr, 10));
  std::vector<HypertinyPatchTarget> targets;
  if (!read_targets(argv[6], &targets)) return fail("cannot read", argv[6]);
  const bool in_place = argc == 9 && std::strcmp(argv[8], "inplace") == 0;

  HypertinyPatchInfo checked;
  const HypertinyPatchStatus check = hypertiny_patch_check(patch.data(), patch.size(), model.data(), model.size(),
                                                           key.data(), key.size(), last_counter, targets.data(),
                                                           targets.size(), &checked);
  // The same check with the base id given (the core hashes its base once): the same status.
  uint8_t digest[32];
  hypertiny_sha256(model.data(), model.size(), digest);
  const HypertinyPatchStatus check_id = hypertiny_patch_check_id(
      patch.data(), patch.size(), digest, model.size(), key.data(), key.size(), last_counter, targets.data(),
      targets.size(), nullptr);
  if (check_id != check) {
    std::printf("MISMATCH check %s check_id %s\n", hypertiny_patch_status_name(check),
                hypertiny_patch_status_name(check_id));
    return 2;
  }
  // Slot B: a RAM copy the size of the model, filled with a marker so a partial write would show.
  std::vector<uint8_t> slot_b(model.size(), 0xA5);
  const std::vector<uint8_t> before_a = model;
  uint8_t* dest = in_place ? model.data() : slot_b.data();
  HypertinyPatchInfo info;
  const HypertinyPatchStatus status =
      hypertiny_patch_apply(patch.data(), patch.size(), model.data(), model.size(), key.data(), key.size(),
                            last_counter, targets.data(), targets.size(), dest, model.size(), &info);
  std::printf("%s\n", hypertiny_patch_status_name(status));
  if (status != check) {
    std::printf("MISMATCH check %s apply %s\n", hypertiny_patch_status_name(check),
                hypertiny_patch_status_name(status));
    return 2;
  }
  if (status != HypertinyPatchStatus::kOk) {
    for (size_t i = 0; i < slot_b.size(); ++i) {
      if (slot_b[i] != 0xA5) {
        std::printf("WRITTEN slot B byte %zu on a refusal\n", i);
        return 2;
      }
    }
    if (model != before_a) {
      std::printf("WRITTEN the model on a refusal\n");
      return 2;
    }
    return 3;
  }
  if (!in_place && model != before_a) {
    std::printf("WRITTEN slot A\n");
    return 2;
  }
  std::printf("counter %u records %u bytes %u base ", static_cast<unsigned>(info.counter),
              static_cast<unsigned>(info.records), static_cast<unsigned>(info.value_bytes));
  print_hex(info.base_id, sizeof(info.base_id));
  FILE* out = std::fopen(argv[7], "wb");
  if (out == nullptr) return fail("cannot write", argv[7]);
  const size_t written = std::fwrite(dest, 1, model.size(), out);
  std::fclose(out);
  return written == model.size() ? 0 : fail("cannot write", argv[7]);
}
