// Body of the kernels; included by kernels_<isa>.cpp after defining HAILO_KERNELS_FN (the
// name of the accessor to define) and HAILO_KERNELS_NAME. Everything else has internal linkage.
//
// Quantize: round_half_even(clip(x, lo, hi) / scale + zp), saturated to [0, qmax], in float32
// with the results of the numpy reference bit for bit (its true division's quotient, see
// CorrectedReciprocal below), NaN -> 0. Rounding uses the
// exact 2^23 trick: for 0 <= v <= 65535, v + 2^23 is rounded to an integer, ties to even, in the
// default rounding mode, and that integer is the low bits of the sum's representation; unlike
// std::nearbyint this vectorises. On x86 the quantize loop is written with SSE2/AVX2/AVX-512
// intrinsics (per the flags of the including file); the rest is left to the auto-vectoriser.
// With AVX2/AVX-512 and parameters that bound |x / scale + zp| below 2^30 (RoundLanes), the
// clamp and the 2^23 rounding become a round-to-nearest-even conversion and the saturating
// narrowing of the store. Where the scale and zero point allow (reciprocal_exact), the division
// is Markstein's reciprocal product corrected by one FMA, which yields the very quotient of the
// division (the divider's throughput bounded the loop: 1.5x slower on the development CPU).
// AVX-512 also has layout kernels: 3 planes <-> interleaved triples (quantize3, deinterleave3:
// VBMI/BW permutes) and transposing dequantize (dequantize_t64: rows loaded one per register,
// 16 x 16 byte / 8 x 8 word transposes in each 128-bit lane, a small tile, and each channel's
// rows stored as one run of floats). AVX2 has dequantize_t64 the same way with 32-byte rows, and
// the uint8 quantize3 by byte shuffles. Other sets: the general tiled path (transforms.cpp).
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kernels.hpp"

// getenv without <cstdlib>: this file includes no C++ library header (see kernels.hpp).
extern "C" char* getenv(const char* name) noexcept;

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
inline VecF vmul(VecF a, VecF b) { return _mm512_mul_ps(a, b); }
inline VecF vsub(VecF a, VecF b) { return _mm512_sub_ps(a, b); }
inline VecF vabs(VecF a) {
  return _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(a), _mm512_set1_epi32(0x7FFFFFFF)));
}
// Any lane with !(a < b) (NaN included).
inline bool vany_not_less(VecF a, VecF b) { return _mm512_cmp_ps_mask(a, b, _CMP_NLT_UQ) != 0; }
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
inline VecF vmul(VecF a, VecF b) { return _mm256_mul_ps(a, b); }
inline VecF vsub(VecF a, VecF b) { return _mm256_sub_ps(a, b); }
inline VecF vabs(VecF a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
inline bool vany_not_less(VecF a, VecF b) {
  return _mm256_movemask_ps(_mm256_cmp_ps(a, b, _CMP_NLT_UQ)) != 0;
}
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
inline VecF vmul(VecF a, VecF b) { return _mm_mul_ps(a, b); }
inline VecF vsub(VecF a, VecF b) { return _mm_sub_ps(a, b); }
inline VecF vabs(VecF a) { return _mm_andnot_ps(_mm_set1_ps(-0.0f), a); }
inline bool vany_not_less(VecF a, VecF b) { return _mm_movemask_ps(_mm_cmpnlt_ps(a, b)) != 0; }
#endif

struct ConstScale {
  VecF s, z;
  VecF scale(std::size_t) const { return s; }
  VecF zp(std::size_t) const { return z; }
};

struct ArrayScale {
  const float* s;
  const float* z;
  VecF scale(std::size_t) const;
  VecF zp(std::size_t) const;
};
inline VecF ArrayScale::scale(std::size_t i) const { return vload(s + i); }
inline VecF ArrayScale::zp(std::size_t i) const { return vload(z + i); }

// One vector of results as 32-bit lanes whose low 16 bits are the quantized values, computed
// with the true division (the reference's operations).
template <class Scale>
struct ExactLanes {
  Scale sz;
  VecF lo, hi, qmax;
  VecI operator()(const float* in, std::size_t i) const {
    VecF v = vload(in + i);
    v = vmax(lo, v);  // x < lo ? lo : x
    v = vmin(hi, v);  // hi < v ? hi : v
    v = vadd(vdiv(v, sz.scale(i)), sz.zp(i));
    v = vmax(v, vset(0.0f));  // v > 0 ? v : 0
    v = vmin(v, qmax);        // v < qmax ? v : qmax
    return vbits(vadd(v, vset(8388608.0f)));
  }
};

// Where the clipped values can only give |x / scale + zp| < 2^30 (checked once per call by
// round_saturate_ok), the clamp to [0, qmax] and the 2^23 rounding are replaced by a
// round-to-nearest-even conversion to int32 and the saturating integer narrowing of the store:
// round and clamp commute because 0 and qmax are integers, and a NaN converts to INT32_MIN,
// which saturates to 0 like the reference's NaN. When round(lo / scale + zp) <= 0 (the clip at
// lo can only give 0) the clip at lo is left out: every x < lo also gives 0 (the map is monotone
// for scale > 0; -inf converts to INT32_MIN, and with the corrected reciprocal -inf, or an x
// whose product with 1 / scale overflows, becomes NaN first, which converts the same).
// The division by the scale, as the reference does it (a true division), or, where
// reciprocal_exact allows, as Markstein's corrected reciprocal: q = x * r with r = RN(1 / s),
// then q + (x - q * s) * r, the remainder in one FMA. Markstein's theorem makes that RN(x / s)
// when q is within an ulp of x / s and the remainder does not underflow (|x| >= 2^-70 here);
// q can be slightly more than an ulp off for scales whose significand is near 2, where the
// theorem does not apply, and the result was RN(x / s) there too for every float32 x in the
// exhaustive runs of native/tools/reciprocal_check.cpp (scales 1/k, k/255, the 32 significands
// just below 2, the 32 reciprocals with the largest rounding error, random ones). It costs three
// FMA-unit operations instead of the divider's much lower throughput.
struct TrueDivision {
  VecF s;
  VecF operator()(VecF v) const { return vdiv(v, s); }
};

#if defined(__AVX512F__) || defined(__FMA__)
#define HAILO_KERNELS_HAVE_FMA 1
struct CorrectedReciprocal {
  VecF s, r;
  VecF operator()(VecF v) const {
#if defined(__AVX512F__)
    const VecF q = _mm512_mul_ps(v, r);
    return _mm512_fmadd_ps(_mm512_fnmadd_ps(q, s, v), r, q);
#else
    const VecF q = _mm256_mul_ps(v, r);
    return _mm256_fmadd_ps(_mm256_fnmadd_ps(q, s, v), r, q);
#endif
  }
};
#else
#define HAILO_KERNELS_HAVE_FMA 0
#endif

// True when the corrected reciprocal gives the quantized values of the true division for every
// input (in the domain round_saturate_ok admits): with 2^-30 <= scale <= 2^30, an x with
// |x| >= 2^-70 has a normal quotient and a remainder that does not underflow, so the two
// quotients are equal (see CorrectedReciprocal above for what proves or checked that); a
// smaller x has both quotients below 2^-40 in magnitude, which round to 0 with zp == 0 and
// vanish in the sum with |zp| >= 2^-10 (half an ulp of zp is at least 2^-35).
inline bool reciprocal_exact(float scale, float zp) {
  const float azp = zp < 0.0f ? -zp : zp;
  return HAILO_KERNELS_HAVE_FMA && scale >= 0x1p-30f && scale <= 0x1p30f &&
         (zp == 0.0f || azp >= 0x1p-10f);
}

template <class Div>
struct RoundLanes {
  VecF lo, hi;
  Div div;
  VecF zp;
  bool clip_lo;
  VecI operator()(const float* in, std::size_t i) const {
    VecF v = vload(in + i);
    if (clip_lo) v = vmax(lo, v);  // x < lo ? lo : x (NaN kept)
    v = vmin(hi, v);               // hi < v ? hi : v (NaN kept)
    v = vadd(div(v), zp);
#if defined(__AVX512F__) && defined(__AVX512BW__)
    // these round as the current mode (like np.rint and the 2^23 trick): to nearest even
    return _mm512_cvtps_epi32(v);
#elif defined(__AVX2__)
    return _mm256_cvtps_epi32(v);
#else
    return _mm_cvtps_epi32(v);
#endif
  }
};

inline bool round_saturate_ok(float scale, float zp, float lo, float hi, bool& clip_lo) {
  const double s = scale, alo = lo < 0.0f ? -static_cast<double>(lo) : lo;
  const double ahi = hi < 0.0f ? -static_cast<double>(hi) : hi;
  const double azp = zp < 0.0f ? -static_cast<double>(zp) : zp;
  const double m = alo > ahi ? alo : ahi;
  // written so that NaN parameters fail
  if (!(s > 1e-30 && s < 1e30 && m < 1e30 && lo <= hi && m / s + azp < 1073741824.0)) return false;
  // the reference's value at lo, rounded (no clamp): <= 0 means the clip at lo only yields 0
  const float at_lo = lo / scale + zp;
  clip_lo = !(at_lo <= 0.5f);
  return true;
}

// Calls fn(lanes) with the RoundLanes for these parameters (the corrected reciprocal where
// exact, else the true division); false (fn not called) when round_saturate_ok refuses them.
template <class F>
inline bool with_round_lanes(float scale, float zp, float lo, float hi, const F& fn) {
  bool clip_lo = true;
  if (!round_saturate_ok(scale, zp, lo, hi, clip_lo)) return false;
#if HAILO_KERNELS_HAVE_FMA
  if (reciprocal_exact(scale, zp)) {
    fn(RoundLanes<CorrectedReciprocal>{vset(lo), vset(hi),
                                       CorrectedReciprocal{vset(scale), vset(1.0f / scale)},
                                       vset(zp), clip_lo});
    return true;
  }
#endif
  fn(RoundLanes<TrueDivision>{vset(lo), vset(hi), TrueDivision{vset(scale)}, vset(zp), clip_lo});
  return true;
}

#if defined(__AVX512F__) && defined(__AVX512BW__)
// Saturating narrowing of int32 lanes: packs work per 128-bit lane, the permutation restores
// the order.
template <class Lanes>
inline std::size_t quantize_round(const float* __restrict in, std::uint8_t* __restrict out,
                                  std::size_t n, const Lanes& lanes) {
  const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  std::size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    const __m512i ab = _mm512_packs_epi32(lanes(in, i), lanes(in, i + 16));
    const __m512i cd = _mm512_packs_epi32(lanes(in, i + 32), lanes(in, i + 48));
    _mm512_storeu_si512(out + i, _mm512_permutexvar_epi32(order, _mm512_packus_epi16(ab, cd)));
  }
  for (; i + 16 <= n; i += 16) {
    const __m512i k = _mm512_max_epi32(lanes(in, i), _mm512_setzero_si512());
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), _mm512_cvtusepi32_epi8(k));
  }
  return i;
}

