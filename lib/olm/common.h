// Internal helpers shared by the libolm wrappers.
#pragma once

#include <olm/error.h>
#include <olm/olm.h>

#include <string>
#include <string_view>

#include "towns/crypto/encoding.h"
#include "towns/crypto/secret.h"
#include "towns/error.h"
#include "towns/olm/olm.h"

namespace towns::olm::detail {

[[noreturn]] void throw_olm(OlmErrorCode code, const char* operation);

// A copy of an input that libolm will overwrite; wiped when it goes.
inline SecretBytes scratch(std::string_view s) { return SecretBytes(s); }

[[noreturn]] void throw_moved_from();

template <typename T>
T* live(T* p) {
  if (p == nullptr) throw_moved_from();
  return p;
}

// Calls fn(buffer, length) with a string of `length` bytes and shrinks it to
// what fn reports; fn returning olm_error() throws with the given error code.
template <typename Fn, typename ErrFn>
std::string output_string(size_t length, Fn&& fn, ErrFn&& err, const char* op) {
  std::string out(length, '\0');
  size_t n = fn(reinterpret_cast<uint8_t*>(out.data()), out.size());
  if (n == olm_error()) throw_olm(err(), op);
  out.resize(n);
  return out;
}

template <typename Fn, typename ErrFn>
SecretBytes output_secret(size_t length, Fn&& fn, ErrFn&& err, const char* op) {
  SecretBytes out(length);
  size_t n = fn(out.data(), out.size());
  if (n == olm_error()) throw_olm(err(), op);
  out.resize(n);
  return out;
}

}  // namespace towns::olm::detail
