// File reading and printing shared by the native harnesses of tests/device (patch_harness.cc,
// patch_store_harness.cc). Not part of the device library.
#ifndef TESTS_DEVICE_HARNESS_IO_H_
#define TESTS_DEVICE_HARNESS_IO_H_

#include <cstdint>
#include <cstdio>
#include <vector>

#include "hypertiny_patch.h"

inline bool read_file(const char* path, std::vector<uint8_t>* out) {
  FILE* f = std::fopen(path, "rb");
  if (f == nullptr) return false;
  uint8_t chunk[4096];
  size_t n;
  while ((n = std::fread(chunk, 1, sizeof(chunk), f)) > 0) out->insert(out->end(), chunk, chunk + n);
  std::fclose(f);
  return true;
}

// A text file of "buffer offset length" lines (the base's code buffers).
inline bool read_targets(const char* path, std::vector<HypertinyPatchTarget>* out) {
  FILE* f = std::fopen(path, "r");
  if (f == nullptr) return false;
  unsigned buffer;
  unsigned long offset, length;
  while (std::fscanf(f, "%u %lu %lu", &buffer, &offset, &length) == 3) {
    HypertinyPatchTarget target;
    target.buffer = static_cast<uint16_t>(buffer);
    target.offset = static_cast<uint32_t>(offset);
    target.length = static_cast<uint32_t>(length);
    out->push_back(target);
  }
  std::fclose(f);
  return true;
}

inline void print_hex(const uint8_t* bytes, size_t n, const char* end = "\n") {
  for (size_t i = 0; i < n; ++i) std::printf("%02x", bytes[i]);
  std::printf("%s", end);
}

#endif  // TESTS_DEVICE_HARNESS_IO_H_
