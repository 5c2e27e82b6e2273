// The kernels for the compiler's default instruction set (SSE2 on x86-64, NEON on arm64).
#define HAILO_KERNELS_FN kernels_baseline
#define HAILO_KERNELS_NAME "baseline"
#include "kernels_impl.hpp"