template <class Lanes>
inline std::size_t quantize_round(const float* __restrict in, std::uint16_t* __restrict out,
                                  std::size_t n, const Lanes& lanes) {
  const __m512i order = _mm512_setr_epi64(0, 2, 4, 6, 1, 3, 5, 7);
  std::size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512i ab = _mm512_packus_epi32(lanes(in, i), lanes(in, i + 16));
    _mm512_storeu_si512(out + i, _mm512_permutexvar_epi64(order, ab));
  }
  return i;
}
#elif defined(__AVX2__)
template <class Lanes>
inline std::size_t quantize_round(const float* __restrict in, std::uint8_t* __restrict out,
                                  std::size_t n, const Lanes& lanes) {
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  std::size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m256i ab = _mm256_packs_epi32(lanes(in, i), lanes(in, i + 8));
    const __m256i cd = _mm256_packs_epi32(lanes(in, i + 16), lanes(in, i + 24));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i),
                        _mm256_permutevar8x32_epi32(_mm256_packus_epi16(ab, cd), order));
  }
  return i;
}

template <class Lanes>
inline std::size_t quantize_round(const float* __restrict in, std::uint16_t* __restrict out,
                                  std::size_t n, const Lanes& lanes) {
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256i ab = _mm256_packus_epi32(lanes(in, i), lanes(in, i + 8));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), _mm256_permute4x64_epi64(ab, 0xD8));
  }
  return i;
}
#else
// SSE2 has no unsigned 32 -> 16 saturation: the 2^23 path does it all.
template <class T, class Lanes>
inline std::size_t quantize_round(const float*, T*, std::size_t, const Lanes&) {
  return 0;
}
#endif

#if defined(__AVX512F__) && defined(__AVX512BW__)
template <class Lanes>
inline std::size_t quantize_simd(const float* __restrict in, std::uint8_t* __restrict out,
                                 std::size_t n, const Lanes& lanes) {
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) {  // vpmovdb keeps the low byte of each lane
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), _mm512_cvtepi32_epi8(lanes(in, i)));
  }
  return i;
}

template <class Lanes>
inline std::size_t quantize_simd(const float* __restrict in, std::uint16_t* __restrict out,
                                 std::size_t n, const Lanes& lanes) {
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) {  // vpmovdw keeps the low 16 bits of each lane
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), _mm512_cvtepi32_epi16(lanes(in, i)));
  }
  return i;
}
#elif defined(__AVX2__)
template <class Lanes>
inline std::size_t quantize_simd(const float* __restrict in, std::uint8_t* __restrict out,
                                 std::size_t n, const Lanes& lanes) {
  const __m256i mask = _mm256_set1_epi32(0xFF);
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  std::size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m256i a = _mm256_and_si256(lanes(in, i), mask);
    const __m256i b = _mm256_and_si256(lanes(in, i + 8), mask);
    const __m256i c = _mm256_and_si256(lanes(in, i + 16), mask);
    const __m256i d = _mm256_and_si256(lanes(in, i + 24), mask);
    // the packs work per 128-bit half: the permutation puts the 4-byte groups back in order
    const __m256i packed =
        _mm256_packus_epi16(_mm256_packs_epi32(a, b), _mm256_packs_epi32(c, d));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i),
                        _mm256_permutevar8x32_epi32(packed, order));
  }
  return i;
}

template <class Lanes>
inline std::size_t quantize_simd(const float* __restrict in, std::uint16_t* __restrict out,
                                 std::size_t n, const Lanes& lanes) {
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    // sign-extend the low 16 bits so the signed pack keeps them (v - 65536 when v >= 32768)
    const __m256i a = _mm256_srai_epi32(_mm256_slli_epi32(lanes(in, i), 16), 16);
    const __m256i b = _mm256_srai_epi32(_mm256_slli_epi32(lanes(in, i + 8), 16), 16);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i),
                        _mm256_permute4x64_epi64(_mm256_packs_epi32(a, b), 0xD8));
  }
  return i;
}
#else
template <class Lanes>
inline std::size_t quantize_simd(const float* __restrict in, std::uint8_t* __restrict out,
                                 std::size_t n, const Lanes& lanes) {
  const __m128i mask = _mm_set1_epi32(0xFF);
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m128i a = _mm_and_si128(lanes(in, i), mask);
    const __m128i b = _mm_and_si128(lanes(in, i + 4), mask);
    const __m128i c = _mm_and_si128(lanes(in, i + 8), mask);
    const __m128i d = _mm_and_si128(lanes(in, i + 12), mask);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i),
                     _mm_packus_epi16(_mm_packs_epi32(a, b), _mm_packs_epi32(c, d)));
  }
  return i;
}

template <class Lanes>
inline std::size_t quantize_simd(const float* __restrict in, std::uint16_t* __restrict out,
                                 std::size_t n, const Lanes& lanes) {
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    // sign-extend the low 16 bits so the signed pack keeps them (v - 65536 when v >= 32768)
    const __m128i a = _mm_srai_epi32(_mm_slli_epi32(lanes(in, i), 16), 16);
    const __m128i b = _mm_srai_epi32(_mm_slli_epi32(lanes(in, i + 4), 16), 16);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), _mm_packs_epi32(a, b));
  }
  return i;
}
#endif

