// The kernels built with AVX2 and FMA (CMake adds -mavx2 -mfma to this file on x86-64); used
// only when the CPU and OS support both.
#include "kernels.hpp"

#if defined(HAILO_ORT_HAVE_AVX2)
#define HAILO_KERNELS_FN kernels_avx2
#define HAILO_KERNELS_NAME "avx2"
#include "kernels_impl.hpp"
#else
namespace hailo_ort {
const Kernels* kernels_avx2() { return nullptr; }
}  // namespace hailo_ort
#endif
