// Fused quantize/dequantize + layout drivers (see transforms.hpp): tiling and threading here,
// the inner loops in kernels_impl.hpp, compiled per instruction set and picked at run time.
//
// The arithmetic always runs over contiguous runs of the float side so it vectorises; a layout
// change with a short inner run (K < kRowModeMinK) goes through a small tile buffer that stays
// in L1 (quantize a tile of input rows into it, then scatter the narrow integers; or gather
// integers into it, then dequantize whole output rows). Kernel sets with a dedicated layout
// kernel (3 channels interleaved or split; transposes of >= 16 uint8 values per row) skip the
// tile.
#include "hailo_ort/transforms.hpp"

#include "kernels.hpp"
#include "thread_pool.hpp"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace hailo_ort {
namespace {

// Bytes (read + written) per thread below which splitting a transform does not pay, so two
// threads from 4 MB quantizing and 8 MB dequantizing. Measured on the development machine (2
// cores, AMD EPYC; benchmarks/README.md): quantizing, bound by the arithmetic, gained at 6 MB
// (not at 3.5 MB); dequantizing, bound by writing the floats, at 10 MB (not at 5 MB; at 2.5 MB
// two threads were twice as slow as one).
constexpr std::size_t kMinBytesPerThreadQuantize = 2u << 20;
constexpr std::size_t kMinBytesPerThreadDequantize = 4u << 20;
std::atomic<std::size_t> g_min_bytes_quantize{kMinBytesPerThreadQuantize};
std::atomic<std::size_t> g_min_bytes_dequantize{kMinBytesPerThreadDequantize};
constexpr int kMaxThreads = 64;
constexpr std::size_t kRowModeMinK = 16;  // inner runs at least this long need no tile buffer
constexpr std::size_t kTileRun = 256;     // elements per contiguous run inside a tile
constexpr std::size_t kTileRows = 16;     // runs per tile
constexpr std::size_t kFlatChunk = 1 << 15;

const Kernels* detect_kernels() {
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
  __builtin_cpu_init();
  if (kernels_avx512() != nullptr && __builtin_cpu_supports("avx512f") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl")) {
    return kernels_avx512();
  }
  if (kernels_avx2() != nullptr && __builtin_cpu_supports("avx2") &&
      __builtin_cpu_supports("fma")) {
    return kernels_avx2();
  }
#endif
  return kernels_baseline();
}

// The kernel sets compiled in and supported by this CPU, from the most portable to the best.
std::vector<const Kernels*> usable_kernels() {
  std::vector<const Kernels*> usable;
  const Kernels* best = detect_kernels();
  for (const Kernels* k : {kernels_portable(), kernels_baseline(), kernels_avx2(), kernels_avx512()}) {
    if (k != nullptr) usable.push_back(k);
    if (k == best) break;  // later ones are not supported by this CPU
  }
  return usable;
}

std::atomic<const Kernels*> g_kernels{nullptr};

const Kernels& active_kernels() {
  const Kernels* k = g_kernels.load(std::memory_order_acquire);
  if (k == nullptr) {
    k = detect_kernels();
    g_kernels.store(k, std::memory_order_release);
  }
  return *k;
}

template <class T>
const TypedKernels<T>& typed_kernels();
template <>
const TypedKernels<std::uint8_t>& typed_kernels<std::uint8_t>() {
  return active_kernels().u8;
}
template <>
const TypedKernels<std::uint16_t>& typed_kernels<std::uint16_t>() {
  return active_kernels().u16;
}

// Run fn(begin, end) over [0, units) split in `threads` contiguous ranges, on the calling
// thread and the pool's workers (thread_pool.hpp).
template <class F>
void parallel_for(std::size_t units, int threads, const F& fn) {
  if (units == 0) return;
  if (threads <= 1 || units == 1) {
    fn(std::size_t{0}, units);
    return;
  }
  struct Ranges {
    const F* fn;
    std::size_t per, extra;
  } ranges{&fn, 0, 0};
  const std::size_t n = std::min<std::size_t>(static_cast<std::size_t>(threads), units);
  ranges.per = units / n;
  ranges.extra = units % n;
  run_parallel(n, n - 1, [](void* ctx, std::size_t t) {
    const Ranges& r = *static_cast<const Ranges*>(ctx);
    const std::size_t begin = t * r.per + std::min(t, r.extra);
    (*r.fn)(begin, begin + r.per + (t < r.extra ? 1 : 0));
  }, &ranges);
}

std::size_t ceil_div(std::size_t a, std::size_t b) { return (a + b - 1) / b; }

// Per-feature arrays repeated `rows` times (features with period `period`), so one call can
// quantize or dequantize a whole block whose features repeat.
struct Expanded {
  std::vector<float> scales, zps;
  std::size_t rows_per_group = 1;
};

Expanded repeat_features(const QuantParams& p, std::size_t period, std::size_t rows) {
  Expanded e;
  e.rows_per_group = rows;
  const std::size_t len = rows * period;
  e.scales.resize(len);
  e.zps.resize(len);
  for (std::size_t i = 0; i < len; ++i) {
    e.scales[i] = p.scales[i % period];
    e.zps[i] = p.zps[i % period];
  }
  return e;
}

// Repeated to a whole number of periods of at least ~1024 elements, so the identity path with
// few features (e.g. C=3) still runs long vectorisable loops.
Expanded expand(const QuantParams& p, std::size_t period) {
  return repeat_features(p, period, std::max<std::size_t>(1, ceil_div(1024, period)));
}

void check(const BlockTranspose& g, FeatureAxis feature, const QuantParams& p, bool quantize) {
  if (p.scales == nullptr || p.zps == nullptr || p.count == 0) {
    throw std::invalid_argument("transform: missing scales or zero points");
  }
  std::size_t axis_len = 1;
  switch (feature) {
    case FeatureAxis::kNone: axis_len = 1; break;
    case FeatureAxis::kR: axis_len = g.R; break;
    case FeatureAxis::kS: axis_len = g.S; break;
    case FeatureAxis::kK: axis_len = g.K; break;
  }
  if (p.count != axis_len) {
    throw std::invalid_argument("transform: number of per-feature scales (" +
                                std::to_string(p.count) + ") does not match the feature axis (" +
                                std::to_string(axis_len) + ")");
  }
  if (g.identity && (feature == FeatureAxis::kR || feature == FeatureAxis::kS)) {
    throw std::invalid_argument("transform: identity layout has its features on the last axis");
  }
  // A tile keeps per-feature values along its contiguous run only when that run is one axis.
  const bool tiled = !g.identity && g.K < kRowModeMinK;
  const FeatureAxis along_run = quantize ? FeatureAxis::kS : FeatureAxis::kR;
  if (tiled && (feature == FeatureAxis::kK || (feature == along_run && g.K != 1))) {
    throw std::invalid_argument("transform: unsupported feature axis for this layout");
  }
}

}  // namespace

