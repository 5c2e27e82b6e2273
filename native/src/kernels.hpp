// The inner loops of the transforms, compiled once per instruction set (kernels_*.cpp) and
// picked at run time (transforms.cpp). This header and kernels_impl.hpp include no C++ library
// header, so a translation unit built with -mavx2 or -mavx512f emits no shared inline function
// that the linker could pick for the baseline code.
#pragma once

#include <cstddef>
#include <cstdint>

namespace hailo_ort {

template <class T>
struct TypedKernels {
  // out[i] = Hailo-quantize(in[i]) with one scale / zero point, or per element (scales[i]).
  void (*quantize)(const float* in, T* out, std::size_t n, float scale, float zp, float lo,
                   float hi);
  void (*quantize_pf)(const float* in, T* out, std::size_t n, const float* scales,
                      const float* zps, float lo, float hi);
  // out[3 * s + c] = Hailo-quantize(in[c * plane_stride + s]) with scales[c] / zps[c], c < 3,
  // s < n (3 planes interleaved); false (nothing done) when not available for this kernel set
  // or these parameters; n == 0 only asks.
  bool (*quantize3)(const float* in, std::size_t plane_stride, T* out, std::size_t n,
                    const float* scales, const float* zps, float lo, float hi);
  // out[c * plane_stride + s] = Hailo-quantize(in[3 * s + c]) with one scale / zero point
  // (interleaved triples into 3 planes); same contract as quantize3.
  bool (*quantize_d3)(const float* in, std::size_t plane_stride, T* out, std::size_t n,
                      float scale, float zp, float lo, float hi);
  // out[i] = (in[i] - zp) * scale, or per element.
  void (*dequantize)(const T* in, float* out, std::size_t n, float scale, float zp);
  // out[r * len + i] = (in[r * in_stride + i] - zp) * scale for r < rows, i < len; false
  // (nothing done) when not available; rows == 0 only asks.
  bool (*dequantize_rows)(const T* in, std::size_t in_stride, std::size_t rows, std::size_t len,
                          float* out, float scale, float zp);
  void (*dequantize_pf)(const T* in, float* out, std::size_t n, const float* scales,
                        const float* zps);
  // dst[i * dst_stride + r] = (src[r * src_stride + i] - zps[i * step]) * scales[i * step],
  // i < nch (16, 32, 48 or 64), r < rows; false (nothing done) when not available; rows == 0
  // only asks.
  bool (*dequantize_t64)(const T* src, std::size_t src_stride, std::size_t rows, float* dst,
                         std::size_t dst_stride, std::size_t nch, const float* scales,
                         const float* zps, std::size_t step);
  // dst[s * dst_stride + i] = tile[i * run + s] for i < rows, s < cols.
  void (*scatter)(const T* tile, std::size_t run, std::size_t rows, T* dst,
                  std::size_t dst_stride, std::size_t cols);
  // tile[i * run + r] = src[r * src_stride + i] for r < rows, i < cols.
  void (*gather)(const T* src, std::size_t src_stride, std::size_t rows, T* tile,
                 std::size_t run, std::size_t cols);
};

struct Kernels {
  const char* name;
  TypedKernels<std::uint8_t> u8;
  TypedKernels<std::uint16_t> u16;
  bool (*uses_vbmi)();  // whether the layout kernels take their AVX-512 VBMI paths
};

// Each returns nullptr when that variant was not compiled in (e.g. AVX on arm64).
const Kernels* kernels_portable();  // x86 only: no intrinsics (what other CPUs run)
const Kernels* kernels_baseline();
const Kernels* kernels_avx2();
const Kernels* kernels_avx512();

}  // namespace hailo_ort
