// Overflow-checked int64 size arithmetic, for sizes derived from caller-given geometry (workspace
// sizes and the like). A result that does not fit in int64, or a negative operand, makes the value
// invalid, and it stays invalid through later operations: check once at the end with ok().
#pragma once
#include "common/types.h"

namespace fastlayers {

class CheckedSize {
 public:
  constexpr CheckedSize(index_t v = 0) : v_(v), ok_(v >= 0) {}  // NOLINT: implicit on purpose

  bool ok() const { return ok_; }
  index_t value() const { return ok_ ? v_ : -1; }  // -1 when the arithmetic overflowed

  friend CheckedSize operator+(CheckedSize a, CheckedSize b) {
    CheckedSize r;
    r.ok_ = a.ok_ && b.ok_ && !__builtin_add_overflow(a.v_, b.v_, &r.v_);
    return r;
  }
  friend CheckedSize operator*(CheckedSize a, CheckedSize b) {
    CheckedSize r;
    r.ok_ = a.ok_ && b.ok_ && !__builtin_mul_overflow(a.v_, b.v_, &r.v_);
    return r;
  }
  CheckedSize& operator+=(CheckedSize b) { return *this = *this + b; }
  CheckedSize& operator*=(CheckedSize b) { return *this = *this * b; }

 private:
  index_t v_;
  bool ok_;
};

// a * b, or false when it would overflow (or either is negative).
inline bool mul_fits(index_t a, index_t b, index_t& out) {
  return a >= 0 && b >= 0 && !__builtin_mul_overflow(a, b, &out);
}

}  // namespace fastlayers
