// Python bindings of the fused transforms: argument checks, layout planning, GIL release.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "bindings.hpp"
#include "hailo_ort/transforms.hpp"
#include "thread_pool.hpp"

namespace py = pybind11;

namespace hailo_ort {
namespace {

constexpr int kNpyAligned = 0x0100;    // NPY_ARRAY_ALIGNED
constexpr int kNpyWriteable = 0x0400;  // NPY_ARRAY_WRITEABLE

using ParamArray = py::array_t<float, py::array::c_style | py::array::forcecast>;

std::string shape_str(const std::vector<py::ssize_t>& shape) {
  std::string s = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  if (shape.size() == 1) s += ",";
  return s + ")";
}

std::vector<py::ssize_t> shape_of(const py::array& a) {
  return std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim());
}

std::string describe(const py::array& a) {
  return py::str(a.dtype()).cast<std::string>() + shape_str(shape_of(a));
}

[[noreturn]] void throw_not_array(py::handle obj, const std::string& what) {
  throw py::type_error(what + " must be a numpy array, got " +
                       py::str(py::type::handle_of(obj).attr("__name__")).cast<std::string>());
}

py::array as_array(py::handle obj, const std::string& what) {
  if (!py::isinstance<py::array>(obj)) throw_not_array(obj, what);
  return py::reinterpret_borrow<py::array>(obj);
}

// A new C-contiguous array whose data starts on a cache line (numpy's own large allocations
// start 16 bytes past one, so every 64-byte vector store would touch two lines: 20% slower
// transposing dequantize here). The memory is a numpy byte array, the new array's base.
constexpr std::size_t kLine = 64;
constexpr std::size_t kAlignFromBytes = 16 * 1024;  // smaller: numpy's allocation as it is

py::array new_output(const py::dtype& dtype, const std::vector<py::ssize_t>& shape,
                     std::size_t nbytes) {
  if (nbytes < kAlignFromBytes) return py::array(dtype, shape);
  py::array_t<std::uint8_t> raw(static_cast<py::ssize_t>(nbytes + kLine));
  std::uint8_t* base = raw.mutable_data();
  const std::size_t skip = (kLine - reinterpret_cast<std::uintptr_t>(base) % kLine) % kLine;
  return py::array(dtype, shape, std::vector<py::ssize_t>{}, base + skip, raw);
}

// What keeps the kernel from using `a` directly (nullptr: nothing).
const char* layout_problem(const py::array& a, bool writeable) {
  const int flags = a.flags();
  if (!(flags & py::array::c_style)) return " must be C-contiguous";
  if (!(flags & kNpyAligned)) return " must be aligned";
  if (writeable && !(flags & kNpyWriteable)) return " is read-only";
  return nullptr;
}

// A layout the kernel cannot use: raise (strict) or report false (the caller falls back).
bool layout_ok(const py::array& a, const std::string& what, bool writeable, bool strict) {
  const char* problem = layout_problem(a, writeable);
  if (problem == nullptr) return true;
  if (strict) throw py::value_error(what + problem);
  return false;
}

bool disjoint(const py::array& a, const py::array& b, const std::string& what, bool strict) {
  const auto pa = reinterpret_cast<std::uintptr_t>(a.data());
  const auto pb = reinterpret_cast<std::uintptr_t>(b.data());
  const auto na = static_cast<std::uintptr_t>(a.nbytes());
  const auto nb = static_cast<std::uintptr_t>(b.nbytes());
  if (na && nb && pa < pb + nb && pb < pa + na) {
    if (strict) throw py::value_error(what + ": out overlaps the input");
    return false;
  }
  return true;
}

struct Layout {
  BlockTranspose geometry;
  FeatureAxis feature = FeatureAxis::kK;  // used when per-feature
  std::size_t feature_len = 1;
  std::vector<py::ssize_t> out_shape;
};

BlockTranspose block(std::size_t B, std::size_t R, std::size_t S, std::size_t K) {
  BlockTranspose g;
  g.B = B;
  g.R = R;
  g.S = S;
  g.K = K;
  return g;
}

// Same rules as hailo_ort.transforms (_perm, _feature_axis). `shape` is the input's shape: the
// host tensor when quantizing, the device tensor when dequantizing.
Layout plan(const std::vector<py::ssize_t>& shape, const std::string& host,
            const std::string& device, bool quantize) {
  Layout L;
  L.out_shape = shape;
  std::size_t total = 1;
  for (py::ssize_t d : shape) total *= static_cast<std::size_t>(d);
  const bool identity = shape.size() != 4 || device == "NC" || device == "NHW" ||
                        device == "AUTO" || host == device;
  if (identity) {
    if (shape.size() == 4 && device == "NHCW") {  // features on axis 2, W contiguous after
      const auto N = static_cast<std::size_t>(shape[0]), H = static_cast<std::size_t>(shape[1]);
      const auto C = static_cast<std::size_t>(shape[2]), W = static_cast<std::size_t>(shape[3]);
      L.geometry = quantize ? block(N * H, C, 1, W) : block(N * H, 1, C, W);
      L.feature = quantize ? FeatureAxis::kR : FeatureAxis::kS;
      L.feature_len = C;
      return L;
    }
    const std::size_t F = shape.empty() ? 1 : static_cast<std::size_t>(shape.back());
    L.geometry = block(F ? total / F : 0, 1, 1, F);
    L.geometry.identity = true;
    L.feature = FeatureAxis::kK;
    L.feature_len = F;
    return L;
  }
  const auto d0 = static_cast<std::size_t>(shape[0]), d1 = static_cast<std::size_t>(shape[1]);
  const auto d2 = static_cast<std::size_t>(shape[2]), d3 = static_cast<std::size_t>(shape[3]);
  const py::ssize_t s0 = shape[0], s1 = shape[1], s2 = shape[2], s3 = shape[3];
  if (quantize) {
    if (host == "NCHW" && device == "NHWC") {  // (N,C,H,W) -> (N,H,W,C)
      L.out_shape = {s0, s2, s3, s1};
      L.geometry = block(d0, d1, d2 * d3, 1);
      L.feature = FeatureAxis::kR;
      L.feature_len = d1;
      return L;
    }
    if (host == "NCHW" && device == "NHCW") {  // (N,C,H,W) -> (N,H,C,W)
      L.out_shape = {s0, s2, s1, s3};
      L.geometry = block(d0, d1, d2, d3);
      L.feature = FeatureAxis::kR;
      L.feature_len = d1;
      return L;
    }
    if (host == "NHWC" && device == "NHCW") {  // (N,H,W,C) -> (N,H,C,W)
      L.out_shape = {s0, s1, s3, s2};
      L.geometry = block(d0 * d1, d2, d3, 1);
      L.feature = FeatureAxis::kS;
      L.feature_len = d3;
      return L;
    }
  } else {
    if (host == "NCHW" && device == "NHWC") {  // (N,H,W,C) -> (N,C,H,W)
      L.out_shape = {s0, s3, s1, s2};
      L.geometry = block(d0, d1 * d2, d3, 1);
      L.feature = FeatureAxis::kS;
      L.feature_len = d3;
      return L;
    }
    if (host == "NCHW" && device == "NHCW") {  // (N,H,C,W) -> (N,C,H,W)
      L.out_shape = {s0, s2, s1, s3};
      L.geometry = block(d0, d1, d2, d3);
      L.feature = FeatureAxis::kS;
      L.feature_len = d2;
      return L;
    }
    if (host == "NHWC" && device == "NHCW") {  // (N,H,C,W) -> (N,H,W,C)
      L.out_shape = {s0, s1, s3, s2};
      L.geometry = block(d0 * d1, d2, d3, 1);
      L.feature = FeatureAxis::kR;
      L.feature_len = d2;
      return L;
    }
  }
  throw py::value_error("no transform from host " + host + " to device " + device);
}

struct Params {
  ParamArray scales, zps;
  QuantParams q;
  FeatureAxis feature = FeatureAxis::kNone;
};

Params params(const ParamArray& scales, const ParamArray& zps, const Layout& L,
              const std::string& what) {
  Params p{scales, zps, {}, FeatureAxis::kNone};
  if (scales.ndim() != 1 || zps.ndim() != 1 || scales.size() < 1) {
    throw py::value_error(what + ": scales and zero points must be non-empty 1-D arrays");
  }
  if (scales.size() != zps.size()) {
    throw py::value_error(what + ": " + std::to_string(scales.size()) + " scales but " +
                          std::to_string(zps.size()) + " zero points");
  }
  const auto count = static_cast<std::size_t>(scales.size());
  if (count > 1 && count != L.feature_len) {
    throw py::value_error(what + ": " + std::to_string(count) +
                          " per-feature scales for a feature axis of " +
                          std::to_string(L.feature_len));
  }
  p.q.scales = scales.data();
  p.q.zps = zps.data();
  p.q.count = count;
  p.feature = count > 1 ? L.feature : FeatureAxis::kNone;
  return p;
}

void check_threads(int threads) {
  if (threads < 0) throw py::value_error("threads must be >= 0 (0: automatic)");
}

bool to_device(py::handle x_obj, py::handle out_obj, const std::string& host_order,
               const std::string& device_order, const ParamArray& scales, const ParamArray& zps,
               float limvals_min, float limvals_max, int threads, bool strict) {
  check_threads(threads);
  py::array x = as_array(x_obj, "to_device: x");
  if (!py::array_t<float>::check_(x)) {
    throw py::type_error("to_device: x must be float32, got " + describe(x));
  }
  if (!layout_ok(x, "to_device: x", false, strict)) return false;
  py::array out = as_array(out_obj, "to_device: out");
  const bool u8 = py::array_t<std::uint8_t>::check_(out);
  const bool u16 = py::array_t<std::uint16_t>::check_(out);
  if (!u8 && !u16) {
    throw py::type_error("to_device: out must be uint8 or uint16, got " + describe(out));
  }
  if (!layout_ok(out, "to_device: out", true, strict)) return false;
  const Layout L = plan(shape_of(x), host_order, device_order, true);
  if (shape_of(out) != L.out_shape) {
    throw py::value_error("to_device: out is " + describe(out) + ", expected shape " +
                          shape_str(L.out_shape) + " for x " + describe(x));
  }
  if (!disjoint(x, out, "to_device", strict)) return false;
  Params p = params(scales, zps, L, "to_device");
  p.q.limvals_min = limvals_min;
  p.q.limvals_max = limvals_max;
  const auto* in = static_cast<const float*>(x.data());
  void* dst = out.mutable_data();
  py::gil_scoped_release release;
  if (u8) {
    quantize_transform(in, static_cast<std::uint8_t*>(dst), L.geometry, p.feature, p.q, threads);
  } else {
    quantize_transform(in, static_cast<std::uint16_t*>(dst), L.geometry, p.feature, p.q, threads);
  }
  return true;
}

bool from_device(py::handle q_obj, py::handle out_obj, const std::string& host_order,
                 const std::string& device_order, const ParamArray& scales,
                 const ParamArray& zps, int threads, bool strict) {
  check_threads(threads);
  py::array q = as_array(q_obj, "from_device: q");
  const bool u8 = py::array_t<std::uint8_t>::check_(q);
  const bool u16 = py::array_t<std::uint16_t>::check_(q);
  if (!u8 && !u16) {
    throw py::type_error("from_device: q must be uint8 or uint16, got " + describe(q));
  }
  if (!layout_ok(q, "from_device: q", false, strict)) return false;
  py::array out = as_array(out_obj, "from_device: out");
  if (!py::array_t<float>::check_(out)) {
    throw py::type_error("from_device: out must be float32, got " + describe(out));
  }
  if (!layout_ok(out, "from_device: out", true, strict)) return false;
  const Layout L = plan(shape_of(q), host_order, device_order, false);
  if (shape_of(out) != L.out_shape) {
    throw py::value_error("from_device: out is " + describe(out) + ", expected shape " +
                          shape_str(L.out_shape) + " for q " + describe(q));
  }
  if (!disjoint(q, out, "from_device", strict)) return false;
  const Params p = params(scales, zps, L, "from_device");
  const void* src = q.data();
  auto* dst = static_cast<float*>(out.mutable_data());
  py::gil_scoped_release release;
  if (u8) {
    dequantize_transform(static_cast<const std::uint8_t*>(src), dst, L.geometry, p.feature, p.q,
                         threads);
  } else {
    dequantize_transform(static_cast<const std::uint16_t*>(src), dst, L.geometry, p.feature, p.q,
                         threads);
  }
  return true;
}

// Arrays above this many bytes (input + output) run with the GIL released; below, releasing
// and re-taking it costs more than the kernel.
constexpr std::size_t kReleaseGilBytes = 64 * 1024;

// One stream's transform with everything but the data fixed: layout plan, kernel geometry,
// owned copies of the quantization parameters, shapes and dtypes of both sides. Immutable
// after construction, so one object may be called from several threads at once.
class PreparedTransform {
 public:
  PreparedTransform(bool quantize, const std::string& device_dtype,
                    const std::string& host_order, const std::string& device_order,
                    const std::vector<py::ssize_t>& in_shape,
                    const ParamArray& scales, const ParamArray& zps, float limvals_min,
                    float limvals_max, int threads)
      : quantize_(quantize), threads_(threads), in_shape_(in_shape) {
    check_threads(threads);
    what_ = quantize ? "to_device" : "from_device";
    if (device_dtype == "uint8") {
      u16_ = false;
    } else if (device_dtype == "uint16") {
      u16_ = true;
    } else {
      throw py::type_error(what_ + ": device dtype must be uint8 or uint16, got " + device_dtype);
    }
    for (py::ssize_t d : in_shape) {
      if (d < 0) throw py::value_error(what_ + ": negative dimension in shape");
    }
    const Layout L = plan(in_shape, host_order, device_order, quantize);
    geometry_ = L.geometry;
    out_shape_ = L.out_shape;
    const Params p = params(scales, zps, L, what_);
    scales_.assign(p.q.scales, p.q.scales + p.q.count);
    zps_.assign(p.q.zps, p.q.zps + p.q.count);
    feature_ = p.feature;
    q_.count = p.q.count;
    q_.scales = scales_.data();
    q_.zps = zps_.data();
    q_.limvals_min = limvals_min;
    q_.limvals_max = limvals_max;
    std::size_t n = 1;
    for (py::ssize_t d : in_shape) n *= static_cast<std::size_t>(d);
    const std::size_t int_bytes = u16_ ? 2 : 1;
    in_nbytes_ = n * (quantize ? sizeof(float) : int_bytes);
    out_nbytes_ = n * (quantize ? int_bytes : sizeof(float));
    in_dtype_ = quantize ? py::dtype::of<float>() : int_dtype();
    out_dtype_ = quantize ? int_dtype() : py::dtype::of<float>();
  }

