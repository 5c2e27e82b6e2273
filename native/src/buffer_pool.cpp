// A pool of page-aligned buffers handed to Python as numpy arrays without copies.
//
// Each acquired array views one pooled buffer and owns a "lease" (its base object). The buffer
// goes back to the pool only when the lease dies, i.e. when the array and every view of it are
// gone, so the same memory can never be handed to two live users. The pool state is shared with
// the leases, so arrays may outlive the pool object.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "bindings.hpp"
#include "hailo_ort/aligned_buffer.hpp"

namespace py = pybind11;

namespace hailo_ort {
namespace {

class PoolState {
 public:
  explicit PoolState(std::size_t max_free_bytes) : max_free_bytes_(max_free_bytes) {}

  // A free buffer of exactly `capacity` bytes, or a new one. Never calls into Python.
  std::unique_ptr<AlignedBuffer> take(std::size_t requested, std::size_t capacity) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = free_.find(capacity);
      if (it != free_.end()) {
        std::unique_ptr<AlignedBuffer> buffer = std::move(it->second);
        free_.erase(it);
        free_bytes_ -= capacity;
        ++reuses_;
        ++live_;
        live_bytes_ += capacity;
        return buffer;
      }
    }
    auto buffer = std::make_unique<AlignedBuffer>(requested);  // may throw bad_alloc
    std::lock_guard<std::mutex> lock(mu_);
    ++allocations_;
    ++live_;
    live_bytes_ += buffer->capacity_bytes();
    return buffer;
  }

  void give_back(std::unique_ptr<AlignedBuffer> buffer) {
    std::unique_ptr<AlignedBuffer> drop;
    {
      std::lock_guard<std::mutex> lock(mu_);
      const std::size_t capacity = buffer->capacity_bytes();
      --live_;
      live_bytes_ -= capacity;
      ++returns_;
      if (free_bytes_ + capacity <= max_free_bytes_) {
        free_bytes_ += capacity;
        free_.emplace(capacity, std::move(buffer));
      } else {
        ++discards_;
        drop = std::move(buffer);
      }
    }
    // `drop` is freed here, outside the lock.
  }

  std::size_t trim() {
    std::multimap<std::size_t, std::unique_ptr<AlignedBuffer>> dropped;
    std::size_t freed = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      dropped.swap(free_);
      freed = free_bytes_;
      free_bytes_ = 0;
    }
    return freed;
  }

  py::dict stats() {
    std::lock_guard<std::mutex> lock(mu_);
    py::dict d;
    d["allocations"] = allocations_;
    d["reuses"] = reuses_;
    d["returns"] = returns_;
    d["discards"] = discards_;
    d["live"] = live_;
    d["live_bytes"] = live_bytes_;
    d["free"] = free_.size();
    d["free_bytes"] = free_bytes_;
    d["max_free_bytes"] = max_free_bytes_;
    return d;
  }

  std::size_t max_free_bytes() const { return max_free_bytes_; }

 private:
  std::mutex mu_;
  std::multimap<std::size_t, std::unique_ptr<AlignedBuffer>> free_;  // capacity -> buffer
  std::size_t max_free_bytes_;
  std::size_t free_bytes_ = 0;
  std::uint64_t allocations_ = 0, reuses_ = 0, returns_ = 0, discards_ = 0, live_ = 0;
  std::size_t live_bytes_ = 0;
};

struct Lease {
  std::shared_ptr<PoolState> pool;
  std::unique_ptr<AlignedBuffer> buffer;
  ~Lease() {
    if (buffer) pool->give_back(std::move(buffer));
  }
};

class BufferPool {
 public:
  explicit BufferPool(std::size_t max_free_bytes)
      : state_(std::make_shared<PoolState>(max_free_bytes)) {}

  py::array acquire(const std::vector<py::ssize_t>& shape, const py::dtype& dtype) {
    if (dtype.attr("hasobject").cast<bool>()) {
      throw py::type_error("BufferPool.acquire: dtype " + py::str(dtype).cast<std::string>() +
                           " holds Python objects; only plain data types can be pooled");
    }
    const auto item = static_cast<std::size_t>(dtype.itemsize());
    if (item == 0) {
      throw py::type_error("BufferPool.acquire: dtype " + py::str(dtype).cast<std::string>() +
                           " has no size");
    }
    std::size_t nbytes = 0;
    try {
      nbytes = array_nbytes(shape, item, "BufferPool.acquire");
    } catch (const std::overflow_error& e) {
      throw py::value_error(e.what());  // a shape too large is a ValueError here
    }
    const std::size_t capacity = round_up_to_pages(nbytes);
    auto lease = std::make_unique<Lease>();
    lease->pool = state_;
    lease->buffer = state_->take(nbytes, capacity);
    void* data = lease->buffer->data();
    py::capsule owner(lease.get(), [](void* p) { delete static_cast<Lease*>(p); });
    lease.release();  // now owned by the capsule
    return py::array(dtype, shape, data, owner);
  }

  std::size_t trim() { return state_->trim(); }
  py::dict stats() { return state_->stats(); }
  std::size_t max_free_bytes() const { return state_->max_free_bytes(); }

 private:
  std::shared_ptr<PoolState> state_;
};

}  // namespace

void register_buffer_pool(py::module_& m) {
  py::class_<BufferPool>(m, "BufferPool",
                         "Pool of page-aligned buffers handed out as numpy arrays (no copies).")
      .def(py::init<std::size_t>(), py::arg("max_free_bytes"))
      .def("acquire", &BufferPool::acquire, py::arg("shape"), py::arg("dtype"),
           "An uninitialised C-contiguous array over a page-aligned pooled buffer; the buffer "
           "returns to the pool when the array and all its views are gone.")
      .def("trim", &BufferPool::trim, "Free every pooled (not leased) buffer; returns bytes freed.")
      .def("stats", &BufferPool::stats, "Counters: allocations, reuses, live, free, bytes.")
      .def_property_readonly("max_free_bytes", &BufferPool::max_free_bytes);
}

}  // namespace hailo_ort
