// Body of the kernels; included by kernels_<isa>.cpp after defining HAILO_KERNELS_FN (the
// name of the accessor to define) and HAILO_KERNELS_NAME. Everything else has internal linkage.
//
// Quantize: round_half_even(clip(x, lo, hi) / scale + zp), saturated to [0, qmax], in float32
// with the very operations of the numpy reference (a true division), NaN -> 0. Rounding uses the
// exact 2^23 trick: for 0 <= v <= 65535, v + 2^23 is rounded to an integer, ties to even, in the
// default rounding mode, and that integer is the low bits of the sum's representation; unlike
// std::nearbyint this vectorises. On x86 the quantize loop is written with SSE2/AVX2/AVX-512
// intrinsics (per the flags of the including file); the rest is left to the auto-vectoriser.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kernels.hpp"

#if defined(HAILO_KERNELS_NO_INTRINSICS)
#define HAILO_KERNELS_X86 0
#elif defined(__SSE2__)
#define HAILO_KERNELS_X86 1
#else
#define HAILO_KERNELS_X86 0
#endif

#if HAILO_KERNELS_X86 && (defined(__AVX2__) || defined(__AVX512F__))
#include <immintrin.h>  // intrinsics are always-inline: nothing of them is emitted as a symbol
#elif HAILO_KERNELS_X86
#include <emmintrin.h>
#endif

namespace hailo_ort {
namespace {

inline std::uint32_t quantize_bits(float x, float scale, float zp, float lo, float hi,
                                   float qmax) {
  constexpr float kRound = 8388608.0f;  // 2^23
  float v = x < lo ? lo : x;            // np.clip keeps NaN; so do these two selects
  v = hi < v ? hi : v;
  v = v / scale + zp;
  v = v > 0.0f ? v : 0.0f;  // saturate below (and NaN -> 0)
  v = v < qmax ? v : qmax;
  std::uint32_t bits;
  const float shifted = v + kRound;
  std::memcpy(&bits, &shifted, sizeof bits);
  return bits;  // 0x4B000000 | round(v)
}

template <class T>
constexpr float qmax_of() {
  return sizeof(T) == 1 ? 255.0f : 65535.0f;
}

#if HAILO_KERNELS_X86
// x86: GCC's auto-vectorised selects are poor here, so the loops are spelled out with
// intrinsics. Each min/max has exactly the semantics of the scalar select in quantize_bits
// (max(a, b) is a > b ? a : b, min(a, b) is a < b ? a : b, NaN included), so every variant
// computes the same bits as the scalar code.
#if defined(__AVX512F__) && defined(__AVX512BW__)
using VecF = __m512;
using VecI = __m512i;
inline VecF vload(const float* p) { return _mm512_loadu_ps(p); }
inline VecF vset(float v) { return _mm512_set1_ps(v); }
inline VecF vmax(VecF a, VecF b) { return _mm512_max_ps(a, b); }
inline VecF vmin(VecF a, VecF b) { return _mm512_min_ps(a, b); }
inline VecF vdiv(VecF a, VecF b) { return _mm512_div_ps(a, b); }
inline VecF vadd(VecF a, VecF b) { return _mm512_add_ps(a, b); }
inline VecI vbits(VecF a) { return _mm512_castps_si512(a); }
#elif defined(__AVX2__)
using VecF = __m256;
using VecI = __m256i;
inline VecF vload(const float* p) { return _mm256_loadu_ps(p); }
inline VecF vset(float v) { return _mm256_set1_ps(v); }
inline VecF vmax(VecF a, VecF b) { return _mm256_max_ps(a, b); }
inline VecF vmin(VecF a, VecF b) { return _mm256_min_ps(a, b); }
inline VecF vdiv(VecF a, VecF b) { return _mm256_div_ps(a, b); }
inline VecF vadd(VecF a, VecF b) { return _mm256_add_ps(a, b); }
inline VecI vbits(VecF a) { return _mm256_castps_si256(a); }
#else
using VecF = __m128;
using VecI = __m128i;
inline VecF vload(const float* p) { return _mm_loadu_ps(p); }
inline VecF vset(float v) { return _mm_set1_ps(v); }
inline VecF vmax(VecF a, VecF b) { return _mm_max_ps(a, b); }
inline VecF vmin(VecF a, VecF b) { return _mm_min_ps(a, b); }
inline VecF vdiv(VecF a, VecF b) { return _mm_div_ps(a, b); }
inline VecF vadd(VecF a, VecF b) { return _mm_add_ps(a, b); }
inline VecI vbits(VecF a) { return _mm_castps_si128(a); }
#endif

struct ConstScale {
  VecF s, z;
  VecF scale(std::size_t) const { return s; }
  VecF zp(std::size_t) const { return z; }
};

struct ArrayScale {
  const float* s;
  const float* z;
  VecF scale(std::size_t i) const { return vload(s + i); }
  VecF zp(std::size_t i) const { return vload(z + i); }
};

// One vector of results as 32-bit lanes whose low 16 bits are the quantized values.
template <class Scale>
inline VecI quantize_lanes(const float* in, std::size_t i, const Scale& sz, VecF lo, VecF hi,
                           VecF qmax) {
  VecF v = vload(in + i);
  v = vmax(lo, v);  // x < lo ? lo : x
  v = vmin(hi, v);  // hi < v ? hi : v
  v = vadd(vdiv(v, sz.scale(i)), sz.zp(i));
  v = vmax(v, vset(0.0f));  // v > 0 ? v : 0
  v = vmin(v, qmax);        // v < qmax ? v : qmax
  return vbits(vadd(v, vset(8388608.0f)));
}

#if defined(__AVX512F__) && defined(__AVX512BW__)
template <class Scale>
inline std::size_t quantize_simd(const float* __restrict in, std::uint8_t* __restrict out,
                                 std::size_t n, const Scale& sz, float lo, float hi) {
  const VecF vlo = vset(lo), vhi = vset(hi), qmax = vset(255.0f);
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) {  // vpmovdb keeps the low byte of each lane
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i),
                     _mm512_cvtepi32_epi8(quantize_lanes(in, i, sz, vlo, vhi, qmax)));
  }
  return i;
}