  py::object call(py::handle x_obj, py::handle out_obj) const {
    // No std::string or empty array is built on the success path: each costs ~10% of a call.
    const py::array x = array_arg(x_obj, "input");
    check_array(x, in_dtype_, in_shape_, "input", false);
    py::object result;
    void* dst = nullptr;
    if (out_obj.is_none()) {
      py::array fresh = new_output(out_dtype_, out_shape_, out_nbytes_);
      dst = fresh.mutable_data();
      result = std::move(fresh);
    } else {
      py::array out = array_arg(out_obj, "out");
      check_array(out, out_dtype_, out_shape_, "out", true);
      disjoint(x, out, what_, true);
      dst = out.mutable_data();
      result = py::reinterpret_borrow<py::object>(out_obj);
    }
    const void* src = x.data();
    if (in_nbytes_ + out_nbytes_ >= kReleaseGilBytes) {
      py::gil_scoped_release release;
      run(src, dst);
    } else {
      run(src, dst);
    }
    return result;
  }

  py::tuple in_shape() const { return shape_tuple(in_shape_); }
  py::tuple out_shape() const { return shape_tuple(out_shape_); }
  py::dtype in_dtype() const { return in_dtype_; }
  py::dtype out_dtype() const { return out_dtype_; }
  bool quantizes() const { return quantize_; }

