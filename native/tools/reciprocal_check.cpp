// Exhaustive check of the quantize kernels' corrected reciprocal (kernels_impl.hpp,
// CorrectedReciprocal / reciprocal_exact) against the true division, over every float32 x.
//
//   g++ -O2 -std=c++17 -ffp-contract=off -mavx512f -mavx512bw -mavx512vl \
//       native/tools/reciprocal_check.cpp -o /tmp/reciprocal_check
//   /tmp/reciprocal_check [N_RANDOM_SCALES [SEED [random-only]]]
//
// For each scale s in [2^-30, 2^30] (unless `random-only`: 1/k and k/255 for k <= 100, the 32
// significands just below 2, and 32 scales whose reciprocal rounds with nearly half an ulp of
// error; then N_RANDOM_SCALES random ones, log-uniform) it checks:
//   * |x| >= 2^-70 and |x / s| <= 2^31: the corrected quotient equals RN(x / s) bit for bit;
//   * |x| <  2^-70: both quotients are below 2^-40 in magnitude (so rint(q + zp) cannot differ
//     for zp == 0 or |zp| >= 2^-10, the other half of reciprocal_exact's argument).
// Prints each failing scale and exits 1 if there is one. ~0.9 s per scale on one core.
#define HAILO_KERNELS_FN kernels_reciprocal_check
#define HAILO_KERNELS_NAME "reciprocal_check"
#include "../src/kernels_impl.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

namespace hailo_ort {
// the kernel header refers to the other kernel sets' accessors; this tool uses none of them
const Kernels* kernels_portable() { return nullptr; }
const Kernels* kernels_baseline() { return nullptr; }
const Kernels* kernels_avx2() { return nullptr; }
const Kernels* kernels_avx512() { return nullptr; }
}  // namespace hailo_ort

using namespace hailo_ort;

int main(int argc, char** argv) {
  const int n_random = argc > 1 ? std::atoi(argv[1]) : 20;
  std::mt19937 rng(argc > 2 ? static_cast<unsigned>(std::atoi(argv[2])) : 1u);
  std::vector<float> scales;
  const bool structured = !(argc > 3 && std::string(argv[3]) == "random-only");
  for (int k = 1; structured && k <= 100; ++k) {
    scales.push_back(1.0f / static_cast<float>(k));
    scales.push_back(static_cast<float>(k) / 255.0f);
  }
  // The hard cases for a reciprocal: significands just below 2 (x * RN(1/s) can then be more than
  // an ulp from x / s, outside Markstein's theorem), and scales whose reciprocal rounds with
  // nearly half an ulp of error (the largest error RN(1/s) can have), found by search.
  for (int k = 1; structured && k <= 32; ++k) scales.push_back(2.0f - static_cast<float>(k) * 0x1p-23f);
  if (structured) {
    std::vector<std::pair<double, float>> worst;
    std::uniform_int_distribution<std::uint32_t> significand(0, (1u << 23) - 1);
    for (int k = 0; k < 1 << 20; ++k) {
      const std::uint32_t bits = 0x3F800000u | significand(rng);  // in [1, 2)
      float s;
      std::memcpy(&s, &bits, sizeof s);
      const double exact = 1.0 / static_cast<double>(s), rounded = 1.0f / s;
      const double ulp = std::ldexp(1.0, std::ilogb(rounded) - 23);
      worst.emplace_back(-std::fabs(rounded - exact) / ulp, s);
    }
    std::partial_sort(worst.begin(), worst.begin() + 32, worst.end());
    for (int k = 0; k < 32; ++k) scales.push_back(worst[static_cast<std::size_t>(k)].second);
  }
  std::uniform_real_distribution<float> exponent(-30.0f, 30.0f);
  for (int k = 0; k < n_random; ++k) scales.push_back(std::exp2(exponent(rng)));

  const __m512 tiny = _mm512_set1_ps(0x1p-70f), big = _mm512_set1_ps(0x1p31f);
  const __m512 small_q = _mm512_set1_ps(0x1p-40f);
  const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  int failed = 0, checked = 0;
  for (const float s : scales) {
    if (!reciprocal_exact(s, 0.0f)) continue;
    ++checked;
    const CorrectedReciprocal div{_mm512_set1_ps(s), _mm512_set1_ps(1.0f / s)};
    unsigned long long wrong = 0, not_small = 0;
    for (unsigned long long base = 0; base < (1ull << 32); base += 16) {
      const __m512 x = _mm512_castsi512_ps(
          _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(base)), lanes));
      const __m512 d = _mm512_div_ps(x, div.s), q = div(x);
      const __m512 ax = _mm512_abs_ps(x);
      const __mmask16 normal = _mm512_cmp_ps_mask(ax, tiny, _CMP_GE_OQ) &
                               _mm512_cmp_ps_mask(_mm512_abs_ps(d), big, _CMP_LE_OQ);
      const __mmask16 differ =
          _mm512_cmpneq_epi32_mask(_mm512_castps_si512(d), _mm512_castps_si512(q));
      wrong += static_cast<unsigned>(__builtin_popcount(normal & differ));
      const __mmask16 small_x = _mm512_cmp_ps_mask(ax, tiny, _CMP_LT_OQ);
      const __mmask16 big_q = _mm512_cmp_ps_mask(_mm512_abs_ps(d), small_q, _CMP_NLT_UQ) |
                              _mm512_cmp_ps_mask(_mm512_abs_ps(q), small_q, _CMP_NLT_UQ);
      not_small += static_cast<unsigned>(__builtin_popcount(small_x & big_q));
    }
    if (wrong != 0 || not_small != 0) {
      std::printf("FAIL scale %.9g: %llu quotients differ, %llu tiny inputs not tiny\n", s, wrong,
                  not_small);
      ++failed;
    }
  }
  std::printf("%d scales checked, %d failed\n", checked, failed);
  return failed == 0 ? 0 : 1;
}