template <class Scale>
inline std::size_t quantize_simd(const float* __restrict in, std::uint16_t* __restrict out,
                                 std::size_t n, const Scale& sz, float lo, float hi) {
  const VecF vlo = vset(lo), vhi = vset(hi), qmax = vset(65535.0f);
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) {  // vpmovdw keeps the low 16 bits of each lane
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i),
                        _mm512_cvtepi32_epi16(quantize_lanes(in, i, sz, vlo, vhi, qmax)));
  }
  return i;
}
#elif defined(__AVX2__)
template <class Scale>
inline std::size_t quantize_simd(const float* __restrict in, std::uint8_t* __restrict out,
                                 std::size_t n, const Scale& sz, float lo, float hi) {
  const VecF vlo = vset(lo), vhi = vset(hi), qmax = vset(255.0f);
  const __m256i mask = _mm256_set1_epi32(0xFF);
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  std::size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m256i a = _mm256_and_si256(quantize_lanes(in, i, sz, vlo, vhi, qmax), mask);
    const __m256i b = _mm256_and_si256(quantize_lanes(in, i + 8, sz, vlo, vhi, qmax), mask);
    const __m256i c = _mm256_and_si256(quantize_lanes(in, i + 16, sz, vlo, vhi, qmax), mask);
    const __m256i d = _mm256_and_si256(quantize_lanes(in, i + 24, sz, vlo, vhi, qmax), mask);
    // the packs work per 128-bit half: the permutation puts the 4-byte groups back in order
    const __m256i packed =
        _mm256_packus_epi16(_mm256_packs_epi32(a, b), _mm256_packs_epi32(c, d));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i),
                        _mm256_permutevar8x32_epi32(packed, order));
  }
  return i;
}

