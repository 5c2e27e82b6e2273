// Body of the kernels; included by kernels_<isa>.cpp after defining HAILO_KERNELS_FN (the
// name of the accessor to define) and HAILO_KERNELS_NAME. Everything else has internal linkage.
//
// Quantize: round_half_even(clip(x, lo, hi) / scale + zp), saturated to [0, qmax], in float32
// with the very operations of the numpy reference (a true division), NaN -> 0. Rounding uses the
// exact 2^23 trick: for 0 <= v <= 65535, v + 2^23 is rounded to an integer, ties to even, in the
// default rounding mode, and that integer is the low bits of the sum's representation; unlike
// std::nearbyint this vectorises.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kernels.hpp"

#if defined(__SSE2__)
#include <emmintrin.h>  // intrinsics are always-inline: nothing of them is emitted as a symbol
#endif

namespace hailo_ort {
namespace {

constexpr std::size_t kBlock = 256;

inline std::size_t min_size(std::size_t a, std::size_t b) { return a < b ? a : b; }

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

// The narrowing is a separate loop: fused with the selects above, GCC turns them into slow
// mask arithmetic on narrow integers.
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

#if defined(__SSE2__)
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
#if defined(__SSE2__)
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