 private:
  // `obj` as an array (a borrowed view of the same handle), or TypeError.
  py::array array_arg(py::handle obj, const char* name) const {
    if (!py::isinstance<py::array>(obj)) throw_not_array(obj, what_ + ": " + name);
    return py::reinterpret_borrow<py::array>(obj);
  }

  py::dtype int_dtype() const {
    return u16_ ? py::dtype::of<std::uint16_t>() : py::dtype::of<std::uint8_t>();
  }

  static py::tuple shape_tuple(const std::vector<py::ssize_t>& shape) {
    py::tuple t(shape.size());
    for (std::size_t i = 0; i < shape.size(); ++i) t[i] = py::int_(shape[i]);
    return t;
  }

  void check_array(const py::array& a, const py::dtype& dtype,
                   const std::vector<py::ssize_t>& shape, const char* name,
                   bool writeable) const {
    if (!a.dtype().is(dtype) && !a.dtype().equal(dtype)) {
      throw py::type_error(what_ + ": " + name + " must be " +
                           py::str(dtype).cast<std::string>() + shape_str(shape) + ", got " +
                           describe(a));
    }
    bool same = static_cast<std::size_t>(a.ndim()) == shape.size();
    for (std::size_t i = 0; same && i < shape.size(); ++i) same = a.shape(i) == shape[i];
    if (!same) {
      throw py::value_error(what_ + ": " + name + " is " + describe(a) + ", expected shape " +
                            shape_str(shape));
    }
    const char* problem = layout_problem(a, writeable);
    if (problem != nullptr) throw py::value_error(what_ + ": " + name + problem);
  }

