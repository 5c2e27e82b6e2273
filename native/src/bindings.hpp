// Registration functions of the parts of module hailo_ort._native (one per source file).
#pragma once

#include <pybind11/pybind11.h>

namespace hailo_ort {

void register_transforms(pybind11::module_& m);
void register_buffer_pool(pybind11::module_& m);

}  // namespace hailo_ort