template <class T>
void quantize_run(const float* __restrict in, T* __restrict out, std::size_t n, float scale,
                  float zp, float lo, float hi) {
  std::size_t i = 0;
  with_round_lanes(scale, zp, lo, hi, [&](const auto& lanes) { i = quantize_round(in, out, n, lanes); });
  const ExactLanes<ConstScale> exact{ConstScale{vset(scale), vset(zp)}, vset(lo), vset(hi),
                                     vset(qmax_of<T>())};
  i += quantize_simd(in + i, out + i, n - i, exact);
  for (; i < n; ++i) {
    out[i] = static_cast<T>(quantize_bits(in[i], scale, zp, lo, hi, qmax_of<T>()));
  }
}

template <class T>
void quantize_run_pf(const float* __restrict in, T* __restrict out, std::size_t n,
                     const float* __restrict scales, const float* __restrict zps, float lo,
                     float hi) {
  const ExactLanes<ArrayScale> exact{ArrayScale{scales, zps}, vset(lo), vset(hi),
                                     vset(qmax_of<T>())};
  std::size_t i = quantize_simd(in, out, n, exact);
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

// Quantize 3 planes (in + c * plane_stride, c < 3, n values each) into n interleaved triples
// (out[3 * s + c]), e.g. NCHW -> NHWC with 3 channels, without a tile: each plane's values are
// quantized and narrowed in registers, then three permutations interleave them. Returns false
// (and does nothing) when this kernel set has no such path or the parameters need the general
// one; n == 0 asks only that.
#if HAILO_KERNELS_X86
// with_round_lanes for 3 planes with their own parameters: fn(lanes) with RoundLanes<Div>[3].
template <class F>
inline bool with_round_lanes3(const float* scales, const float* zps, float lo, float hi,
                              const F& fn) {
  bool clip_lo[3] = {true, true, true}, reciprocal = HAILO_KERNELS_HAVE_FMA;
  for (int c = 0; c < 3; ++c) {
    if (!round_saturate_ok(scales[c], zps[c], lo, hi, clip_lo[c])) return false;
    reciprocal = reciprocal && reciprocal_exact(scales[c], zps[c]);
  }
#if HAILO_KERNELS_HAVE_FMA
  if (reciprocal) {
    RoundLanes<CorrectedReciprocal> lanes[3];
    for (int c = 0; c < 3; ++c) {
      lanes[c] = {vset(lo), vset(hi), CorrectedReciprocal{vset(scales[c]), vset(1.0f / scales[c])},
                  vset(zps[c]), clip_lo[c]};
    }
    fn(static_cast<const RoundLanes<CorrectedReciprocal>*>(lanes));
    return true;
  }
#endif
  RoundLanes<TrueDivision> lanes[3];
  for (int c = 0; c < 3; ++c) {
    lanes[c] = {vset(lo), vset(hi), TrueDivision{vset(scales[c])}, vset(zps[c]), clip_lo[c]};
  }
  fn(static_cast<const RoundLanes<TrueDivision>*>(lanes));
  return true;
}

template <class T>
void quantize3_tail(const float* in, std::size_t plane_stride, T* out, std::size_t i,
                    std::size_t n, const float* scales, const float* zps, float lo, float hi) {
  for (; i < n; ++i) {
    for (std::size_t c = 0; c < 3; ++c) {
      out[3 * i + c] = static_cast<T>(
          quantize_bits(in[c * plane_stride + i], scales[c], zps[c], lo, hi, qmax_of<T>()));
    }
  }
}
#endif

#if HAILO_KERNELS_X86 && defined(__AVX512F__) && defined(__AVX512BW__)
// Position of value p in the register the RoundLanes packs produce (E elements per register;
// the packs interleave 128-bit lanes of 4 int32 sources).
constexpr std::size_t packed_pos(std::size_t p, std::size_t e) {
  return (e / 4) * ((p % 16) / 4) + 4 * (p / 16) + p % 4;
}

template <class T, class Mask>
struct Interleave3Index {
  alignas(64) T ab[3][64 / sizeof(T)];  // from the planes 0 (idx < E) and 1 (idx >= E)
  alignas(64) T c[3][64 / sizeof(T)];   // from plane 2, where `mask` is set
  Mask mask[3];
  Interleave3Index() : ab(), c(), mask() {
    constexpr std::size_t E = 64 / sizeof(T);
    for (std::size_t k = 0; k < 3; ++k) {
      for (std::size_t t = 0; t < E; ++t) {
        const std::size_t j = E * k + t, plane = j % 3, pos = packed_pos(j / 3, E);
        if (plane == 2) {
          c[k][t] = static_cast<T>(pos);
          mask[k] = static_cast<Mask>(mask[k] | (Mask{1} << t));
        } else {
          ab[k][t] = static_cast<T>(pos + plane * E);
        }
      }
    }
  }
};

template <class Lanes>
inline __m512i packed_u8(const Lanes& lanes, const float* in, std::size_t i) {
  const __m512i ab = _mm512_packs_epi32(lanes(in, i), lanes(in, i + 16));
  const __m512i cd = _mm512_packs_epi32(lanes(in, i + 32), lanes(in, i + 48));
  return _mm512_packus_epi16(ab, cd);
}

template <class Lanes>
__attribute__((target("avx512vbmi"))) void quantize3_vbmi(
    const float* __restrict in, std::size_t plane_stride, std::uint8_t* __restrict out,
    std::size_t n, const Lanes* lanes, const Interleave3Index<std::uint8_t, __mmask64>& ix) {
  __m512i ab[3], cc[3];
  for (int k = 0; k < 3; ++k) {
    ab[k] = _mm512_load_si512(ix.ab[k]);
    cc[k] = _mm512_load_si512(ix.c[k]);
  }
  for (std::size_t i = 0; i + 64 <= n; i += 64) {
    const __m512i p0 = packed_u8(lanes[0], in, i);
    const __m512i p1 = packed_u8(lanes[1], in + plane_stride, i);
    const __m512i p2 = packed_u8(lanes[2], in + 2 * plane_stride, i);
    for (int k = 0; k < 3; ++k) {
      const __m512i two = _mm512_permutex2var_epi8(p0, ab[k], p1);
      _mm512_storeu_si512(out + 3 * i + 64 * k,
                          _mm512_mask_permutexvar_epi8(two, ix.mask[k], cc[k], p2));
    }
  }
}

// HAILO_ORT_NO_VBMI=1 in the environment makes the kernels act as on an AVX-512 CPU without
// VBMI (for tests of those paths on a CPU that has it).
inline bool cpu_has_vbmi() {
  static const bool has = [] {
    __builtin_cpu_init();
    const char* off = getenv("HAILO_ORT_NO_VBMI");
    return __builtin_cpu_supports("avx512vbmi") != 0 && !(off != nullptr && off[0] == '1');
  }();
  return has;
}

bool quantize3(const float* __restrict in, std::size_t plane_stride,
               std::uint8_t* __restrict out, std::size_t n, const float* scales,
               const float* zps, float lo, float hi) {
  static const Interleave3Index<std::uint8_t, __mmask64> ix;
  if (!cpu_has_vbmi() ||
      !with_round_lanes3(scales, zps, lo, hi, [&](const auto* lanes) {
        if (n != 0) quantize3_vbmi(in, plane_stride, out, n, lanes, ix);
      })) {
    return false;
  }
  quantize3_tail(in, plane_stride, out, n - n % 64, n, scales, zps, lo, hi);
  return true;
}

template <class Lanes>
std::size_t quantize3_u16(const float* __restrict in, std::size_t plane_stride,
                          std::uint16_t* __restrict out, std::size_t n, const Lanes* lanes,
                          const Interleave3Index<std::uint16_t, __mmask32>& ix) {
  __m512i ab[3], cc[3];
  for (int k = 0; k < 3; ++k) {
    ab[k] = _mm512_load_si512(ix.ab[k]);
    cc[k] = _mm512_load_si512(ix.c[k]);
  }
  std::size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    __m512i p[3];
    for (std::size_t c = 0; c < 3; ++c) {
      const float* plane = in + c * plane_stride;
      p[c] = _mm512_packus_epi32(lanes[c](plane, i), lanes[c](plane, i + 16));
    }
    for (int k = 0; k < 3; ++k) {
      const __m512i two = _mm512_permutex2var_epi16(p[0], ab[k], p[1]);
      _mm512_storeu_si512(out + 3 * i + 32 * k,
                          _mm512_mask_permutexvar_epi16(two, ix.mask[k], cc[k], p[2]));
    }
  }
  return i;
}

