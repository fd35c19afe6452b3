// keel::Result<T>: a value or an Error, for failures a user can cause (a bad config,
// a missing segment, an impossible layout). Bugs are assertions, not Results.
//
//   Result<Config> config = load_config("perf/default.toml");
//   if (!config) { std::fprintf(stderr, "keel: %s\n", config.error().message.c_str()); return 2; }
//   use(*config);
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace keel {

// One clear line: where it happened (a file:line:column, a segment name, a node) and why.
struct Error {
  std::string message;
};

// Builds an Error from a place and a reason: "place: reason".
inline Error make_error(std::string_view place, std::string_view reason) {
  std::string message(place);
  message += ": ";
  message += reason;
  return Error{std::move(message)};
}

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::move(value)) {}
  Result(Error error) : state_(std::move(error)) {}

  bool ok() const { return state_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { assert(ok()); return std::get<0>(state_); }
  const T& value() const& { assert(ok()); return std::get<0>(state_); }
  T&& value() && { assert(ok()); return std::get<0>(std::move(state_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const { assert(!ok()); return std::get<1>(state_); }

 private:
  std::variant<T, Error> state_;
};

// Result<void>: success or an Error.
template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), failed_(true) {}

  bool ok() const { return !failed_; }
  explicit operator bool() const { return ok(); }
  const Error& error() const { assert(failed_); return error_; }

 private:
  Error error_;
  bool failed_ = false;
};

}  // namespace keel
