#include "hailo_ort/aligned_buffer.hpp"

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <stdexcept>

namespace hailo_ort {

std::size_t page_size() {
  static const std::size_t size = [] {
    long value = sysconf(_SC_PAGESIZE);
    return value > 0 ? static_cast<std::size_t>(value) : static_cast<std::size_t>(4096);
  }();
  return size;
}

std::size_t round_up_to_pages(std::size_t bytes) {
  const std::size_t page = page_size();
  if (bytes == 0) return page;
  if (bytes > std::numeric_limits<std::size_t>::max() - (page - 1)) {
    throw std::overflow_error("buffer size overflows when rounded up to whole pages");
  }
  return (bytes + page - 1) / page * page;
}

AlignedBuffer::AlignedBuffer(std::size_t requested_bytes)
    : requested_(requested_bytes), capacity_(round_up_to_pages(requested_bytes)) {
  void* ptr = nullptr;
  if (posix_memalign(&ptr, page_size(), capacity_) != 0 || ptr == nullptr) {
    throw std::bad_alloc();
  }
  std::memset(ptr, 0, capacity_);
  data_ = ptr;
}

AlignedBuffer::~AlignedBuffer() { std::free(data_); }

}  // namespace hailo_ort
