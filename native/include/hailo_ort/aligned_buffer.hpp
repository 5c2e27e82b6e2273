// Page-aligned host buffers: the base of the zero-copy path (DMA wants page-aligned memory
// whose size is a whole number of pages).
#pragma once

#include <cstddef>

namespace hailo_ort {

// The OS page size in bytes, read once at run time (4 KiB on x86-64, 16 KiB on some arm64 kernels).
std::size_t page_size();

// Round `bytes` up to a whole number of pages (at least one page). Throws std::overflow_error.
std::size_t round_up_to_pages(std::size_t bytes);

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
