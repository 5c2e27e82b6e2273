// Page-aligned host buffers: the base of the zero-copy path (DMA wants page-aligned memory
// whose size is a whole number of pages).
#pragma once

#include <cstddef>
#include <limits>
#include <stdexcept>
#include <string>

namespace hailo_ort {

// The OS page size in bytes, read once at run time (4 KiB on x86-64, 16 KiB on some arm64 kernels).
std::size_t page_size();

// Round `bytes` up to a whole number of pages (at least one page). Throws std::overflow_error.
std::size_t round_up_to_pages(std::size_t bytes);

// Bytes of a C-contiguous array of `shape` with `itemsize`-byte items. Throws
// std::invalid_argument for a negative dimension and std::overflow_error when the size does not
// fit in size_t; the messages start with `what`.
template <class Shape>
std::size_t array_nbytes(const Shape& shape, std::size_t itemsize, const char* what) {
  std::size_t count = 1;
  for (const auto dim : shape) {
    if (dim < 0) throw std::invalid_argument(std::string(what) + ": negative dimension in shape");
    const auto d = static_cast<std::size_t>(dim);
    if (d != 0 && count > std::numeric_limits<std::size_t>::max() / d) {
      throw std::overflow_error(std::string(what) + ": shape is too large");
    }
    count *= d;
  }
  if (itemsize != 0 && count > std::numeric_limits<std::size_t>::max() / itemsize) {
    throw std::overflow_error(std::string(what) + ": shape is too large");
  }
  return count * itemsize;
}

// An owned, zero-initialised, page-aligned allocation of a whole number of pages.
class AlignedBuffer {
 public:
  explicit AlignedBuffer(std::size_t requested_bytes);
  ~AlignedBuffer();
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;

  void* data() const { return data_; }
  std::size_t requested_bytes() const { return requested_; }
  std::size_t capacity_bytes() const { return capacity_; }

 private:
  void* data_ = nullptr;
  std::size_t requested_ = 0;
  std::size_t capacity_ = 0;
};

}  // namespace hailo_ort
