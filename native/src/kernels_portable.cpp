// On x86, the kernels without intrinsics: the code other CPUs (e.g. arm64) run, kept here so
// the tests exercise it on x86 too. Never picked automatically.
#include "kernels.hpp"

#if defined(__x86_64__) || defined(__i386__) || defined(_M_X64)
#define HAILO_KERNELS_NO_INTRINSICS
#define HAILO_KERNELS_FN kernels_portable
#define HAILO_KERNELS_NAME "portable"
#include "kernels_impl.hpp"
#else
namespace hailo_ort {
const Kernels* kernels_portable() { return nullptr; }
}  // namespace hailo_ort
#endif
