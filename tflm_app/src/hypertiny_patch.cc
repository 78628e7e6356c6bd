// HyperTinyPW code patches: SHA-256, HMAC-SHA256, check and apply (see hypertiny_patch.h).
#include "hypertiny_patch.h"

#include <cstring>

namespace {

const uint32_t kRoundConstants[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

inline uint32_t rotr(uint32_t x, unsigned n) { return (x >> n) | (x << (32 - n)); }

void compress(uint32_t state[8], const uint8_t block[64]) {
  uint32_t w[64];
  for (int i = 0; i < 16; ++i) {
    w[i] = (static_cast<uint32_t>(block[4 * i]) << 24) | (static_cast<uint32_t>(block[4 * i + 1]) << 16) |
           (static_cast<uint32_t>(block[4 * i + 2]) << 8) | static_cast<uint32_t>(block[4 * i + 3]);
  }
  for (int i = 16; i < 64; ++i) {
    const uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
    const uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
  uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
  for (int i = 0; i < 64; ++i) {
    const uint32_t t1 = h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + kRoundConstants[i] + w[i];
    const uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
    h = g;
    g = f;
    f = e;
    e = d + t1;
    d = c;
    c = b;
    b = a;
    a = t1 + t2;
  }
  state[0] += a;
  state[1] += b;
  state[2] += c;
  state[3] += d;
  state[4] += e;
  state[5] += f;
  state[6] += g;
  state[7] += h;
}

uint16_t read_u16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }

uint32_t read_u32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) | (static_cast<uint32_t>(p[2]) << 16) |
         (static_cast<uint32_t>(p[3]) << 24);
}

// Equal without an early exit: the time does not depend on where the bytes differ.
bool equal_constant_time(const uint8_t* a, const uint8_t* b, size_t n) {
  uint8_t diff = 0;
  for (size_t i = 0; i < n; ++i) diff = static_cast<uint8_t>(diff | (a[i] ^ b[i]));
  return diff == 0;
}

const HypertinyPatchTarget* find_target(const HypertinyPatchTarget* targets, size_t n_targets, uint16_t buffer) {
  for (size_t i = 0; i < n_targets; ++i) {
    if (targets[i].buffer == buffer) return &targets[i];
  }
  return nullptr;
}

}  // namespace