bool quantize3(const float* __restrict in, std::size_t plane_stride,
               std::uint16_t* __restrict out, std::size_t n, const float* scales,
               const float* zps, float lo, float hi) {
  static const Interleave3Index<std::uint16_t, __mmask32> ix;
  std::size_t i = 0;
  const bool ok = with_round_lanes3(scales, zps, lo, hi, [&](const auto* lanes) {
    i = quantize3_u16(in, plane_stride, out, n, lanes, ix);
  });
  if (!ok) return false;
  quantize3_tail(in, plane_stride, out, i, n, scales, zps, lo, hi);
  return true;
}

#elif HAILO_KERNELS_X86 && defined(__AVX2__) && HAILO_KERNELS_HAVE_FMA
// AVX2, uint8: each plane's 32 values are quantized and packed in order (as quantize_round),
// then interleaved 16 pixels per 128-bit lane by byte shuffles (3 sources x 3 outputs, or'ed),
// and the lanes' 48-byte groups put back in order by lane permutes.
struct Interleave3Masks {
  alignas(32) std::uint8_t m[3][3][32];  // [output register j][source plane c]
  Interleave3Masks() : m() {
    for (int j = 0; j < 3; ++j) {
      for (int c = 0; c < 3; ++c) {
        for (int t = 0; t < 32; ++t) {
          const int k = 16 * j + t % 16;  // byte of the lane's 48-byte group
          m[j][c][t] = k % 3 == c ? static_cast<std::uint8_t>(k / 3) : 0x80;
        }
      }
    }
  }
};

template <class Lanes>
inline __m256i packed_u8(const Lanes& lanes, const float* in, std::size_t i) {
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  const __m256i ab = _mm256_packs_epi32(lanes(in, i), lanes(in, i + 8));
  const __m256i cd = _mm256_packs_epi32(lanes(in, i + 16), lanes(in, i + 24));
  return _mm256_permutevar8x32_epi32(_mm256_packus_epi16(ab, cd), order);
}

template <class Lanes>
void quantize3_avx2(const float* __restrict in, std::size_t plane_stride,
                    std::uint8_t* __restrict out, std::size_t n, const Lanes* lanes,
                    const Interleave3Masks& masks) {
  __m256i m[3][3];
  for (int j = 0; j < 3; ++j) {
    for (int c = 0; c < 3; ++c) {
      m[j][c] = _mm256_load_si256(reinterpret_cast<const __m256i*>(masks.m[j][c]));
    }
  }
  for (std::size_t i = 0; i + 32 <= n; i += 32) {
    const __m256i p[3] = {packed_u8(lanes[0], in, i), packed_u8(lanes[1], in + plane_stride, i),
                          packed_u8(lanes[2], in + 2 * plane_stride, i)};
    __m256i o[3];
    for (int j = 0; j < 3; ++j) {
      o[j] = _mm256_or_si256(
          _mm256_or_si256(_mm256_shuffle_epi8(p[0], m[j][0]), _mm256_shuffle_epi8(p[1], m[j][1])),
          _mm256_shuffle_epi8(p[2], m[j][2]));
    }
    // o[j] holds bytes 16 j .. 16 j + 15 of pixels 0-15 (low lane) and of pixels 16-31 (high)
    std::uint8_t* d = out + 3 * i;
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(d), _mm256_permute2x128_si256(o[0], o[1], 0x20));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + 32),
                        _mm256_permute2x128_si256(o[2], o[0], 0x30));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + 64),
                        _mm256_permute2x128_si256(o[1], o[2], 0x31));
  }
}

bool quantize3(const float* __restrict in, std::size_t plane_stride,
               std::uint8_t* __restrict out, std::size_t n, const float* scales,
               const float* zps, float lo, float hi) {
  static const Interleave3Masks masks;
  if (!with_round_lanes3(scales, zps, lo, hi, [&](const auto* lanes) {
        if (n != 0) quantize3_avx2(in, plane_stride, out, n, lanes, masks);
      })) {
    return false;
  }
  quantize3_tail(in, plane_stride, out, n - n % 32, n, scales, zps, lo, hi);
  return true;
}

bool quantize3(const float*, std::size_t, std::uint16_t*, std::size_t, const float*,
               const float*, float, float) {
  return false;
}
#else
template <class T>
bool quantize3(const float*, std::size_t, T*, std::size_t, const float*, const float*, float,
               float) {
  return false;
}
#endif

// The inverse layout: out[c * plane_stride + s] = Hailo-quantize(in[3 * s + c]) for c < 3,
// s < n, with one scale (e.g. NHWC -> NHCW with 3 channels): the interleaved values are
// quantized in order, then three permutations split them into the planes. Same contract as
// quantize3.
#if HAILO_KERNELS_X86 && defined(__AVX512F__) && defined(__AVX512BW__)
template <class T, class Mask>
struct Deinterleave3Index {
  alignas(64) T ab[3][64 / sizeof(T)];  // from the registers 0 (idx < E) and 1 (idx >= E)
  alignas(64) T c[3][64 / sizeof(T)];   // from register 2, where `mask` is set
  Mask mask[3];
  Deinterleave3Index() : ab(), c(), mask() {
    constexpr std::size_t E = 64 / sizeof(T);
    for (std::size_t plane = 0; plane < 3; ++plane) {
      for (std::size_t t = 0; t < E; ++t) {
        const std::size_t j = 3 * t + plane, reg = j / E, pos = packed_pos(j % E, E);
        if (reg == 2) {
          c[plane][t] = static_cast<T>(pos);
          mask[plane] = static_cast<Mask>(mask[plane] | (Mask{1} << t));
        } else {
          ab[plane][t] = static_cast<T>(pos + reg * E);
        }
      }
    }
  }
};

template <class T>
void deinterleave3_tail(const float* in, std::size_t plane_stride, T* out, std::size_t i,
                        std::size_t n, float scale, float zp, float lo, float hi) {
  for (; i < n; ++i) {
    for (std::size_t c = 0; c < 3; ++c) {
      out[c * plane_stride + i] =
          static_cast<T>(quantize_bits(in[3 * i + c], scale, zp, lo, hi, qmax_of<T>()));
    }
  }
}

template <class Lanes>
__attribute__((target("avx512vbmi"))) void deinterleave3_vbmi(
    const float* __restrict in, std::size_t plane_stride, std::uint8_t* __restrict out,
    std::size_t n, const Lanes& lanes,
    const Deinterleave3Index<std::uint8_t, __mmask64>& ix) {
  __m512i ab[3], cc[3];
  for (int k = 0; k < 3; ++k) {
    ab[k] = _mm512_load_si512(ix.ab[k]);
    cc[k] = _mm512_load_si512(ix.c[k]);
  }
  for (std::size_t i = 0; i + 64 <= n; i += 64) {
    const float* src = in + 3 * i;
    const __m512i p0 = packed_u8(lanes, src, 0);
    const __m512i p1 = packed_u8(lanes, src, 64);
    const __m512i p2 = packed_u8(lanes, src, 128);
    for (int c = 0; c < 3; ++c) {
      const __m512i two = _mm512_permutex2var_epi8(p0, ab[c], p1);
      _mm512_storeu_si512(out + c * plane_stride + i,
                          _mm512_mask_permutexvar_epi8(two, ix.mask[c], cc[c], p2));
    }
  }
}