std::vector<std::string> kernel_sets() {
  std::vector<std::string> names;
  for (const Kernels* k : usable_kernels()) names.emplace_back(k->name);
  return names;
}

std::string kernel_set() { return active_kernels().name; }

bool kernel_set_uses_vbmi() { return active_kernels().uses_vbmi(); }

void use_kernel_set(const std::string& name) {
  const Kernels* chosen = nullptr;
  if (name.empty() || name == "auto") {
    chosen = detect_kernels();
  } else {
    for (const Kernels* k : usable_kernels()) {
      if (name == k->name) chosen = k;
    }
  }
  if (chosen == nullptr) {
    throw std::invalid_argument("kernel set '" + name + "' is not available on this CPU");
  }
  g_kernels.store(chosen, std::memory_order_release);
}

void set_min_bytes_per_thread(std::size_t quantize, std::size_t dequantize) {
  g_min_bytes_quantize.store(quantize == 0 ? kMinBytesPerThreadQuantize : quantize);
  g_min_bytes_dequantize.store(dequantize == 0 ? kMinBytesPerThreadDequantize : dequantize);
}

std::pair<std::size_t, std::size_t> min_bytes_per_thread() {
  return {g_min_bytes_quantize.load(), g_min_bytes_dequantize.load()};
}

int choose_threads(int requested, std::size_t units, std::size_t bytes, Direction direction) {
  const std::size_t min_bytes = std::max<std::size_t>(
      1, (direction == Direction::kQuantize ? g_min_bytes_quantize : g_min_bytes_dequantize)
             .load(std::memory_order_relaxed));
  // hardware_concurrency() reads /sys on every call: ask once.
  static const int hw = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  std::size_t want = static_cast<std::size_t>(std::min(requested <= 0 ? hw : requested, kMaxThreads));
  const std::size_t by_size = std::max<std::size_t>(1, bytes / min_bytes);
  return static_cast<int>(std::max<std::size_t>(1, std::min({want, units, by_size})));
}