template <class Scale>
inline std::size_t quantize_simd(const float* __restrict in, std::uint16_t* __restrict out,
                                 std::size_t n, const Scale& sz, float lo, float hi) {
  const VecF vlo = vset(lo), vhi = vset(hi), qmax = vset(65535.0f);
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    // sign-extend the low 16 bits so the signed pack keeps them (v - 65536 when v >= 32768)
    const __m256i a = _mm256_srai_epi32(
        _mm256_slli_epi32(quantize_lanes(in, i, sz, vlo, vhi, qmax), 16), 16);
    const __m256i b = _mm256_srai_epi32(
        _mm256_slli_epi32(quantize_lanes(in, i + 8, sz, vlo, vhi, qmax), 16), 16);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i),
                        _mm256_permute4x64_epi64(_mm256_packs_epi32(a, b), 0xD8));
  }
  return i;
}
#else
template <class Scale>
inline std::size_t quantize_simd(const float* __restrict in, std::uint8_t* __restrict out,
                                 std::size_t n, const Scale& sz, float lo, float hi) {
  const VecF vlo = vset(lo), vhi = vset(hi), qmax = vset(255.0f);
  const __m128i mask = _mm_set1_epi32(0xFF);
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m128i a = _mm_and_si128(quantize_lanes(in, i, sz, vlo, vhi, qmax), mask);
    const __m128i b = _mm_and_si128(quantize_lanes(in, i + 4, sz, vlo, vhi, qmax), mask);
    const __m128i c = _mm_and_si128(quantize_lanes(in, i + 8, sz, vlo, vhi, qmax), mask);
    const __m128i d = _mm_and_si128(quantize_lanes(in, i + 12, sz, vlo, vhi, qmax), mask);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i),
                     _mm_packus_epi16(_mm_packs_epi32(a, b), _mm_packs_epi32(c, d)));
  }
  return i;
}

template <class Scale>
inline std::size_t quantize_simd(const float* __restrict in, std::uint16_t* __restrict out,
                                 std::size_t n, const Scale& sz, float lo, float hi) {
  const VecF vlo = vset(lo), vhi = vset(hi), qmax = vset(65535.0f);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    // sign-extend the low 16 bits so the signed pack keeps them (v - 65536 when v >= 32768)
    const __m128i a =
        _mm_srai_epi32(_mm_slli_epi32(quantize_lanes(in, i, sz, vlo, vhi, qmax), 16), 16);
    const __m128i b =
        _mm_srai_epi32(_mm_slli_epi32(quantize_lanes(in, i + 4, sz, vlo, vhi, qmax), 16), 16);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), _mm_packs_epi32(a, b));
  }
  return i;
}
#endif

template <class T>
void quantize_run(const float* __restrict in, T* __restrict out, std::size_t n, float scale,
                  float zp, float lo, float hi) {
  std::size_t i = quantize_simd(in, out, n, ConstScale{vset(scale), vset(zp)}, lo, hi);
  for (; i < n; ++i) {
    out[i] = static_cast<T>(quantize_bits(in[i], scale, zp, lo, hi, qmax_of<T>()));
  }
}

template <class T>
void quantize_run_pf(const float* __restrict in, T* __restrict out, std::size_t n,
                     const float* __restrict scales, const float* __restrict zps, float lo,
                     float hi) {
  std::size_t i = quantize_simd(in, out, n, ArrayScale{scales, zps}, lo, hi);
  for (; i < n; ++i) {
    out[i] = static_cast<T>(quantize_bits(in[i], scales[i], zps[i], lo, hi, qmax_of<T>()));
  }
}
#else
// Other CPUs (e.g. arm64 NEON): auto-vectorised. The narrowing is a separate loop: fused with
// the selects, GCC turns them into slow mask arithmetic on narrow integers.
constexpr std::size_t kBlock = 256;

inline std::size_t min_size(std::size_t a, std::size_t b) { return a < b ? a : b; }

template <class T>
inline void narrow(const std::uint32_t* __restrict bits, T* __restrict out, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<T>(bits[i]);
}

template <class T>
void quantize_run(const float* __restrict in, T* __restrict out, std::size_t n, float scale,
                  float zp, float lo, float hi) {
  alignas(64) std::uint32_t bits[kBlock];
  for (std::size_t a = 0; a < n; a += kBlock) {
    const std::size_t m = min_size(kBlock, n - a);
    for (std::size_t i = 0; i < m; ++i) {
      bits[i] = quantize_bits(in[a + i], scale, zp, lo, hi, qmax_of<T>());
    }
    narrow(bits, out + a, m);
  }
}

template <class T>
void quantize_run_pf(const float* __restrict in, T* __restrict out, std::size_t n,
                     const float* __restrict scales, const float* __restrict zps, float lo,
                     float hi) {
  alignas(64) std::uint32_t bits[kBlock];
  for (std::size_t a = 0; a < n; a += kBlock) {
    const std::size_t m = min_size(kBlock, n - a);
    for (std::size_t i = 0; i < m; ++i) {
      bits[i] = quantize_bits(in[a + i], scales[a + i], zps[a + i], lo, hi, qmax_of<T>());
    }
    narrow(bits, out + a, m);
  }
}

