// The kernels built with AVX-512 F/BW/VL (CMake adds the flags to this file on x86-64); used
// only when the CPU and OS support them.
#include "kernels.hpp"

#if defined(HAILO_ORT_HAVE_AVX512)
#define HAILO_KERNELS_FN kernels_avx512
#define HAILO_KERNELS_NAME "avx512"
#include "kernels_impl.hpp"
#else
namespace hailo_ort {
const Kernels* kernels_avx512() { return nullptr; }
}  // namespace hailo_ort
#endif
