// signal/result: a value-or-error return for the signalling hot path, where malformed input
// from the network is routine and must not cost an exception.
#pragma once
#include <optional>
#include <string>
#include <utility>

namespace p2p::signal {

template <class T>
class Result {
 public:
  static Result ok(T value) {
    Result r;
    r.value_.emplace(std::move(value));
    return r;
  }
  static Result fail(std::string error) {
    Result r;
    r.error_ = std::move(error);
    return r;
  }
  explicit operator bool() const { return value_.has_value(); }
  const T& value() const& { return *value_; }
  T& value() & { return *value_; }
  T&& value() && { return std::move(*value_); }
  const T* operator->() const { return &*value_; }
  const std::string& error() const { return error_; }

 private:
  Result() = default;
  std::optional<T> value_;
  std::string error_;
};

}  // namespace p2p::signal