bool deinterleave3(const float* __restrict in, std::size_t plane_stride,
                   std::uint8_t* __restrict out, std::size_t n, float scale, float zp, float lo,
                   float hi) {
  static const Deinterleave3Index<std::uint8_t, __mmask64> ix;
  if (!cpu_has_vbmi() || !with_round_lanes(scale, zp, lo, hi, [&](const auto& lanes) {
        if (n != 0) deinterleave3_vbmi(in, plane_stride, out, n, lanes, ix);
      })) {
    return false;
  }
  deinterleave3_tail(in, plane_stride, out, n - n % 64, n, scale, zp, lo, hi);
  return true;
}

template <class Lanes>
std::size_t deinterleave3_u16(const float* __restrict in, std::size_t plane_stride,
                              std::uint16_t* __restrict out, std::size_t n, const Lanes& lanes,
                              const Deinterleave3Index<std::uint16_t, __mmask32>& ix) {
  __m512i ab[3], cc[3];
  for (int k = 0; k < 3; ++k) {
    ab[k] = _mm512_load_si512(ix.ab[k]);
    cc[k] = _mm512_load_si512(ix.c[k]);
  }
  std::size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const float* src = in + 3 * i;
    __m512i p[3];
    for (std::size_t k = 0; k < 3; ++k) {
      p[k] = _mm512_packus_epi32(lanes(src, 32 * k), lanes(src, 32 * k + 16));
    }
    for (int c = 0; c < 3; ++c) {
      const __m512i two = _mm512_permutex2var_epi16(p[0], ab[c], p[1]);
      _mm512_storeu_si512(out + c * plane_stride + i,
                          _mm512_mask_permutexvar_epi16(two, ix.mask[c], cc[c], p[2]));
    }
  }
  return i;
}

bool deinterleave3(const float* __restrict in, std::size_t plane_stride,
                   std::uint16_t* __restrict out, std::size_t n, float scale, float zp, float lo,
                   float hi) {
  static const Deinterleave3Index<std::uint16_t, __mmask32> ix;
  std::size_t i = 0;
  const bool ok = with_round_lanes(scale, zp, lo, hi, [&](const auto& lanes) {
    i = deinterleave3_u16(in, plane_stride, out, n, lanes, ix);
  });
  if (!ok) return false;
  deinterleave3_tail(in, plane_stride, out, i, n, scale, zp, lo, hi);
  return true;
}
#else
template <class T>
bool deinterleave3(const float*, std::size_t, T*, std::size_t, float, float, float, float) {
  return false;
}
#endif

// out[r * len + i] = (in[r * in_stride + i] - zp) * scale for r < rows, i < len: strided
// rows into contiguous ones (e.g. NHCW -> NCHW), with no call per row through the kernel
// table. Every kernel set has it (the contract still allows false: nothing done); rows == 0
// only asks.
#if HAILO_KERNELS_X86 && defined(__AVX512F__) && defined(__AVX512BW__)
bool dequantize_rows(const std::uint8_t* __restrict in, std::size_t in_stride, std::size_t rows,
                     std::size_t len, float* __restrict out, float scale, float zp) {
  const __m512 vs = _mm512_set1_ps(scale), vz = _mm512_set1_ps(zp);
  const std::size_t tail = len % 16;
  const __mmask16 tail_mask = static_cast<__mmask16>((1u << tail) - 1);
  for (std::size_t r = 0; r < rows; ++r) {
    const std::uint8_t* src = in + r * in_stride;
    float* dst = out + r * len;
    std::size_t i = 0;
    for (; i + 16 <= len; i += 16) {
      const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
      const __m512 q = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(b));
      _mm512_storeu_ps(dst + i, _mm512_mul_ps(_mm512_sub_ps(q, vz), vs));
    }
    if (tail != 0) {
      const __m128i b = _mm_maskz_loadu_epi8(tail_mask, src + i);
      const __m512 q = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(b));
      _mm512_mask_storeu_ps(dst + i, tail_mask, _mm512_mul_ps(_mm512_sub_ps(q, vz), vs));
    }
  }
  return true;
}

bool dequantize_rows(const std::uint16_t* __restrict in, std::size_t in_stride, std::size_t rows,
                     std::size_t len, float* __restrict out, float scale, float zp) {
  for (std::size_t r = 0; r < rows; ++r) {
    dequantize_run(in + r * in_stride, out + r * len, len, scale, zp);
  }
  return true;
}
#else
// Other kernel sets: the flat loop (auto-vectorised) row by row, inlined here.
template <class T>
bool dequantize_rows(const T* __restrict in, std::size_t in_stride, std::size_t rows,
                     std::size_t len, float* __restrict out, float scale, float zp) {
  for (std::size_t r = 0; r < rows; ++r) {
    dequantize_run(in + r * in_stride, out + r * len, len, scale, zp);
  }
  return true;
}
#endif

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

// dst[i * dst_stride + r] = (src[r * src_stride + i] - zps[i * step]) * scales[i * step] for
// i < nch, r < rows, nch in {16, 32, 48, 64} (dequantize with a transpose, e.g. NHWC -> NCHW):
// 16 rows of 64 values are transposed in registers as four 16 x 16 blocks, one per 128-bit
// lane, and each channel's 16 values are converted and stored straight to the output. False
// (nothing done) when this kernel set has no such path; rows == 0 only asks.
#if HAILO_KERNELS_X86 && defined(__AVX512F__) && defined(__AVX512BW__)
inline void transpose_16x16_u8_lanes(__m512i* v) {  // transpose_16x16_u8 in each 128-bit lane
  for (int round = 0; round < 4; ++round) {
    __m512i t[16];
    for (int k = 0; k < 8; ++k) {
      t[2 * k] = _mm512_unpacklo_epi8(v[k], v[k + 8]);
      t[2 * k + 1] = _mm512_unpackhi_epi8(v[k], v[k + 8]);
    }
    for (int k = 0; k < 16; ++k) v[k] = t[k];
  }
}

template <int Lane>
inline __m128i lane_of(__m512i v) {
  return _mm512_extracti32x4_epi32(v, Lane);
}

// Widen: the 16 bytes of 128-bit lane l of a register as 16 int32 lanes.
struct ExtractWiden {
  __m512i operator()(__m512i v, std::size_t l) const {
    switch (l) {
      case 0: return _mm512_cvtepu8_epi32(_mm512_castsi512_si128(v));
      case 1: return _mm512_cvtepu8_epi32(lane_of<1>(v));
      case 2: return _mm512_cvtepu8_epi32(lane_of<2>(v));
      default: return _mm512_cvtepu8_epi32(lane_of<3>(v));
    }
  }
};

