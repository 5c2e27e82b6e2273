// Fused host transforms between the model side (float32) and the device side (uint8/uint16):
// quantize/dequantize by Hailo's rule and change the layout in one pass over memory.
//
// Every layout change the runtime needs is a batched block transpose
//   in[b][r][s][k]  ->  out[b][s][r][k]      (shapes B x R x S x K and B x S x R x K)
// e.g. NCHW -> NHWC is B=N, R=C, S=H*W, K=1; NCHW -> NHCW is B=N, R=C, S=H, K=W. The identity
// layout (no transpose) has its own flat path.
//
// Rounding: quantize computes round_half_even(clip(x, lo, hi) / scale + zp) saturated to the
// integer range, in float32 with the results of the numpy reference bit for bit: the quotient is
// the true division's (where exact, computed as a reciprocal product corrected by one FMA, see
// kernels_impl.hpp). NaN inputs quantize to 0.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace hailo_ort {

// Which index of in[b][r][s][k] (or of the flat element for the identity path) selects the
// per-feature scale and zero point. kNone: one scale and zero point for the whole tensor.
enum class FeatureAxis { kNone, kR, kS, kK };

struct QuantParams {
  const float* scales = nullptr;  // 1 value when per-tensor, else one per feature
  const float* zps = nullptr;     // same length as scales
  std::size_t count = 1;
  float limvals_min = 0.0f;  // only used by quantize
  float limvals_max = 0.0f;
};

struct BlockTranspose {
  std::size_t B = 1, R = 1, S = 1, K = 1;
  bool identity = false;  // in and out share one layout; K is then the feature period
  std::size_t elements() const { return B * R * S * K; }
};

// Kernel sets (instruction-set variants) usable on this CPU, best last (on x86 the first,
// "portable", is the intrinsic-free code other CPUs run); the active one; and a
// way to pick one (name or "auto"; throws std::invalid_argument when unavailable).
std::vector<std::string> kernel_sets();
std::string kernel_set();
bool kernel_set_uses_vbmi();
void use_kernel_set(const std::string& name);

enum class Direction { kQuantize, kDequantize };

// Number of threads a transform of `bytes` bytes split in `units` work units would use when
// asked for `requested` threads (<= 0: as many as the hardware has). Small tensors use one.
int choose_threads(int requested, std::size_t units, std::size_t bytes, Direction direction);

// The bytes (read + written) per thread below which transforms are not split, quantizing and
// dequantizing (0: the built-in default). Process-wide.
void set_min_bytes_per_thread(std::size_t quantize, std::size_t dequantize);
std::pair<std::size_t, std::size_t> min_bytes_per_thread();

template <class T>
void quantize_transform(const float* in, T* out, const BlockTranspose& geometry,
                        FeatureAxis feature, const QuantParams& params, int threads);

template <class T>
void dequantize_transform(const T* in, float* out, const BlockTranspose& geometry,
                          FeatureAxis feature, const QuantParams& params, int threads);

}  // namespace hailo_ort