#endif

template <class T>
void dequantize_run(const T* __restrict in, float* __restrict out, std::size_t n, float scale,
                    float zp) {
  for (std::size_t i = 0; i < n; ++i) out[i] = (static_cast<float>(in[i]) - zp) * scale;
}

template <class T>
void dequantize_run_pf(const T* __restrict in, float* __restrict out, std::size_t n,
                       const float* __restrict scales, const float* __restrict zps) {
  for (std::size_t i = 0; i < n; ++i) out[i] = (static_cast<float>(in[i]) - zps[i]) * scales[i];
}

// Few rows (e.g. 3 channels) get fixed-count loops the compiler unrolls.
template <std::size_t Rows, class T>
void scatter_fixed(const T* __restrict tile, std::size_t run, T* __restrict dst,
                   std::size_t dst_stride, std::size_t cols) {
  for (std::size_t s = 0; s < cols; ++s) {
    for (std::size_t i = 0; i < Rows; ++i) dst[s * dst_stride + i] = tile[i * run + s];
  }
}

// The tile holds every row of the destination (rows == dst_stride): one interleaved store the
// compiler vectorises with shuffles.
template <std::size_t Rows, class T>
void scatter_dense(const T* __restrict tile, std::size_t run, T* __restrict dst,
                   std::size_t cols) {
  for (std::size_t s = 0; s < cols; ++s) {
    for (std::size_t i = 0; i < Rows; ++i) dst[s * Rows + i] = tile[i * run + s];
  }
}

// A dense tile (run == Cols) of few columns: de-interleave it into Cols destination rows.
template <std::size_t Cols, class T>
void scatter_deinterleave(const T* __restrict tile, std::size_t rows, T* __restrict dst,
                          std::size_t dst_stride) {
  for (std::size_t i = 0; i < rows; ++i) {
    for (std::size_t s = 0; s < Cols; ++s) dst[s * dst_stride + i] = tile[i * Cols + s];
  }
}

template <class T>
void scatter(const T* __restrict tile, std::size_t run, std::size_t rows, T* __restrict dst,
             std::size_t dst_stride, std::size_t cols) {
  if (run == cols && !(rows == dst_stride && rows <= 4)) {
    switch (cols) {
      case 1: return scatter_deinterleave<1>(tile, rows, dst, dst_stride);
      case 2: return scatter_deinterleave<2>(tile, rows, dst, dst_stride);
      case 3: return scatter_deinterleave<3>(tile, rows, dst, dst_stride);
      case 4: return scatter_deinterleave<4>(tile, rows, dst, dst_stride);
      default: break;
    }
  }
  if (rows == dst_stride) {
    switch (rows) {
      case 1: return scatter_dense<1>(tile, run, dst, cols);
      case 2: return scatter_dense<2>(tile, run, dst, cols);
      case 3: return scatter_dense<3>(tile, run, dst, cols);
      case 4: return scatter_dense<4>(tile, run, dst, cols);
      default: break;
    }
  }
  switch (rows) {
    case 1: return scatter_fixed<1>(tile, run, dst, dst_stride, cols);
    case 2: return scatter_fixed<2>(tile, run, dst, dst_stride, cols);
    case 3: return scatter_fixed<3>(tile, run, dst, dst_stride, cols);
    case 4: return scatter_fixed<4>(tile, run, dst, dst_stride, cols);
    default: break;
  }
  for (std::size_t s = 0; s < cols; ++s) {
    T* d = dst + s * dst_stride;
    for (std::size_t i = 0; i < rows; ++i) d[i] = tile[i * run + s];
  }
}

template <std::size_t Cols, class T>
void gather_fixed(const T* __restrict src, std::size_t src_stride, std::size_t rows,
                  T* __restrict tile, std::size_t run) {
  for (std::size_t r = 0; r < rows; ++r) {
    for (std::size_t i = 0; i < Cols; ++i) tile[i * run + r] = src[r * src_stride + i];
  }
}