void hypertiny_sha256_init(HypertinySha256* ctx) {
  static const uint32_t kInitial[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                       0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  std::memcpy(ctx->state, kInitial, sizeof(kInitial));
  ctx->bytes = 0;
  ctx->used = 0;
}

void hypertiny_sha256_update(HypertinySha256* ctx, const uint8_t* data, size_t len) {
  ctx->bytes += len;
  if (ctx->used > 0) {
    const size_t take = len < 64 - ctx->used ? len : 64 - ctx->used;
    std::memcpy(ctx->block + ctx->used, data, take);
    ctx->used += take;
    data += take;
    len -= take;
    if (ctx->used < 64) return;
    compress(ctx->state, ctx->block);
    ctx->used = 0;
  }
  for (; len >= 64; data += 64, len -= 64) compress(ctx->state, data);
  if (len > 0) {
    std::memcpy(ctx->block, data, len);
    ctx->used = len;
  }
}

void hypertiny_sha256_final(HypertinySha256* ctx, uint8_t digest[32]) {
  const uint64_t bits = ctx->bytes * 8;
  uint8_t pad[72];  // 0x80, zeros up to 56 mod 64, the 8-byte length
  const size_t zeros = (ctx->used < 56 ? 56 : 120) - ctx->used - 1;
  pad[0] = 0x80;
  std::memset(pad + 1, 0, zeros);
  for (int i = 0; i < 8; ++i) pad[1 + zeros + i] = static_cast<uint8_t>(bits >> (56 - 8 * i));
  hypertiny_sha256_update(ctx, pad, 1 + zeros + 8);
  for (int i = 0; i < 8; ++i) {
    digest[4 * i] = static_cast<uint8_t>(ctx->state[i] >> 24);
    digest[4 * i + 1] = static_cast<uint8_t>(ctx->state[i] >> 16);
    digest[4 * i + 2] = static_cast<uint8_t>(ctx->state[i] >> 8);
    digest[4 * i + 3] = static_cast<uint8_t>(ctx->state[i]);
  }
}

void hypertiny_sha256(const uint8_t* data, size_t len, uint8_t digest[32]) {
  HypertinySha256 ctx;
  hypertiny_sha256_init(&ctx);
  hypertiny_sha256_update(&ctx, data, len);
  hypertiny_sha256_final(&ctx, digest);
}

void hypertiny_hmac_sha256(const uint8_t* key, size_t key_len, const uint8_t* data, size_t len, uint8_t mac[32]) {
  uint8_t block[64] = {0};
  if (key_len > 64) {
    hypertiny_sha256(key, key_len, block);
  } else if (key_len > 0) {
    std::memcpy(block, key, key_len);
  }
  HypertinySha256 ctx;
  for (int i = 0; i < 64; ++i) block[i] ^= 0x36;  // inner pad
  hypertiny_sha256_init(&ctx);
  hypertiny_sha256_update(&ctx, block, 64);
  hypertiny_sha256_update(&ctx, data, len);
  uint8_t inner[32];
  hypertiny_sha256_final(&ctx, inner);
  for (int i = 0; i < 64; ++i) block[i] ^= 0x36 ^ 0x5c;  // outer pad
  hypertiny_sha256_init(&ctx);
  hypertiny_sha256_update(&ctx, block, 64);
  hypertiny_sha256_update(&ctx, inner, 32);
  hypertiny_sha256_final(&ctx, mac);
  std::memset(block, 0, sizeof(block));
}

HypertinyPatchStatus hypertiny_patch_check_id(const uint8_t* patch, size_t patch_len, const uint8_t* base_id,
                                              size_t model_len, const uint8_t* key, size_t key_len,
                                              uint32_t last_counter, const HypertinyPatchTarget* targets,
                                              size_t n_targets, HypertinyPatchInfo* out) {
  typedef HypertinyPatchStatus S;
  if (patch == nullptr || base_id == nullptr || key == nullptr || key_len < kHypertinyPatchMinKeyBytes ||
      (targets == nullptr && n_targets > 0)) {
    return S::kBadArgument;
  }
  for (size_t i = 0; i < n_targets; ++i) {
    if (targets[i].offset > model_len || targets[i].length > model_len - targets[i].offset) return S::kBadArgument;
  }
  // Structure first, then the tag: nothing past magic and version is read before it is authenticated.
  if (patch_len < kHypertinyPatchHeaderBytes + kHypertinyPatchTagBytes) return S::kTruncated;
  if (patch[0] != 'H' || patch[1] != 'P') return S::kBadMagic;
  if (patch[2] != kHypertinyPatchVersion) return S::kBadVersion;
  const size_t body_len = patch_len - kHypertinyPatchTagBytes;
  uint8_t mac[32];
  hypertiny_hmac_sha256(key, key_len, patch, body_len, mac);
  if (!equal_constant_time(mac, patch + body_len, kHypertinyPatchTagBytes)) return S::kBadTag;

  // The records' structure (authenticated bytes from here on).
  const uint8_t count = patch[15];
  if (count == 0) return S::kTruncated;
  size_t position = kHypertinyPatchHeaderBytes;
  uint32_t value_bytes = 0;
  for (unsigned r = 0; r < count; ++r) {
    if (body_len - position < kHypertinyPatchRecordHeaderBytes) return S::kTruncated;
    const uint16_t buffer = read_u16(patch + position);
    const uint8_t length = patch[position + 2];
    position += kHypertinyPatchRecordHeaderBytes;
    if (length == 0) return S::kBadLength;
    if (body_len - position < length) return S::kTruncated;
    // A buffer named twice: look back over the records already read (at most 255).
    size_t earlier = kHypertinyPatchHeaderBytes;
    for (unsigned e = 0; e < r; ++e) {
      if (read_u16(patch + earlier) == buffer) return S::kDuplicate;
      earlier += kHypertinyPatchRecordHeaderBytes + patch[earlier + 2];
    }
    position += length;
    value_bytes += length;
  }
  if (position != body_len) return S::kTrailing;

  // The base, the counter, the targets.
  if (std::memcmp(base_id, patch + 3, kHypertinyPatchBaseIdBytes) != 0) return S::kWrongBase;
  const uint32_t counter = read_u32(patch + 11);
  if (counter <= last_counter) return S::kReplayed;
  position = kHypertinyPatchHeaderBytes;
  for (unsigned r = 0; r < count; ++r) {
    const HypertinyPatchTarget* target = find_target(targets, n_targets, read_u16(patch + position));
    const uint8_t length = patch[position + 2];
    if (target == nullptr) return S::kNotACodeBuffer;
    if (target->length != length) return S::kBadLength;
    position += kHypertinyPatchRecordHeaderBytes + length;
  }
  if (out != nullptr) {
    out->counter = counter;
    out->records = count;
    out->value_bytes = value_bytes;
    std::memcpy(out->base_id, patch + 3, kHypertinyPatchBaseIdBytes);
  }
  return S::kOk;
}

HypertinyPatchStatus hypertiny_patch_check(const uint8_t* patch, size_t patch_len, const uint8_t* model,
                                           size_t model_len, const uint8_t* key, size_t key_len,
                                           uint32_t last_counter, const HypertinyPatchTarget* targets,
                                           size_t n_targets, HypertinyPatchInfo* out) {
  if (model == nullptr) return HypertinyPatchStatus::kBadArgument;
  uint8_t digest[32];
  hypertiny_sha256(model, model_len, digest);
  return hypertiny_patch_check_id(patch, patch_len, digest, model_len, key, key_len, last_counter, targets, n_targets,
                                  out);
}

HypertinyPatchStatus hypertiny_patch_apply_id(const uint8_t* patch, size_t patch_len, const uint8_t* model,
                                              const uint8_t* base_id, size_t model_len, const uint8_t* key,
                                              size_t key_len, uint32_t last_counter,
                                              const HypertinyPatchTarget* targets, size_t n_targets, uint8_t* dest,
                                              size_t dest_len, HypertinyPatchInfo* out) {
  if (model == nullptr || dest == nullptr || dest_len < model_len) return HypertinyPatchStatus::kBadArgument;
  HypertinyPatchInfo info;
  const HypertinyPatchStatus status = hypertiny_patch_check_id(patch, patch_len, base_id, model_len, key, key_len,
                                                               last_counter, targets, n_targets, &info);
  if (status != HypertinyPatchStatus::kOk) return status;
  if (dest != model) std::memmove(dest, model, model_len);
  size_t position = kHypertinyPatchHeaderBytes;
  for (unsigned r = 0; r < info.records; ++r) {
    const HypertinyPatchTarget* target = find_target(targets, n_targets, read_u16(patch + position));
    const uint8_t length = patch[position + 2];
    std::memcpy(dest + target->offset, patch + position + kHypertinyPatchRecordHeaderBytes, length);
    position += kHypertinyPatchRecordHeaderBytes + length;
  }
  if (out != nullptr) *out = info;
  return HypertinyPatchStatus::kOk;
}

HypertinyPatchStatus hypertiny_patch_apply(const uint8_t* patch, size_t patch_len, const uint8_t* model,
                                           size_t model_len, const uint8_t* key, size_t key_len,
                                           uint32_t last_counter, const HypertinyPatchTarget* targets,
                                           size_t n_targets, uint8_t* dest, size_t dest_len,
                                           HypertinyPatchInfo* out) {
  if (model == nullptr) return HypertinyPatchStatus::kBadArgument;
  uint8_t digest[32];
  hypertiny_sha256(model, model_len, digest);
  return hypertiny_patch_apply_id(patch, patch_len, model, digest, model_len, key, key_len, last_counter, targets,
                                  n_targets, dest, dest_len, out);
}

const char* hypertiny_patch_status_name(HypertinyPatchStatus status) {
  switch (status) {
    case HypertinyPatchStatus::kOk: return "OK";
    case HypertinyPatchStatus::kTruncated: return "TRUNCATED";
    case HypertinyPatchStatus::kBadMagic: return "BAD_MAGIC";
    case HypertinyPatchStatus::kBadVersion: return "BAD_VERSION";
    case HypertinyPatchStatus::kBadTag: return "BAD_TAG";
    case HypertinyPatchStatus::kWrongBase: return "WRONG_BASE";
    case HypertinyPatchStatus::kReplayed: return "REPLAYED";
    case HypertinyPatchStatus::kNotACodeBuffer: return "NOT_A_CODE_BUFFER";
    case HypertinyPatchStatus::kBadLength: return "BAD_LENGTH";
    case HypertinyPatchStatus::kDuplicate: return "DUPLICATE";
    case HypertinyPatchStatus::kTrailing: return "TRAILING";
    case HypertinyPatchStatus::kBadArgument: return "BAD_ARGUMENT";
  }
  return "UNKNOWN";
}