// 64-row blocks of 16 values (nch == 16). Register j = 4 m + t, lane l, holds row
// 16 m + 4 l + t, so after the transposes byte 4 m + t of lane l of register i is channel i at
// that row, and one in-lane byte shuffle per m zero-extends rows 16 m .. 16 m + 15 in order:
// 64 consecutive outputs of one channel per register, stored as 4 full lines. The row
// addresses are stepped by hand (base + multiples of the stride per load ran out of registers).
// Returns the rows done (a multiple of 64).
inline std::size_t dequantize_t16_rows64(const std::uint8_t* __restrict src,
                                         std::size_t src_stride, std::size_t rows,
                                         float* __restrict dst, std::size_t dst_stride,
                                         const float* scales, const float* zps,
                                         std::size_t step) {
  __m512i pick[4];
  for (int m = 0; m < 4; ++m) {
    alignas(64) std::uint8_t b[64];
    for (int k = 0; k < 64; ++k) {
      b[k] = k % 4 == 0 ? static_cast<std::uint8_t>(4 * m + (k % 16) / 4) : 0x80;
    }
    pick[m] = _mm512_load_si512(b);
  }
  const std::size_t s4 = 4 * src_stride;
  std::size_t r = 0;
  for (; r + 64 <= rows; r += 64) {
    __m512i v[16];
    for (int m = 0; m < 4; ++m) {
      const std::uint8_t* q = src + (r + 16 * m) * src_stride;
      for (int t = 0; t < 4; ++t, q += src_stride) {
        const std::uint8_t* q2 = q + 2 * s4;
        __m512i z = _mm512_castsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q)));
        z = _mm512_inserti32x4(z, _mm_loadu_si128(reinterpret_cast<const __m128i*>(q + s4)), 1);
        z = _mm512_inserti32x4(z, _mm_loadu_si128(reinterpret_cast<const __m128i*>(q2)), 2);
        z = _mm512_inserti32x4(z, _mm_loadu_si128(reinterpret_cast<const __m128i*>(q2 + s4)), 3);
        v[4 * m + t] = z;
      }
    }
    transpose_16x16_u8_lanes(v);
    for (std::size_t i = 0; i < 16; ++i) {
      const __m512 zp = _mm512_set1_ps(zps[i * step]), scale = _mm512_set1_ps(scales[i * step]);
      for (std::size_t m = 0; m < 4; ++m) {
        const __m512 q = _mm512_cvtepi32_ps(_mm512_shuffle_epi8(v[i], pick[m]));
        _mm512_storeu_ps(dst + i * dst_stride + r + 16 * m,
                         _mm512_mul_ps(_mm512_sub_ps(q, zp), scale));
      }
    }
  }
  return r;
}

// 64-row blocks of 32 to 64 values (nch a multiple of 16): each 16-row sub-block is loaded one
// row per register (no lane inserts, which bounded the loop above), transposed in registers and
// kept in a 4 KiB tile; then each channel's 64 rows are zero-extended from the tile and stored
// as one run of 64 floats. Returns the rows done (a multiple of 64).
inline std::size_t dequantize_t64_rows64(const std::uint8_t* __restrict src,
                                         std::size_t src_stride, std::size_t rows,
                                         float* __restrict dst, std::size_t dst_stride,
                                         std::size_t nch, const float* scales, const float* zps,
                                         std::size_t step) {
  alignas(64) std::uint8_t tile[4][16][64];  // [sub-block][i][16 l + row]: channel 16 l + i
  const __mmask64 load_mask = nch >= 64 ? ~__mmask64{0} : (__mmask64{1} << nch) - 1;
  const std::size_t nlanes = nch / 16;
  std::size_t r = 0;
  for (; r + 64 <= rows; r += 64) {
    for (std::size_t sb = 0; sb < 4; ++sb) {
      __m512i v[16];
      const std::uint8_t* p = src + (r + 16 * sb) * src_stride;
      for (int j = 0; j < 16; ++j, p += src_stride) v[j] = _mm512_maskz_loadu_epi8(load_mask, p);
      transpose_16x16_u8_lanes(v);
      for (int i = 0; i < 16; ++i) _mm512_store_si512(tile[sb][i], v[i]);
    }
    for (std::size_t l = 0; l < nlanes; ++l) {
      for (std::size_t i = 0; i < 16; ++i) {
        const std::size_t ch = 16 * l + i;
        const __m512 zp = _mm512_set1_ps(zps[ch * step]), scale = _mm512_set1_ps(scales[ch * step]);
        float* d = dst + ch * dst_stride + r;
        for (std::size_t sb = 0; sb < 4; ++sb) {
          const __m128i b = _mm_load_si128(reinterpret_cast<const __m128i*>(&tile[sb][i][16 * l]));
          const __m512 q = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(b));
          _mm512_storeu_ps(d + 16 * sb, _mm512_mul_ps(_mm512_sub_ps(q, zp), scale));
        }
      }
    }
  }
  return r;
}

template <class Widen>
__attribute__((always_inline)) inline bool dequantize_t64_body(
    const std::uint8_t* __restrict src, std::size_t src_stride, std::size_t rows,
    float* __restrict dst, std::size_t dst_stride, std::size_t nch, const float* scales,
    const float* zps, std::size_t step, const Widen& widen) {
  const __mmask64 load_mask = nch >= 64 ? ~__mmask64{0} : (__mmask64{1} << nch) - 1;
  const std::size_t nlanes = nch / 16;
  std::size_t r = 0;
  for (; r + 16 <= rows; r += 16) {
    __m512i v[16];
    for (int j = 0; j < 16; ++j) v[j] = _mm512_maskz_loadu_epi8(load_mask, src + (r + j) * src_stride);
    transpose_16x16_u8_lanes(v);
    for (std::size_t i = 0; i < 16; ++i) {
      for (std::size_t l = 0; l < nlanes; ++l) {
        const std::size_t ch = 16 * l + i;
        const __m512 q = _mm512_cvtepi32_ps(widen(v[i], l));
        const __m512 y = _mm512_mul_ps(_mm512_sub_ps(q, _mm512_set1_ps(zps[ch * step])),
                                       _mm512_set1_ps(scales[ch * step]));
        _mm512_storeu_ps(dst + ch * dst_stride + r, y);
      }
    }
  }
  for (; r < rows; ++r) {
    for (std::size_t ch = 0; ch < nch; ++ch) {
      dst[ch * dst_stride + r] =
          (static_cast<float>(src[r * src_stride + ch]) - zps[ch * step]) * scales[ch * step];
    }
  }
  return true;
}

// With VBMI one byte permutation picks and zero-extends a lane's 16 bytes.
struct VbmiWiden {
  __m512i idx[4];
  __attribute__((target("avx512vbmi"))) __m512i operator()(__m512i v, std::size_t l) const {
    return _mm512_maskz_permutexvar_epi8(0x1111111111111111ULL, idx[l], v);
  }
};

__attribute__((target("avx512vbmi"), flatten)) bool dequantize_t64_vbmi(
    const std::uint8_t* __restrict src, std::size_t src_stride, std::size_t rows,
    float* __restrict dst, std::size_t dst_stride, std::size_t nch, const float* scales,
    const float* zps, std::size_t step) {
  VbmiWiden widen;
  for (int l = 0; l < 4; ++l) {
    alignas(64) std::uint8_t b[64] = {};
    for (int k = 0; k < 16; ++k) b[4 * k] = static_cast<std::uint8_t>(16 * l + k);
    widen.idx[l] = _mm512_load_si512(b);
  }
  return dequantize_t64_body(src, src_stride, rows, dst, dst_stride, nch, scales, zps, step,
                             widen);
}

bool dequantize_t64(const std::uint8_t* __restrict src, std::size_t src_stride, std::size_t rows,
                    float* __restrict dst, std::size_t dst_stride, std::size_t nch,
                    const float* scales, const float* zps, std::size_t step) {
  // whole 64-row blocks first (the faster kernels), then the rest 16 rows at a time
  const std::size_t done =
      nch == 16 ? dequantize_t16_rows64(src, src_stride, rows, dst, dst_stride, scales, zps, step)
                : dequantize_t64_rows64(src, src_stride, rows, dst, dst_stride, nch, scales, zps,
                                        step);
  src += done * src_stride;
  dst += done;
  rows -= done;
  if (cpu_has_vbmi()) {
    return dequantize_t64_vbmi(src, src_stride, rows, dst, dst_stride, nch, scales, zps, step);
  }
  return dequantize_t64_body(src, src_stride, rows, dst, dst_stride, nch, scales, zps, step,
                             ExtractWiden{});
}

