// The block cache of csrc/cpu/arena.h as a NumPy memory handler (NEP 49): while it is NumPy's
// handler (fastlayers.memory.arena(), which the models' passes enter), arrays of at least
// arena::kMinBytes take their data from the cache and give it back when freed; smaller ones use
// malloc as NumPy's default handler does. An array remembers the handler that allocated it, so one
// made here and freed after the context is still returned to the cache.
#include <pybind11/pybind11.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "bindings/cpu_bindings.h"
#include "cpu/arena.h"

namespace py = pybind11;

namespace fastlayers::bindings {

namespace {

namespace arena = cpu::arena;

// NumPy's PyDataMem_Handler (numpy/ndarraytypes.h, version 1; NumPy >= 1.22), mirrored so the
// build needs no NumPy headers. The layout is part of NumPy's stable C API.
struct DataMemAllocator {
  void* ctx;
  void* (*malloc)(void* ctx, std::size_t size);
  void* (*calloc)(void* ctx, std::size_t nelem, std::size_t elsize);
  void* (*realloc)(void* ctx, void* ptr, std::size_t new_size);
  void (*free)(void* ctx, void* ptr, std::size_t size);
};
struct DataMemHandler {
  char name[127];
  std::uint8_t version;
  DataMemAllocator allocator;
};

void* arena_malloc(void*, std::size_t size) {
  return size >= arena::kMinBytes ? arena::acquire(size, false) : std::malloc(size);
}

void* arena_calloc(void*, std::size_t nelem, std::size_t elsize) {
  if (elsize != 0 && nelem > SIZE_MAX / elsize) return nullptr;
  const std::size_t size = nelem * elsize;
  return size >= arena::kMinBytes ? arena::acquire(size, true) : std::calloc(nelem, elsize);
}

// A block of ours moves to a new home when it must grow or falls below the arena's sizes; a
// malloc'd one stays with realloc (free below tells them apart by asking the cache).
void* arena_realloc(void*, void* ptr, std::size_t new_size) {
  const std::size_t have = ptr != nullptr ? arena::block_size(ptr) : 0;
  if (have == 0) return std::realloc(ptr, new_size);
  if (new_size >= arena::kMinBytes && new_size <= have) return ptr;
  void* q = arena_malloc(nullptr, new_size);
  if (q == nullptr) return nullptr;  // ptr stays valid, as realloc promises
  std::memcpy(q, ptr, new_size < have ? new_size : have);
  arena::release(ptr);
  return q;
}

// Blocks of ours are never smaller than kMinBytes (realloc above moves them out first), so a
// smaller `size` is malloc's without a lookup.
void arena_free(void*, void* ptr, std::size_t size) {
  if (ptr == nullptr) return;
  if (size >= arena::kMinBytes && arena::release(ptr)) return;
  std::free(ptr);
}

DataMemHandler handler = {"fastlayers_arena", 1, {nullptr, arena_malloc, arena_calloc, arena_realloc, arena_free}};

// PyDataMem_SetHandler, slot 304 of NumPy's C API table (numpy/__multiarray_api.h, since 1.22),
// looked up the way import_array() does.
using SetHandlerFn = PyObject* (*)(PyObject*);
SetHandlerFn numpy_set_handler() {
  py::module_ core;
  try {
    core = py::module_::import("numpy._core._multiarray_umath");  // NumPy 2
  } catch (py::error_already_set&) {
    core = py::module_::import("numpy.core._multiarray_umath");  // NumPy 1.x
  }
  py::object api = core.attr("_ARRAY_API");
  void** table = static_cast<void**>(PyCapsule_GetPointer(api.ptr(), nullptr));
  if (table == nullptr) throw py::error_already_set();
  return reinterpret_cast<SetHandlerFn>(table[304]);
}

}  // namespace

void bind_cpu_arena(py::module_& m) {
  m.def("arena_handler", [] { return py::capsule(&handler, "mem_handler"); },
        "NumPy memory handler (capsule) that takes large arrays from fastlayers' block cache.");
  m.def("arena_set_handler", [](py::object h) {
    static const SetHandlerFn set = numpy_set_handler();
    PyObject* old = set(h.ptr());
    if (old == nullptr) throw py::error_already_set();
    return py::reinterpret_steal<py::object>(old);
  }, "PyDataMem_SetHandler: makes h NumPy's handler in this context; returns the previous one.");
  m.def("arena_stats", [] {
    const arena::Stats s = arena::stats();
    py::dict d;
    d["in_use_bytes"] = s.in_use_bytes;
    d["cached_bytes"] = s.cached_bytes;
    d["peak_bytes"] = s.peak_bytes;
    d["hits"] = s.hits;
    d["misses"] = s.misses;
    d["limit_bytes"] = arena::limit();
    d["min_block_bytes"] = arena::kMinBytes;
    return d;
  });
  m.def("arena_release_free", &arena::release_free);
  m.def("arena_set_limit", &arena::set_limit);
}

}  // namespace fastlayers::bindings
