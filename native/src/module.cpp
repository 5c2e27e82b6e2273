// Python bindings of the native core (module hailo_ort._native).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <vector>

#include "bindings.hpp"
#include "hailo_ort/aligned_buffer.hpp"

namespace py = pybind11;

namespace {

// A numpy array viewing a fresh page-aligned buffer; the array owns the buffer (no copy).
py::array aligned_empty(const std::vector<py::ssize_t>& shape, const py::dtype& dtype) {
  const std::size_t nbytes = hailo_ort::array_nbytes(
      shape, static_cast<std::size_t>(dtype.itemsize()), "aligned_empty");
  auto* buffer = new hailo_ort::AlignedBuffer(nbytes);
  py::capsule owner(buffer, [](void* p) { delete static_cast<hailo_ort::AlignedBuffer*>(p); });
  return py::array(dtype, shape, buffer->data(), owner);
}

}  // namespace

PYBIND11_MODULE(_native, m) {
  m.doc() = "hailo-ort native core: page-aligned buffers and host transforms";
  m.def("page_size", &hailo_ort::page_size, "The OS page size in bytes.");
  m.def("round_up_to_pages", &hailo_ort::round_up_to_pages, py::arg("nbytes"),
        "Round a byte count up to a whole number of pages (at least one page).");
  m.def("aligned_empty", &aligned_empty, py::arg("shape"), py::arg("dtype"),
        "A zero-filled numpy array over a page-aligned buffer whose size is rounded up to whole "
        "pages; the array owns the memory.");
  hailo_ort::register_transforms(m);
  hailo_ort::register_buffer_pool(m);
}