// In-register transpose of 16 x 16 floats (v[i] lane j <-> v[j] lane i).
inline void transpose_16x16_ps(__m512* v) {
  __m512 t[16];
  for (int k = 0; k < 8; ++k) {
    t[2 * k] = _mm512_unpacklo_ps(v[2 * k], v[2 * k + 1]);
    t[2 * k + 1] = _mm512_unpackhi_ps(v[2 * k], v[2 * k + 1]);
  }
  for (int k = 0; k < 4; ++k) {
    v[4 * k] = _mm512_shuffle_ps(t[4 * k], t[4 * k + 2], 0x44);
    v[4 * k + 1] = _mm512_shuffle_ps(t[4 * k], t[4 * k + 2], 0xEE);
    v[4 * k + 2] = _mm512_shuffle_ps(t[4 * k + 1], t[4 * k + 3], 0x44);
    v[4 * k + 3] = _mm512_shuffle_ps(t[4 * k + 1], t[4 * k + 3], 0xEE);
  }
  for (int h = 0; h < 2; ++h) {
    for (int k = 0; k < 4; ++k) {
      t[8 * h + k] = _mm512_shuffle_f32x4(v[8 * h + k], v[8 * h + k + 4], 0x88);
      t[8 * h + k + 4] = _mm512_shuffle_f32x4(v[8 * h + k], v[8 * h + k + 4], 0xDD);
    }
  }
  for (int k = 0; k < 8; ++k) {
    v[k] = _mm512_shuffle_f32x4(t[k], t[k + 8], 0x88);
    v[k + 8] = _mm512_shuffle_f32x4(t[k], t[k + 8], 0xDD);
  }
}

inline void transpose_8x8_u16_lanes(__m512i* v) {  // transpose_8x8_u16 in each 128-bit lane
  for (int round = 0; round < 3; ++round) {
    __m512i t[8];
    for (int k = 0; k < 4; ++k) {
      t[2 * k] = _mm512_unpacklo_epi16(v[k], v[k + 4]);
      t[2 * k + 1] = _mm512_unpackhi_epi16(v[k], v[k + 4]);
    }
    for (int k = 0; k < 8; ++k) v[k] = t[k];
  }
}

// uint16, 64-row blocks, up to 32 values per pass: each 16-row sub-block is loaded one row per
// register (two sets of 8), transposed 8 x 8 in each 128-bit lane, and the two halves of each
// channel's 16 rows are joined by one two-source permute into a tile; then each channel's 64
// rows are zero-extended from the tile and stored as one run of 64 floats. Returns the rows
// done (a multiple of 64).
inline std::size_t dequantize_u16_rows64(const std::uint16_t* __restrict src,
                                         std::size_t src_stride, std::size_t rows,
                                         float* __restrict dst, std::size_t dst_stride,
                                         std::size_t nch, const float* scales, const float* zps,
                                         std::size_t step) {
  alignas(64) std::uint16_t tile[32][64];  // [channel][row]
  // qwords of [a, b]: a's lane l then b's lane l, for lanes 0, 1 (pair01) or 2, 3 (pair23)
  const __m512i pair01 = _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11);
  const __m512i pair23 = _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15);
  std::size_t r = 0;
  for (; r + 64 <= rows; r += 64) {
    for (std::size_t c0 = 0; c0 < nch; c0 += 32) {
      const std::size_t cn = nch - c0 < 32 ? nch - c0 : 32;
      const __mmask32 load_mask = cn >= 32 ? ~__mmask32{0} : (__mmask32{1} << cn) - 1;
      for (std::size_t sb = 0; sb < 4; ++sb) {
        __m512i a[8], b[8];
        const std::uint16_t* p = src + (r + 16 * sb) * src_stride + c0;
        for (int j = 0; j < 8; ++j) a[j] = _mm512_maskz_loadu_epi16(load_mask, p + j * src_stride);
        for (int j = 0; j < 8; ++j) {
          b[j] = _mm512_maskz_loadu_epi16(load_mask, p + (8 + j) * src_stride);
        }
        transpose_8x8_u16_lanes(a);  // a[i] lane l: channel 8 l + i, rows 0 .. 7
        transpose_8x8_u16_lanes(b);  // rows 8 .. 15
        for (int i = 0; i < 8; ++i) {
          const __m512i x = _mm512_permutex2var_epi64(a[i], pair01, b[i]);
          _mm256_store_si256(reinterpret_cast<__m256i*>(&tile[i][16 * sb]),
                             _mm512_castsi512_si256(x));
          _mm256_store_si256(reinterpret_cast<__m256i*>(&tile[8 + i][16 * sb]),
                             _mm512_extracti64x4_epi64(x, 1));
          if (cn > 16) {
            const __m512i y = _mm512_permutex2var_epi64(a[i], pair23, b[i]);
            _mm256_store_si256(reinterpret_cast<__m256i*>(&tile[16 + i][16 * sb]),
                               _mm512_castsi512_si256(y));
            _mm256_store_si256(reinterpret_cast<__m256i*>(&tile[24 + i][16 * sb]),
                               _mm512_extracti64x4_epi64(y, 1));
          }
        }
      }
      for (std::size_t c = 0; c < cn; ++c) {
        const std::size_t ch = c0 + c;
        const __m512 zp = _mm512_set1_ps(zps[ch * step]), scale = _mm512_set1_ps(scales[ch * step]);
        float* d = dst + ch * dst_stride + r;
        for (std::size_t k = 0; k < 64; k += 16) {
          const __m256i q16 = _mm256_load_si256(reinterpret_cast<const __m256i*>(&tile[c][k]));
          const __m512 q = _mm512_cvtepi32_ps(_mm512_cvtepu16_epi32(q16));
          _mm512_storeu_ps(d + k, _mm512_mul_ps(_mm512_sub_ps(q, zp), scale));
        }
      }
    }
  }
  return r;
}

// uint16: 64-row blocks as above; the last rows in blocks of 16 rows x 16 channels, widened and
// dequantized row by row (the channels' scales and zero points as a vector), then transposed as
// floats, so each channel's 16 values are stored as one 64-byte run. Same arithmetic per element
// as the scalar code.
bool dequantize_t64(const std::uint16_t* __restrict src, std::size_t src_stride,
                    std::size_t rows, float* __restrict dst, std::size_t dst_stride,
                    std::size_t nch, const float* scales, const float* zps, std::size_t step) {
  std::size_t r =
      dequantize_u16_rows64(src, src_stride, rows, dst, dst_stride, nch, scales, zps, step);
  for (; r + 16 <= rows; r += 16) {
    for (std::size_t c0 = 0; c0 < nch; c0 += 16) {
      const __m512 zp = step ? _mm512_loadu_ps(zps + c0) : _mm512_set1_ps(zps[0]);
      const __m512 scale = step ? _mm512_loadu_ps(scales + c0) : _mm512_set1_ps(scales[0]);
      __m512 v[16];
      for (int j = 0; j < 16; ++j) {
        const __m256i q16 =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + (r + j) * src_stride + c0));
        const __m512 q = _mm512_cvtepi32_ps(_mm512_cvtepu16_epi32(q16));
        v[j] = _mm512_mul_ps(_mm512_sub_ps(q, zp), scale);
      }
      transpose_16x16_ps(v);
      for (std::size_t i = 0; i < 16; ++i) _mm512_storeu_ps(dst + (c0 + i) * dst_stride + r, v[i]);
    }
  }
  for (; r < rows; ++r) {
    for (std::size_t ch = 0; ch < nch; ++ch) {
      dst[ch * dst_stride + r] =
          (static_cast<float>(src[r * src_stride + ch]) - zps[ch * step]) * scales[ch * step];
    }
  }
  return true;
}
#elif HAILO_KERNELS_X86 && defined(__AVX2__)
inline void transpose_16x16_u8_lanes(__m256i* v) {  // transpose_16x16_u8 in each 128-bit lane
  for (int round = 0; round < 4; ++round) {
    __m256i t[16];
    for (int k = 0; k < 8; ++k) {
      t[2 * k] = _mm256_unpacklo_epi8(v[k], v[k + 8]);
      t[2 * k + 1] = _mm256_unpackhi_epi8(v[k], v[k + 8]);
    }
    for (int k = 0; k < 16; ++k) v[k] = t[k];
  }
}

// Load 32 bytes, or only the first 16 (the rest zero) when just one 16-channel lane is used.
inline __m256i load_channels(const std::uint8_t* p, bool two_lanes) {
  return two_lanes
             ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))
             : _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// 8 consecutive rows of one channel (8 bytes) dequantized into 8 floats.