template <class T>
void quantize_transform(const float* in, T* out, const BlockTranspose& g, FeatureAxis feature,
                        const QuantParams& p, int threads) {
  check(g, feature, p, true);
  const TypedKernels<T>& k = typed_kernels<T>();
  const std::size_t total = g.elements();
  if (total == 0) return;
  const float lo = p.limvals_min, hi = p.limvals_max;
  const std::size_t bytes = total * (sizeof(float) + sizeof(T));

  if (g.identity) {
    if (feature == FeatureAxis::kNone) {
      const std::size_t units = ceil_div(total, kFlatChunk);
      parallel_for(units, choose_threads(threads, units, bytes, Direction::kQuantize), [&](std::size_t u0, std::size_t u1) {
        const std::size_t a = u0 * kFlatChunk, b = std::min(total, u1 * kFlatChunk);
        k.quantize(in + a, out + a, b - a, p.scales[0], p.zps[0], lo, hi);
      });
      return;
    }
    const std::size_t period = g.K, rows = total / period;
    const Expanded e = expand(p, period);
    const std::size_t units = ceil_div(rows, e.rows_per_group);
    parallel_for(units, choose_threads(threads, units, bytes, Direction::kQuantize), [&](std::size_t u0, std::size_t u1) {
      for (std::size_t u = u0; u < u1; ++u) {
        const std::size_t r0 = u * e.rows_per_group;
        const std::size_t r1 = std::min(rows, r0 + e.rows_per_group);
        k.quantize_pf(in + r0 * period, out + r0 * period, (r1 - r0) * period, e.scales.data(),
                        e.zps.data(), lo, hi);
      }
    });
    return;
  }

  const std::size_t B = g.B, R = g.R, S = g.S, K = g.K;
  auto scale_zp = [&](std::size_t r, std::size_t s, float& scale, float& zp) {
    const std::size_t f = feature == FeatureAxis::kR ? r : feature == FeatureAxis::kS ? s : 0;
    scale = p.scales[f];
    zp = p.zps[f];
  };

  if (K >= kRowModeMinK) {  // each (b, r, s) is a contiguous run of K on both sides
    const std::size_t units = B * R;
    parallel_for(units, choose_threads(threads, units, bytes, Direction::kQuantize), [&](std::size_t u0, std::size_t u1) {
      for (std::size_t u = u0; u < u1; ++u) {
        const std::size_t b = u / R, r = u % R;
        for (std::size_t s = 0; s < S; ++s) {
          const float* src = in + ((b * R + r) * S + s) * K;
          T* dst = out + ((b * S + s) * R + r) * K;
          if (feature == FeatureAxis::kK) {
            k.quantize_pf(src, dst, K, p.scales, p.zps, lo, hi);
          } else {
            float scale, zp;
            scale_zp(r, s, scale, zp);
            k.quantize(src, dst, K, scale, zp, lo, hi);
          }
        }
      }
    });
    return;
  }

  // Three planes into interleaved triples (NCHW -> NHWC with 3 channels): no tile.
  if (R == 3 && K == 1 && feature != FeatureAxis::kS) {
    float s3[3], z3[3];
    for (std::size_t c = 0; c < 3; ++c) {
      s3[c] = p.scales[feature == FeatureAxis::kR ? c : 0];
      z3[c] = p.zps[feature == FeatureAxis::kR ? c : 0];
    }
    if (k.quantize3(in, S, out, 0, s3, z3, lo, hi)) {
      const std::size_t chunks = ceil_div(S, kFlatChunk), units = B * chunks;
      parallel_for(units, choose_threads(threads, units, bytes, Direction::kQuantize), [&](std::size_t u0, std::size_t u1) {
        for (std::size_t u = u0; u < u1; ++u) {
          const std::size_t b = u / chunks, s0 = (u % chunks) * kFlatChunk;
          const std::size_t n = std::min(S, s0 + kFlatChunk) - s0;
          k.quantize3(in + b * 3 * S + s0, S, out + b * 3 * S + 3 * s0, n, s3, z3, lo, hi);
        }
      });
      return;
    }
  }

  // Interleaved triples into three planes (NHWC -> NHCW with 3 channels, one scale): no tile.
  if (S == 3 && K == 1 && feature == FeatureAxis::kNone &&
      k.quantize_d3(in, R, out, 0, p.scales[0], p.zps[0], lo, hi)) {
    const std::size_t chunks = ceil_div(R, kFlatChunk), units = B * chunks;
    parallel_for(units, choose_threads(threads, units, bytes, Direction::kQuantize), [&](std::size_t u0, std::size_t u1) {
      for (std::size_t u = u0; u < u1; ++u) {
        const std::size_t b = u / chunks, r0 = (u % chunks) * kFlatChunk;
        const std::size_t n = std::min(R, r0 + kFlatChunk) - r0;
        k.quantize_d3(in + (b * R + r0) * 3, R, out + b * 3 * R + r0, n, p.scales[0], p.zps[0],
                      lo, hi);
      }
    });
    return;
  }

  // Tiled: quantize input runs of up to kTileRun elements into a tile, then scatter. When the
  // runs are short (few s), the tile takes more rows so it stays ~kTileRows * kTileRun.
  const std::size_t TS = std::max<std::size_t>(1, kTileRun / K);
  const std::size_t ts = std::min(S, TS);
  const std::size_t TR = std::max(kTileRows, kTileRows * kTileRun / (ts * K));
  const std::size_t nR = ceil_div(R, TR), nS = ceil_div(S, TS);
  const std::size_t units = B * nR * nS;
  // A tile spanning every s reads one contiguous block: quantize it in one call (features on s
  // repeat with period S, so they are laid out for a whole tile).
  const Expanded block =
      nS == 1 && feature == FeatureAxis::kS ? repeat_features(p, S, TR) : Expanded{};
  parallel_for(units, choose_threads(threads, units, bytes, Direction::kQuantize), [&](std::size_t u0, std::size_t u1) {
    T tile[kTileRows * kTileRun];
    for (std::size_t u = u0; u < u1; ++u) {
      const std::size_t b = u / (nR * nS), rt = (u / nS) % nR, st = u % nS;
      const std::size_t r0 = rt * TR, r1 = std::min(R, r0 + TR);
      const std::size_t s0 = st * TS, s1 = std::min(S, s0 + TS);
      const std::size_t run = (s1 - s0) * K;
      if (nS == 1 && feature != FeatureAxis::kR) {
        const float* src = in + (b * R + r0) * S * K;
        const std::size_t n = (r1 - r0) * run;
        if (feature == FeatureAxis::kS) {  // K == 1 (checked)
          k.quantize_pf(src, tile, n, block.scales.data(), block.zps.data(), lo, hi);
        } else {
          k.quantize(src, tile, n, p.scales[0], p.zps[0], lo, hi);
        }
      } else {
        for (std::size_t r = r0; r < r1; ++r) {
          const float* src = in + ((b * R + r) * S + s0) * K;
          T* dst = tile + (r - r0) * run;
          if (feature == FeatureAxis::kS) {  // K == 1 (checked)
            k.quantize_pf(src, dst, run, p.scales + s0, p.zps + s0, lo, hi);
          } else {
            float scale, zp;
            scale_zp(r, 0, scale, zp);
            k.quantize(src, dst, run, scale, zp, lo, hi);
          }
        }
      }
      const std::size_t nr = r1 - r0;
      if (K == 1) {
        k.scatter(tile, run, nr, out + (b * S + s0) * R + r0, R, s1 - s0);
      } else {
        for (std::size_t s = s0; s < s1; ++s) {
          T* dst = out + ((b * S + s) * R + r0) * K;
          const T* col = tile + (s - s0) * K;
          for (std::size_t i = 0; i < nr; ++i) {
            for (std::size_t j = 0; j < K; ++j) dst[i * K + j] = col[i * run + j];
          }
        }
      }
    }
  });
}