  void run(const void* src, void* dst) const {
    if (quantize_) {
      const auto* in = static_cast<const float*>(src);
      if (u16_) {
        quantize_transform(in, static_cast<std::uint16_t*>(dst), geometry_, feature_, q_,
                           threads_);
      } else {
        quantize_transform(in, static_cast<std::uint8_t*>(dst), geometry_, feature_, q_,
                           threads_);
      }
    } else {
      auto* out = static_cast<float*>(dst);
      if (u16_) {
        dequantize_transform(static_cast<const std::uint16_t*>(src), out, geometry_, feature_, q_,
                             threads_);
      } else {
        dequantize_transform(static_cast<const std::uint8_t*>(src), out, geometry_, feature_, q_,
                             threads_);
      }
    }
  }

  bool quantize_;
  bool u16_ = false;
  int threads_;
  std::string what_;
  std::vector<py::ssize_t> in_shape_, out_shape_;
  BlockTranspose geometry_;
  FeatureAxis feature_ = FeatureAxis::kNone;
  std::vector<float> scales_, zps_;
  QuantParams q_;
  std::size_t in_nbytes_ = 0, out_nbytes_ = 0;
  py::dtype in_dtype_, out_dtype_;
};

}  // namespace

void register_transforms(py::module_& m) {
  m.def("to_device", &to_device, py::arg("x"), py::arg("out"), py::arg("host_order"),
        py::arg("device_order"), py::arg("scales"), py::arg("zps"), py::arg("limvals_min"),
        py::arg("limvals_max"), py::arg("threads") = 0, py::arg("strict") = true,
        "Quantize float32 `x` (host layout) into uint8/uint16 `out` (device layout) in one pass: "
        "round_half_even(clip(x, limvals) / scale + zp), saturated. `scales`/`zps` hold one value "
        "(per-tensor) or one per feature. threads=0 picks automatically (1 for small tensors). "
        "Releases the GIL. Returns True; with strict=False, returns False instead of raising "
        "when `x` or `out` has a layout the kernel cannot use (not C-contiguous, misaligned, "
        "read-only out, out overlapping x).");
  m.def("from_device", &from_device, py::arg("q"), py::arg("out"), py::arg("host_order"),
        py::arg("device_order"), py::arg("scales"), py::arg("zps"), py::arg("threads") = 0,
        py::arg("strict") = true,
        "Dequantize uint8/uint16 `q` (device layout) into float32 `out` (host layout) in one pass: "
        "(q - zp) * scale. Releases the GIL. `strict` as for to_device.");
  py::class_<PreparedTransform>(m, "PreparedTransform",
                                "One stream's fused transform with its parameters, layout and "
                                "shapes fixed (see hailo_ort.transforms.prepare_to_device).")
      .def(py::init<bool, const std::string&, const std::string&, const std::string&,
                    const std::vector<py::ssize_t>&, const ParamArray&, const ParamArray&, float,
                    float, int>(),
           py::arg("quantize"), py::arg("device_dtype"), py::arg("host_order"),
           py::arg("device_order"), py::arg("in_shape"), py::arg("scales"), py::arg("zps"),
           py::arg("limvals_min") = 0.0f, py::arg("limvals_max") = 0.0f, py::arg("threads") = 0)
      .def("__call__", &PreparedTransform::call, py::arg("x"), py::arg("out") = py::none(),
           "Transform `x` (exactly in_dtype/in_shape, C-contiguous, aligned) into `out` (exactly "
           "out_dtype/out_shape, C-contiguous, aligned, writeable, not overlapping x; None: a new "
           "array) and return out. The GIL is released for large tensors only.")
      .def_property_readonly("in_shape", &PreparedTransform::in_shape)
      .def_property_readonly("out_shape", &PreparedTransform::out_shape)
      .def_property_readonly("in_dtype", &PreparedTransform::in_dtype)
      .def_property_readonly("out_dtype", &PreparedTransform::out_dtype)
      .def_property_readonly("quantizes", &PreparedTransform::quantizes);
  m.def(
      "transform_threads",
      [](int requested, std::size_t nbytes, bool quantize) {
        check_threads(requested);
        return choose_threads(requested, nbytes, nbytes,
                              quantize ? Direction::kQuantize : Direction::kDequantize);
      },
      py::arg("threads"), py::arg("nbytes"), py::arg("quantize") = true,
      "Threads a transform touching `nbytes` bytes (quantizing, or dequantizing) would use when "
      "asked for `threads`.");
  m.def("set_min_bytes_per_thread", &set_min_bytes_per_thread, py::arg("quantize"),
        py::arg("dequantize"),
        "Bytes (read + written) per thread below which a quantizing / dequantizing transform is "
        "not split (0: the built-in default). Process-wide.");
  m.def("min_bytes_per_thread", &min_bytes_per_thread,
        "(quantize, dequantize): bytes per thread below which transforms are not split.");
  m.def("kernel_sets", &kernel_sets,
        "Instruction-set variants of the transform kernels usable on this CPU, best last.");
  m.def("kernel_set", &kernel_set, "The kernel set the transforms use now.");
  m.def("kernel_set_uses_vbmi", &kernel_set_uses_vbmi,
        "Whether the active kernel set takes its AVX-512 VBMI paths (off with "
        "HAILO_ORT_NO_VBMI=1 in the environment).");
  m.def(
      "use_kernel_set",
      [](const std::string& name) {
        try {
          use_kernel_set(name);
        } catch (const std::invalid_argument& e) {
          throw py::value_error(e.what());
        }
      },
      py::arg("name"), "Use this kernel set ('auto': the best one the CPU supports).");
  m.def("hardware_threads", [] { return std::thread::hardware_concurrency(); },
        "Hardware threads reported by the OS (0 if unknown).");
  m.def("pool_workers", &pool_workers,
        "Worker threads the transforms' thread pool has started in this process.");
}

}  // namespace hailo_ort