inline void dequantize8(const std::uint8_t* q, float* dst, __m256 zp, __m256 scale) {
  const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(q));
  const __m256 f = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(b));
  _mm256_storeu_ps(dst, _mm256_mul_ps(_mm256_sub_ps(f, zp), scale));
}

// AVX2, uint8, nch 16 .. 64: as the AVX-512 kernel, with 32 values (two 128-bit lanes) per
// row load: 16-row sub-blocks are transposed 16 x 16 in each lane into a tile, then each
// channel's rows are widened from the tile and stored as one run (64 floats per 64-row block;
// a last block of 16 .. 48 rows the same way). The last rows % 16 go one by one.
bool dequantize_t64(const std::uint8_t* __restrict src, std::size_t src_stride, std::size_t rows,
                    float* __restrict dst, std::size_t dst_stride, std::size_t nch,
                    const float* scales, const float* zps, std::size_t step) {
  alignas(32) std::uint8_t tile[4][16][32];  // [sub-block][i][16 l + row]: channel 16 l + i
  std::size_t r = 0;
  while (rows - r >= 16) {
    const std::size_t nsb = (rows - r) / 16 < 4 ? (rows - r) / 16 : 4;  // 16-row sub-blocks
    for (std::size_t c0 = 0; c0 < nch; c0 += 32) {
      const bool two_lanes = nch - c0 >= 32;
      for (std::size_t sb = 0; sb < nsb; ++sb) {
        __m256i v[16];
        const std::uint8_t* p = src + (r + 16 * sb) * src_stride + c0;
        for (int j = 0; j < 16; ++j, p += src_stride) v[j] = load_channels(p, two_lanes);
        transpose_16x16_u8_lanes(v);
        for (int i = 0; i < 16; ++i) {
          _mm256_store_si256(reinterpret_cast<__m256i*>(tile[sb][i]), v[i]);
        }
      }
      for (std::size_t l = 0; l < (two_lanes ? 2u : 1u); ++l) {
        for (std::size_t i = 0; i < 16; ++i) {
          const std::size_t ch = c0 + 16 * l + i;
          const __m256 zp = _mm256_set1_ps(zps[ch * step]);
          const __m256 scale = _mm256_set1_ps(scales[ch * step]);
          float* d = dst + ch * dst_stride + r;
          for (std::size_t sb = 0; sb < nsb; ++sb) {
            dequantize8(&tile[sb][i][16 * l], d + 16 * sb, zp, scale);
            dequantize8(&tile[sb][i][16 * l + 8], d + 16 * sb + 8, zp, scale);
          }
        }
      }
    }
    r += 16 * nsb;
  }
  for (; r < rows; ++r) {
    for (std::size_t ch = 0; ch < nch; ++ch) {
      dst[ch * dst_stride + r] =
          (static_cast<float>(src[r * src_stride + ch]) - zps[ch * step]) * scales[ch * step];
    }
  }
  return true;
}

inline void transpose_8x8_u16_lanes(__m256i* v) {  // transpose_8x8_u16 in each 128-bit lane
  for (int round = 0; round < 3; ++round) {
    __m256i t[8];
    for (int k = 0; k < 4; ++k) {
      t[2 * k] = _mm256_unpacklo_epi16(v[k], v[k + 4]);
      t[2 * k + 1] = _mm256_unpackhi_epi16(v[k], v[k + 4]);
    }
    for (int k = 0; k < 8; ++k) v[k] = t[k];
  }
}

// 8 consecutive rows of one channel (8 uint16) dequantized into 8 floats.
inline void dequantize8(const std::uint16_t* q, float* dst, __m256 zp, __m256 scale) {
  const __m128i w = _mm_load_si128(reinterpret_cast<const __m128i*>(q));
  const __m256 f = _mm256_cvtepi32_ps(_mm256_cvtepu16_epi32(w));
  _mm256_storeu_ps(dst, _mm256_mul_ps(_mm256_sub_ps(f, zp), scale));
}

// AVX2, uint16, nch 16 .. 64 in passes of 16: each 16-row sub-block is loaded one row per
// register (two sets of 8 rows), transposed 8 x 8 in each 128-bit lane, and each channel's two
// 8-row halves joined by one lane permute into a tile; then each channel's rows are widened
// from the tile and stored as one run. The last rows % 16 go one by one.
bool dequantize_t64(const std::uint16_t* __restrict src, std::size_t src_stride,
                    std::size_t rows, float* __restrict dst, std::size_t dst_stride,
                    std::size_t nch, const float* scales, const float* zps, std::size_t step) {
  alignas(32) std::uint16_t tile[16][64];  // [channel][row]
  std::size_t r = 0;
  while (rows - r >= 16) {
    const std::size_t nsb = (rows - r) / 16 < 4 ? (rows - r) / 16 : 4;  // 16-row sub-blocks
    for (std::size_t c0 = 0; c0 < nch; c0 += 16) {
      for (std::size_t sb = 0; sb < nsb; ++sb) {
        __m256i a[8], b[8];
        const std::uint16_t* p = src + (r + 16 * sb) * src_stride + c0;
        for (int j = 0; j < 8; ++j) {
          a[j] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + j * src_stride));
          b[j] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + (8 + j) * src_stride));
        }
        transpose_8x8_u16_lanes(a);  // a[i] lane l: channel 8 l + i, rows 0 .. 7
        transpose_8x8_u16_lanes(b);  // rows 8 .. 15
        for (int i = 0; i < 8; ++i) {
          _mm256_store_si256(reinterpret_cast<__m256i*>(&tile[i][16 * sb]),
                             _mm256_permute2x128_si256(a[i], b[i], 0x20));
          _mm256_store_si256(reinterpret_cast<__m256i*>(&tile[8 + i][16 * sb]),
                             _mm256_permute2x128_si256(a[i], b[i], 0x31));
        }
      }
      for (std::size_t c = 0; c < 16; ++c) {
        const std::size_t ch = c0 + c;
        const __m256 zp = _mm256_set1_ps(zps[ch * step]);
        const __m256 scale = _mm256_set1_ps(scales[ch * step]);
        float* d = dst + ch * dst_stride + r;
        for (std::size_t k = 0; k < 16 * nsb; k += 8) dequantize8(&tile[c][k], d + k, zp, scale);
      }
    }
    r += 16 * nsb;
  }
  for (; r < rows; ++r) {
    for (std::size_t ch = 0; ch < nch; ++ch) {
      dst[ch * dst_stride + r] =
          (static_cast<float>(src[r * src_stride + ch]) - zps[ch * step]) * scales[ch * step];
    }
  }
  return true;
}
#else
template <class T>
bool dequantize_t64(const T*, std::size_t, std::size_t, float*, std::size_t, std::size_t,
                    const float*, const float*, std::size_t) {
  return false;
}
#endif

template <class T>
constexpr TypedKernels<T> typed() {
  bool (*q3)(const float*, std::size_t, T*, std::size_t, const float*, const float*, float,
             float) = &quantize3;
  bool (*dt64)(const T*, std::size_t, std::size_t, float*, std::size_t, std::size_t,
               const float*, const float*, std::size_t) = &dequantize_t64;
  bool (*d3)(const float*, std::size_t, T*, std::size_t, float, float, float, float) =
      &deinterleave3;
  bool (*rows)(const T*, std::size_t, std::size_t, std::size_t, float*, float, float) =
      &dequantize_rows;
  return TypedKernels<T>{&quantize_run<T>, &quantize_run_pf<T>, q3, d3, &dequantize_run<T>, rows,
                         &dequantize_run_pf<T>, dt64, &scatter<T>, &gather<T>};
}

#if HAILO_KERNELS_X86 && defined(__AVX512F__) && defined(__AVX512BW__)
bool uses_vbmi() { return cpu_has_vbmi(); }
#else
bool uses_vbmi() { return false; }
#endif

const Kernels kTable{HAILO_KERNELS_NAME, typed<std::uint8_t>(), typed<std::uint16_t>(),
                     &uses_vbmi};

}  // namespace

const Kernels* HAILO_KERNELS_FN() { return &kTable; }

}  // namespace hailo_ort