template <class T>
void dequantize_transform(const T* in, float* out, const BlockTranspose& g, FeatureAxis feature,
                          const QuantParams& p, int threads) {
  check(g, feature, p, false);
  const TypedKernels<T>& k = typed_kernels<T>();
  const std::size_t total = g.elements();
  if (total == 0) return;
  const std::size_t bytes = total * (sizeof(float) + sizeof(T));

  if (g.identity) {
    if (feature == FeatureAxis::kNone) {
      const std::size_t units = ceil_div(total, kFlatChunk);
      parallel_for(units, choose_threads(threads, units, bytes, Direction::kDequantize), [&](std::size_t u0, std::size_t u1) {
        const std::size_t a = u0 * kFlatChunk, b = std::min(total, u1 * kFlatChunk);
        k.dequantize(in + a, out + a, b - a, p.scales[0], p.zps[0]);
      });
      return;
    }
    const std::size_t period = g.K, rows = total / period;
    const Expanded e = expand(p, period);
    const std::size_t units = ceil_div(rows, e.rows_per_group);
    parallel_for(units, choose_threads(threads, units, bytes, Direction::kDequantize), [&](std::size_t u0, std::size_t u1) {
      for (std::size_t u = u0; u < u1; ++u) {
        const std::size_t r0 = u * e.rows_per_group;
        const std::size_t r1 = std::min(rows, r0 + e.rows_per_group);
        k.dequantize_pf(in + r0 * period, out + r0 * period, (r1 - r0) * period,
                          e.scales.data(), e.zps.data());
      }
    });
    return;
  }

  const std::size_t B = g.B, R = g.R, S = g.S, K = g.K;
  auto scale_zp = [&](std::size_t r, std::size_t s, float& scale, float& zp) {
    const std::size_t f = feature == FeatureAxis::kR ? r : feature == FeatureAxis::kS ? s : 0;
    scale = p.scales[f];
    zp = p.zps[f];
  };

  if (K >= kRowModeMinK) {
    const std::size_t units = B * S;
    const bool same_scale = feature == FeatureAxis::kS || feature == FeatureAxis::kNone;
    parallel_for(units, choose_threads(threads, units, bytes, Direction::kDequantize), [&](std::size_t u0, std::size_t u1) {
      T tile[kTileRows * kTileRun];
      const std::size_t rows_per_tile = kTileRows * kTileRun / K;
      for (std::size_t u = u0; u < u1; ++u) {
        const std::size_t b = u / S, s = u % S;
        if (same_scale && rows_per_tile >= 2) {
          // Short runs with one scale: collect them (their output is contiguous), then
          // dequantize the lot in one call.
          const float scale = p.scales[feature == FeatureAxis::kS ? s : 0];
          const float zp = p.zps[feature == FeatureAxis::kS ? s : 0];
          if (k.dequantize_rows(in + (b * R * S + s) * K, S * K, R, K,
                                out + (b * S + s) * R * K, scale, zp)) {
            continue;
          }
          for (std::size_t r0 = 0; r0 < R; r0 += rows_per_tile) {
            const std::size_t r1 = std::min(R, r0 + rows_per_tile);
            for (std::size_t r = r0; r < r1; ++r) {
              std::memcpy(tile + (r - r0) * K, in + ((b * R + r) * S + s) * K, K * sizeof(T));
            }
            k.dequantize(tile, out + ((b * S + s) * R + r0) * K, (r1 - r0) * K, scale, zp);
          }
          continue;
        }
        for (std::size_t r = 0; r < R; ++r) {
          const T* src = in + ((b * R + r) * S + s) * K;
          float* dst = out + ((b * S + s) * R + r) * K;
          if (feature == FeatureAxis::kK) {
            k.dequantize_pf(src, dst, K, p.scales, p.zps);
          } else {
            float scale, zp;
            scale_zp(r, s, scale, zp);
            k.dequantize(src, dst, K, scale, zp);
          }
        }
      }
    });
    return;
  }

  // Transposes of at least 16 values per row (e.g. NHWC -> NCHW with >= 16 channels), in groups
  // of up to 64 channels (the kernels write each channel's rows in runs of 64 floats). When S is
  // not a multiple of 16 a last group of 16 ends at S and overlaps the one before: those values
  // are the same, written twice by one thread.
  if (K == 1 && S >= 16 && feature != FeatureAxis::kR &&
      k.dequantize_t64(nullptr, S, 0, out, R, 64, p.scales, p.zps, 0)) {
    constexpr std::size_t kRowsPerUnit = 256;
    const std::size_t step = feature == FeatureAxis::kS ? 1 : 0;
    const std::size_t chunks = ceil_div(R, kRowsPerUnit), units = B * chunks;
    parallel_for(units, choose_threads(threads, units, bytes, Direction::kDequantize), [&](std::size_t u0, std::size_t u1) {
      for (std::size_t u = u0; u < u1; ++u) {
        const std::size_t b = u / chunks, r0 = (u % chunks) * kRowsPerUnit;
        const std::size_t nr = std::min(R, r0 + kRowsPerUnit) - r0;
        const T* src = in + (b * R + r0) * S;
        float* dst = out + b * S * R + r0;
        std::size_t s0 = 0;
        for (; S - s0 >= 16; s0 += std::min<std::size_t>(64, (S - s0) / 16 * 16)) {
          const std::size_t nch = std::min<std::size_t>(64, (S - s0) / 16 * 16);
          k.dequantize_t64(src + s0, S, nr, dst + s0 * R, R, nch, p.scales + s0 * step,
                           p.zps + s0 * step, step);
        }
        if (s0 < S) {  // the last S % 16 values: a group of 16 ending at S
          const std::size_t g = S - 16;
          k.dequantize_t64(src + g, S, nr, dst + g * R, R, 16, p.scales + g * step,
                           p.zps + g * step, step);
        }
      }
    });
    return;
  }

  // Tiled: gather a tile of integers in output order, then dequantize whole output runs.
  const std::size_t TS = kTileRows, ts = std::min(S, TS);
  const std::size_t TR = std::max(std::max<std::size_t>(1, kTileRun / K),
                                  kTileRows * kTileRun / (ts * K));
  const std::size_t nR = ceil_div(R, TR), nS = ceil_div(S, TS);
  const std::size_t units = B * nR * nS;
  // A tile spanning every r writes one contiguous block: dequantize it in one call (features
  // on r repeat with period R, so they are laid out for a whole tile).
  const Expanded block =
      nR == 1 && feature == FeatureAxis::kR ? repeat_features(p, R, TS) : Expanded{};
  parallel_for(units, choose_threads(threads, units, bytes, Direction::kDequantize), [&](std::size_t u0, std::size_t u1) {
    T tile[kTileRows * kTileRun];
    for (std::size_t u = u0; u < u1; ++u) {
      const std::size_t b = u / (nR * nS), rt = (u / nS) % nR, st = u % nS;
      const std::size_t r0 = rt * TR, r1 = std::min(R, r0 + TR);
      const std::size_t s0 = st * TS, s1 = std::min(S, s0 + TS);
      const std::size_t run = (r1 - r0) * K, ns = s1 - s0;
      if (K == 1) {
        k.gather(in + (b * R + r0) * S + s0, S, r1 - r0, tile, run, ns);
      } else {
        for (std::size_t r = r0; r < r1; ++r) {
          const T* src = in + ((b * R + r) * S + s0) * K;
          T* col = tile + (r - r0) * K;
          for (std::size_t i = 0; i < ns; ++i) {
            for (std::size_t j = 0; j < K; ++j) col[i * run + j] = src[i * K + j];
          }
        }
      }
      if (nR == 1 && feature != FeatureAxis::kS) {
        float* dst = out + (b * S + s0) * R * K;
        if (feature == FeatureAxis::kR) {  // K == 1 (checked)
          k.dequantize_pf(tile, dst, ns * run, block.scales.data(), block.zps.data());
        } else {
          k.dequantize(tile, dst, ns * run, p.scales[0], p.zps[0]);
        }
        continue;
      }
      for (std::size_t s = s0; s < s1; ++s) {
        const T* src = tile + (s - s0) * run;
        float* dst = out + ((b * S + s) * R + r0) * K;
        if (feature == FeatureAxis::kR) {  // K == 1 (checked)
          k.dequantize_pf(src, dst, run, p.scales + r0, p.zps + r0);
        } else {
          float scale, zp;
          scale_zp(0, s, scale, zp);
          k.dequantize(src, dst, run, scale, zp);
        }
      }
    }
  });
}

template void quantize_transform<std::uint8_t>(const float*, std::uint8_t*, const BlockTranspose&,
                                               FeatureAxis, const QuantParams&, int);
template void quantize_transform<std::uint16_t>(const float*, std::uint16_t*,
                                                const BlockTranspose&, FeatureAxis,
                                                const QuantParams&, int);
template void dequantize_transform<std::uint8_t>(const std::uint8_t*, float*,
                                                 const BlockTranspose&, FeatureAxis,
                                                 const QuantParams&, int);
template void dequantize_transform<std::uint16_t>(const std::uint16_t*, float*,
                                                  const BlockTranspose&, FeatureAxis,
                                                  const QuantParams&, int);

}  // namespace hailo_ort
