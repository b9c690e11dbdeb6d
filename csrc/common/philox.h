// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11; the
// Random123 library), header-only, for host C++ and CUDA device code alike.
//
// fastlayers uses it for dropout: the mask is a pure function of (seed, flat element index), so
// the CPU kernels, the CUDA kernels and the NumPy reference (python/fastlayers/reference/dropout.py)
// draw the same mask bit for bit. The mapping, which all three implement:
//
//   key     = (seed & 0xffffffff, seed >> 32)                      (seed: 64-bit unsigned)
//   block   = i / 4                                                (i: flat element index)
//   counter = (block & 0xffffffff, block >> 32, 0, 0)
//   word    = Philox4x32-10(counter, key)[i % 4]
//   u       = (word >> 8) * 2^-24                                  (uniform in [0, 1), 24 bits)
//   keep    = u >= p   <=>   (word >> 8) >= threshold,  threshold = ceil(p * 2^24)
//
// The integer threshold makes "u >= p" exact without any floating-point comparison, so no backend
// can round differently. Only <cstdint> types are used: nothing here needs the C++ standard library.
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
#define FL_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define FL_HOST_DEVICE inline
#endif

namespace fastlayers {
namespace philox {

// The constants of Philox4x32 (Random123's philox.h).
constexpr std::uint32_t kMul0 = 0xD2511F53u;
constexpr std::uint32_t kMul1 = 0xCD9E8D57u;
constexpr std::uint32_t kWeyl0 = 0x9E3779B9u;  // golden ratio
constexpr std::uint32_t kWeyl1 = 0xBB67AE85u;  // sqrt(3) - 1
constexpr int kRounds = 10;

// 2^24: dropout compares the top 24 bits of a word against ceil(p * 2^24).
constexpr std::uint32_t kUniformBits = 24;

FL_HOST_DEVICE std::uint32_t mulhi32(std::uint32_t a, std::uint32_t b) {
#if defined(__CUDA_ARCH__)
  return __umulhi(a, b);
#else
  return static_cast<std::uint32_t>((static_cast<std::uint64_t>(a) * b) >> 32);
#endif
}

// One Philox4x32 round, in place on (c0, c1, c2, c3) with key (k0, k1).
FL_HOST_DEVICE void round4x32(std::uint32_t& c0, std::uint32_t& c1, std::uint32_t& c2, std::uint32_t& c3,
                              std::uint32_t k0, std::uint32_t k1) {
  const std::uint32_t hi0 = mulhi32(kMul0, c0), lo0 = kMul0 * c0;
  const std::uint32_t hi1 = mulhi32(kMul1, c2), lo1 = kMul1 * c2;
  c0 = hi1 ^ c1 ^ k0;
  c1 = lo1;
  c2 = hi0 ^ c3 ^ k1;
  c3 = lo0;
}

// Philox4x32-10: the counter (c0..c3) is replaced by the four output words.
FL_HOST_DEVICE void philox4x32_10(std::uint32_t& c0, std::uint32_t& c1, std::uint32_t& c2, std::uint32_t& c3,
                                  std::uint32_t k0, std::uint32_t k1) {
  for (int r = 0; r < kRounds; ++r) {
    if (r > 0) {  // the key schedule bumps the key between rounds
      k0 += kWeyl0;
      k1 += kWeyl1;
    }
    round4x32(c0, c1, c2, c3, k0, k1);
  }
}

// The four words for the dropout block `block` (elements 4*block .. 4*block+3) under `seed`.
FL_HOST_DEVICE void dropout_block(std::uint64_t seed, std::uint64_t block, std::uint32_t out[4]) {
  std::uint32_t c0 = static_cast<std::uint32_t>(block), c1 = static_cast<std::uint32_t>(block >> 32);
  std::uint32_t c2 = 0, c3 = 0;
  philox4x32_10(c0, c1, c2, c3, static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32));
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

// Whether a word keeps its element, given threshold = ceil(p * 2^24) (see the top of this file).
FL_HOST_DEVICE bool keep(std::uint32_t word, std::uint32_t threshold) {
  return (word >> (32 - kUniformBits)) >= threshold;
}

}  // namespace philox
}  // namespace fastlayers
