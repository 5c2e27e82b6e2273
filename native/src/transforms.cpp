// Fused quantize/dequantize + layout kernels (see transforms.hpp).
//
// Performance notes: the arithmetic always runs over contiguous runs of the float side so the
// compiler vectorises it; a layout change with a short inner run (K < kRowModeMinK) goes
// through a small tile buffer that stays in L1 (quantize a tile of input rows into the buffer,
// then scatter the narrow integers; or gather integers into the buffer, then dequantize whole
// output rows). Rounding half to even uses the exact 2^23 trick: for 0 <= v < 2^23,
// (v + 2^23) - 2^23 is v rounded to the nearest integer, ties to even, in the default rounding
// mode, and it vectorises where std::nearbyint would be a library call per element.
#include "hailo_ort/transforms.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

namespace hailo_ort {
namespace {

constexpr std::size_t kMinBytesPerThread = 512 * 1024;
constexpr int kMaxThreads = 64;
constexpr std::size_t kRowModeMinK = 16;  // inner runs at least this long need no tile buffer
constexpr std::size_t kTileRun = 256;     // elements per contiguous run inside a tile
constexpr std::size_t kTileRows = 16;     // runs per tile
constexpr std::size_t kFlatChunk = 1 << 15;

// Hailo's quantization of one value, returned as the bits of a float whose low 16 bits are the
// result. The narrowing to T happens in a separate loop: fused with the selects, GCC turns them
// into slow mask arithmetic on narrow integers.
inline std::uint32_t quantize_bits(float x, float scale, float zp, float lo, float hi,
                                   float qmax) {
  constexpr float kRound = 8388608.0f;  // 2^23
  float v = x < lo ? lo : x;            // np.clip keeps NaN; so do these two selects
  v = hi < v ? hi : v;
  v = v / scale + zp;
  v = v > 0.0f ? v : 0.0f;  // saturate below (and NaN -> 0)
  v = v < qmax ? v : qmax;
  // 0 <= v <= 65535: v + 2^23 is rounded half to even to an integer, whose value sits in the
  // low mantissa bits (the float's bits are 0x4B000000 | round(v)).
  std::uint32_t bits;
  const float shifted = v + kRound;
  std::memcpy(&bits, &shifted, sizeof bits);
  return bits;
}

constexpr std::size_t kBlock = 256;

template <class T>
constexpr float qmax_of() {
  return sizeof(T) == 1 ? 255.0f : 65535.0f;
}

template <class T>
inline void narrow(const std::uint32_t* __restrict bits, T* __restrict out, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<T>(bits[i]);
}

template <class T>
void quantize_run(const float* __restrict in, T* __restrict out, std::size_t n, float scale,
                  float zp, float lo, float hi) {
  std::uint32_t bits[kBlock];
  for (std::size_t a = 0; a < n; a += kBlock) {
    const std::size_t m = std::min(kBlock, n - a);
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
  std::uint32_t bits[kBlock];
  for (std::size_t a = 0; a < n; a += kBlock) {
    const std::size_t m = std::min(kBlock, n - a);
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

// dst[s * dst_stride + i] = tile[i * run + s] for i < rows, s < cols: the narrow transpose
// step. Few rows (e.g. 3 channels) get fixed-count loops the compiler can unroll.
template <std::size_t Rows, class T>
void scatter_fixed(const T* __restrict tile, std::size_t run, T* __restrict dst,
                   std::size_t dst_stride, std::size_t cols) {
  for (std::size_t s = 0; s < cols; ++s) {
    for (std::size_t i = 0; i < Rows; ++i) dst[s * dst_stride + i] = tile[i * run + s];
  }
}

template <class T>
void scatter_columns(const T* __restrict tile, std::size_t run, std::size_t rows,
                     T* __restrict dst, std::size_t dst_stride, std::size_t cols) {
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

// Run fn(begin, end) over [0, units) split in `threads` contiguous ranges; the calling thread
// takes the last range. If a thread cannot be started its range runs on the calling thread.
template <class F>
void parallel_for(std::size_t units, int threads, const F& fn) {
  if (units == 0) return;
  if (threads <= 1 || units == 1) {
    fn(std::size_t{0}, units);
    return;
  }
  const std::size_t n = std::min<std::size_t>(static_cast<std::size_t>(threads), units);
  const std::size_t per = units / n, extra = units % n;
  std::vector<std::thread> workers;
  workers.reserve(n - 1);
  std::size_t begin = 0;
  for (std::size_t t = 0; t < n; ++t) {
    const std::size_t end = begin + per + (t < extra ? 1 : 0);
    bool started = false;
    if (t + 1 < n) {
      try {
        workers.emplace_back([&fn, begin, end] { fn(begin, end); });
        started = true;
      } catch (const std::system_error&) {
        started = false;
      }
    }
    if (!started) fn(begin, end);
    begin = end;
  }
  for (auto& w : workers) w.join();
}

std::size_t ceil_div(std::size_t a, std::size_t b) { return (a + b - 1) / b; }

// Per-feature arrays repeated to a whole number of periods of at least ~1024 elements, so the
// identity path with few features (e.g. C=3) still runs long vectorisable loops.
struct Expanded {
  std::vector<float> scales, zps;
  std::size_t rows_per_group = 1;
};

Expanded expand(const QuantParams& p, std::size_t period) {
  Expanded e;
  e.rows_per_group = std::max<std::size_t>(1, ceil_div(1024, period));
  const std::size_t len = e.rows_per_group * period;
  e.scales.resize(len);
  e.zps.resize(len);
  for (std::size_t i = 0; i < len; ++i) {
    e.scales[i] = p.scales[i % period];
    e.zps[i] = p.zps[i % period];
  }
  return e;
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

int choose_threads(int requested, std::size_t units, std::size_t bytes) {
  int hw = static_cast<int>(std::thread::hardware_concurrency());
  if (hw <= 0) hw = 1;
  std::size_t want = static_cast<std::size_t>(std::min(requested <= 0 ? hw : requested, kMaxThreads));
  const std::size_t by_size = std::max<std::size_t>(1, bytes / kMinBytesPerThread);
  return static_cast<int>(std::max<std::size_t>(1, std::min({want, units, by_size})));
}

template <class T>
void quantize_transform(const float* in, T* out, const BlockTranspose& g, FeatureAxis feature,
                        const QuantParams& p, int threads) {
  check(g, feature, p, true);
  const std::size_t total = g.elements();
  if (total == 0) return;
  const float lo = p.limvals_min, hi = p.limvals_max;
  const std::size_t bytes = total * (sizeof(float) + sizeof(T));

  if (g.identity) {
    if (feature == FeatureAxis::kNone) {
      const std::size_t units = ceil_div(total, kFlatChunk);
      parallel_for(units, choose_threads(threads, units, bytes), [&](std::size_t u0, std::size_t u1) {
        const std::size_t a = u0 * kFlatChunk, b = std::min(total, u1 * kFlatChunk);
        quantize_run(in + a, out + a, b - a, p.scales[0], p.zps[0], lo, hi);
      });
      return;
    }
    const std::size_t period = g.K, rows = total / period;
    const Expanded e = expand(p, period);
    const std::size_t units = ceil_div(rows, e.rows_per_group);
    parallel_for(units, choose_threads(threads, units, bytes), [&](std::size_t u0, std::size_t u1) {
      for (std::size_t u = u0; u < u1; ++u) {
        const std::size_t r0 = u * e.rows_per_group;
        const std::size_t r1 = std::min(rows, r0 + e.rows_per_group);
        quantize_run_pf(in + r0 * period, out + r0 * period, (r1 - r0) * period, e.scales.data(),
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
    parallel_for(units, choose_threads(threads, units, bytes), [&](std::size_t u0, std::size_t u1) {
      for (std::size_t u = u0; u < u1; ++u) {
        const std::size_t b = u / R, r = u % R;
        for (std::size_t s = 0; s < S; ++s) {
          const float* src = in + ((b * R + r) * S + s) * K;
          T* dst = out + ((b * S + s) * R + r) * K;
          if (feature == FeatureAxis::kK) {
            quantize_run_pf(src, dst, K, p.scales, p.zps, lo, hi);
          } else {
            float scale, zp;
            scale_zp(r, s, scale, zp);
            quantize_run(src, dst, K, scale, zp, lo, hi);
          }
        }
      }
    });
    return;
  }

  // Tiled: quantize kTileRows input runs of up to kTileRun elements into a tile, then scatter.
  const std::size_t TS = std::max<std::size_t>(1, kTileRun / K), TR = kTileRows;
  const std::size_t nR = ceil_div(R, TR), nS = ceil_div(S, TS);
  const std::size_t units = B * nR * nS;
  parallel_for(units, choose_threads(threads, units, bytes), [&](std::size_t u0, std::size_t u1) {
    T tile[kTileRows * kTileRun];
    for (std::size_t u = u0; u < u1; ++u) {
      const std::size_t b = u / (nR * nS), rt = (u / nS) % nR, st = u % nS;
      const std::size_t r0 = rt * TR, r1 = std::min(R, r0 + TR);
      const std::size_t s0 = st * TS, s1 = std::min(S, s0 + TS);
      const std::size_t run = (s1 - s0) * K;
      for (std::size_t r = r0; r < r1; ++r) {
        const float* src = in + ((b * R + r) * S + s0) * K;
        T* dst = tile + (r - r0) * run;
        if (feature == FeatureAxis::kS) {  // K == 1 (checked)
          quantize_run_pf(src, dst, run, p.scales + s0, p.zps + s0, lo, hi);
        } else {
          float scale, zp;
          scale_zp(r, 0, scale, zp);
          quantize_run(src, dst, run, scale, zp, lo, hi);
        }
      }
      const std::size_t nr = r1 - r0;
      if (K == 1) {
        scatter_columns(tile, run, nr, out + (b * S + s0) * R + r0, R, s1 - s0);
      } else {
        for (std::size_t s = s0; s < s1; ++s) {
          T* dst = out + ((b * S + s) * R + r0) * K;
          const T* col = tile + (s - s0) * K;
          for (std::size_t i = 0; i < nr; ++i) {
            for (std::size_t k = 0; k < K; ++k) dst[i * K + k] = col[i * run + k];
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
  const std::size_t total = g.elements();
  if (total == 0) return;
  const std::size_t bytes = total * (sizeof(float) + sizeof(T));

  if (g.identity) {
    if (feature == FeatureAxis::kNone) {
      const std::size_t units = ceil_div(total, kFlatChunk);
      parallel_for(units, choose_threads(threads, units, bytes), [&](std::size_t u0, std::size_t u1) {
        const std::size_t a = u0 * kFlatChunk, b = std::min(total, u1 * kFlatChunk);
        dequantize_run(in + a, out + a, b - a, p.scales[0], p.zps[0]);
      });
      return;
    }
    const std::size_t period = g.K, rows = total / period;
    const Expanded e = expand(p, period);
    const std::size_t units = ceil_div(rows, e.rows_per_group);
    parallel_for(units, choose_threads(threads, units, bytes), [&](std::size_t u0, std::size_t u1) {
      for (std::size_t u = u0; u < u1; ++u) {
        const std::size_t r0 = u * e.rows_per_group;
        const std::size_t r1 = std::min(rows, r0 + e.rows_per_group);
        dequantize_run_pf(in + r0 * period, out + r0 * period, (r1 - r0) * period,
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
    parallel_for(units, choose_threads(threads, units, bytes), [&](std::size_t u0, std::size_t u1) {
      for (std::size_t u = u0; u < u1; ++u) {
        const std::size_t b = u / S, s = u % S;
        for (std::size_t r = 0; r < R; ++r) {
          const T* src = in + ((b * R + r) * S + s) * K;
          float* dst = out + ((b * S + s) * R + r) * K;
          if (feature == FeatureAxis::kK) {
            dequantize_run_pf(src, dst, K, p.scales, p.zps);
          } else {
            float scale, zp;
            scale_zp(r, s, scale, zp);
            dequantize_run(src, dst, K, scale, zp);
          }
        }
      }
    });
    return;
  }

  // Tiled: gather a tile of integers in output order, then dequantize whole output runs.
  const std::size_t TR = std::max<std::size_t>(1, kTileRun / K), TS = kTileRows;
  const std::size_t nR = ceil_div(R, TR), nS = ceil_div(S, TS);
  const std::size_t units = B * nR * nS;
  parallel_for(units, choose_threads(threads, units, bytes), [&](std::size_t u0, std::size_t u1) {
    T tile[kTileRows * kTileRun];
    for (std::size_t u = u0; u < u1; ++u) {
      const std::size_t b = u / (nR * nS), rt = (u / nS) % nR, st = u % nS;
      const std::size_t r0 = rt * TR, r1 = std::min(R, r0 + TR);
      const std::size_t s0 = st * TS, s1 = std::min(S, s0 + TS);
      const std::size_t run = (r1 - r0) * K, ns = s1 - s0;
      if (K == 1) {
        for (std::size_t r = r0; r < r1; ++r) {
          const T* src = in + (b * R + r) * S + s0;
          T* col = tile + (r - r0);
          for (std::size_t i = 0; i < ns; ++i) col[i * run] = src[i];
        }
      } else {
        for (std::size_t r = r0; r < r1; ++r) {
          const T* src = in + ((b * R + r) * S + s0) * K;
          T* col = tile + (r - r0) * K;
          for (std::size_t i = 0; i < ns; ++i) {
            for (std::size_t k = 0; k < K; ++k) col[i * run + k] = src[i * K + k];
          }
        }
      }
      for (std::size_t s = s0; s < s1; ++s) {
        const T* src = tile + (s - s0) * run;
        float* dst = out + ((b * S + s) * R + r0) * K;
        if (feature == FeatureAxis::kR) {  // K == 1 (checked)
          dequantize_run_pf(src, dst, run, p.scales + r0, p.zps + r0);
        } else {
          float scale, zp;
          scale_zp(0, s, scale, zp);
          dequantize_run(src, dst, run, scale, zp);
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
