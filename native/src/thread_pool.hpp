// A process-wide pool of worker threads for the transforms' parallel loops: a thread start
// costs about 20 us, as much as a whole transform of a 1 MB tensor, so workers are started once
// and kept (see thread_pool.cpp).
#pragma once

#include <cstddef>

namespace hailo_ort {

// Runs task(ctx, k) once for every k < count: on the calling thread and on up to
// `max_workers` pool workers, which claim the indices as they become free (the caller never
// waits for a busy worker to start: it claims what is left itself). Returns when every call has
// returned; an exception thrown by a task is rethrown here (the first one, after all calls).
void run_parallel(std::size_t count, std::size_t max_workers, void (*task)(void*, std::size_t),
                  void* ctx);

// Worker threads started so far (for tests).
std::size_t pool_workers();

}  // namespace hailo_ort