#if HAILO_KERNELS_X86
// In-register transposes by repeated perfect shuffles: interleaving row k with row k + N/2,
// log2(N) times, transposes an N x N matrix.
inline void transpose_16x16_u8(__m128i* v) {
  for (int round = 0; round < 4; ++round) {
    __m128i t[16];
    for (int k = 0; k < 8; ++k) {
      t[2 * k] = _mm_unpacklo_epi8(v[k], v[k + 8]);
      t[2 * k + 1] = _mm_unpackhi_epi8(v[k], v[k + 8]);
    }
    for (int k = 0; k < 16; ++k) v[k] = t[k];
  }
}

inline void transpose_8x8_u16(__m128i* v) {
  for (int round = 0; round < 3; ++round) {
    __m128i t[8];
    for (int k = 0; k < 4; ++k) {
      t[2 * k] = _mm_unpacklo_epi16(v[k], v[k + 4]);
      t[2 * k + 1] = _mm_unpackhi_epi16(v[k], v[k + 4]);
    }
    for (int k = 0; k < 8; ++k) v[k] = t[k];
  }
}

inline void gather16_simd(const std::uint8_t* __restrict src, std::size_t src_stride,
                          std::size_t rows, std::uint8_t* __restrict tile, std::size_t run) {
  std::size_t r = 0;
  for (; r + 16 <= rows; r += 16) {
    __m128i v[16];
    for (int j = 0; j < 16; ++j) {
      v[j] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + (r + j) * src_stride));
    }
    transpose_16x16_u8(v);
    for (int i = 0; i < 16; ++i) {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(tile + i * run + r), v[i]);
    }
  }
  for (; r < rows; ++r) {
    for (std::size_t i = 0; i < 16; ++i) tile[i * run + r] = src[r * src_stride + i];
  }
}

inline void gather16_simd(const std::uint16_t* __restrict src, std::size_t src_stride,
                          std::size_t rows, std::uint16_t* __restrict tile, std::size_t run) {
  std::size_t r = 0;
  for (; r + 8 <= rows; r += 8) {
    for (std::size_t half = 0; half < 16; half += 8) {
      __m128i v[8];
      for (int j = 0; j < 8; ++j) {
        v[j] = _mm_loadu_si128(
            reinterpret_cast<const __m128i*>(src + (r + j) * src_stride + half));
      }
      transpose_8x8_u16(v);
      for (int i = 0; i < 8; ++i) {
        _mm_storeu_si128(reinterpret_cast<__m128i*>(tile + (half + i) * run + r), v[i]);
      }
    }
  }
  for (; r < rows; ++r) {
    for (std::size_t i = 0; i < 16; ++i) tile[i * run + r] = src[r * src_stride + i];
  }
}
#endif

// Rows of few columns packed densely in the source (src_stride == Cols): de-interleave them.
template <std::size_t Cols, class T>
void gather_deinterleave(const T* __restrict src, std::size_t rows, T* __restrict tile,
                         std::size_t run) {
  for (std::size_t r = 0; r < rows; ++r) {
    for (std::size_t i = 0; i < Cols; ++i) tile[i * run + r] = src[r * Cols + i];
  }
}

template <class T>
void gather(const T* __restrict src, std::size_t src_stride, std::size_t rows,
            T* __restrict tile, std::size_t run, std::size_t cols) {
  if (src_stride == cols) {
    switch (cols) {
      case 1: return gather_deinterleave<1>(src, rows, tile, run);
      case 2: return gather_deinterleave<2>(src, rows, tile, run);
      case 3: return gather_deinterleave<3>(src, rows, tile, run);
      case 4: return gather_deinterleave<4>(src, rows, tile, run);
      default: break;
    }
  }
#if HAILO_KERNELS_X86
  if (cols == 16) return gather16_simd(src, src_stride, rows, tile, run);
#else
  if (cols == 16) return gather_fixed<16>(src, src_stride, rows, tile, run);
#endif
  for (std::size_t r = 0; r < rows; ++r) {
    const T* s = src + r * src_stride;
    for (std::size_t i = 0; i < cols; ++i) tile[i * run + r] = s[i];
  }
}

template <class T>
constexpr TypedKernels<T> typed() {
  return TypedKernels<T>{&quantize_run<T>, &quantize_run_pf<T>, &dequantize_run<T>,
                         &dequantize_run_pf<T>, &scatter<T>,        &gather<T>};
}

const Kernels kTable{HAILO_KERNELS_NAME, typed<std::uint8_t>(), typed<std::uint16_t>()};

}  // namespace

const Kernels* HAILO_KERNELS_FN() { return &kTable; }

}  // namespace hailo_ort
