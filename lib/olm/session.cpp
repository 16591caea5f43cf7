#include "common.h"

namespace towns::olm {
using namespace detail;

namespace {
OlmSession* P(const detail::Memory& m) { return live(static_cast<OlmSession*>(m.get())); }

bool read_varint(std::span<const uint8_t>& in, uint64_t& out) {
  out = 0;
  for (int shift = 0; shift < 64 && !in.empty(); shift += 7) {
    uint8_t b = in.front();
    in = in.subspan(1);
    out |= uint64_t{b & 0x7fu} << shift;
    if ((b & 0x80) == 0) return true;
  }
  return false;
}

// libolm 3.2.13 dereferences a null pointer when a pre-key message lacks its
// identity-key field and the caller names the sender (olm_create_inbound_session_from).
// So we check the envelope ourselves first: version 3, then one-time key (field 1),
// base key (2) and identity key (3) of 32 bytes each, and a non-empty inner message (4).
void check_prekey_message(std::string_view message) {
  std::vector<uint8_t> raw;
  try {
    raw = crypto::base64_decode(message, crypto::Base64Padding::kNone);
  } catch (const Error&) {
    throw Error(ErrorCode::OLM_INVALID_BASE64, "pre-key message is not unpadded base64");
  }
  std::span<const uint8_t> in(raw);
  if (in.empty() || in.front() != 3) {
    throw Error(ErrorCode::OLM_BAD_MESSAGE_VERSION, "pre-key message version is not 3");
  }
  in = in.subspan(1);
  bool seen[5] = {};
  while (!in.empty()) {
    uint64_t tag = 0;
    if (!read_varint(in, tag)) break;
    uint64_t field = tag >> 3;
    if ((tag & 7) == 0) {
      uint64_t ignored;
      if (!read_varint(in, ignored)) break;
      continue;
    }
    if ((tag & 7) != 2) break;
    uint64_t len = 0;
    if (!read_varint(in, len) || len > in.size()) break;
    if (field >= 1 && field <= 3 && len == 32) seen[field] = true;
    if (field == 4 && len > 0) seen[4] = true;
    in = in.subspan(len);
  }
  if (!(seen[1] && seen[2] && seen[3] && seen[4])) {
    throw Error(ErrorCode::OLM_BAD_MESSAGE_FORMAT, "pre-key message lacks a key or its inner message");
  }
}
}  // namespace

Session::Session() : mem_(olm_session_size(), [](void* p) { olm_clear_session(static_cast<OlmSession*>(p)); }) {
  olm_session(mem_.get());
}

OlmSession* Session::raw() const { return P(mem_); }

#define SESSION_ERR [this] { return olm_session_last_error_code(P(mem_)); }

Session Session::create_outbound(const Account& account, std::string_view their_identity_key,
                                 std::string_view their_one_time_key, RandomSource& rng) {
  Session s;
  SecretBytes random = rng.bytes(olm_create_outbound_session_random_length(P(s.mem_)));
  if (olm_create_outbound_session(P(s.mem_), account.raw(), their_identity_key.data(), their_identity_key.size(),
                                  their_one_time_key.data(), their_one_time_key.size(), random.data(),
                                  random.size()) == olm_error()) {
    throw_olm(olm_session_last_error_code(P(s.mem_)), "olm_create_outbound_session");
  }
  return s;
}

Session Session::create_inbound(Account& account, std::string_view prekey_message) {
  check_prekey_message(prekey_message);
  Session s;
  SecretBytes buf = scratch(prekey_message);
  if (olm_create_inbound_session(P(s.mem_), account.raw(), buf.data(), buf.size()) == olm_error()) {
    throw_olm(olm_session_last_error_code(P(s.mem_)), "olm_create_inbound_session");
  }
  return s;
}

Session Session::create_inbound_from(Account& account, std::string_view their_identity_key,
                                     std::string_view prekey_message) {
  check_prekey_message(prekey_message);
  Session s;
  SecretBytes buf = scratch(prekey_message);
  if (olm_create_inbound_session_from(P(s.mem_), account.raw(), their_identity_key.data(),
                                      their_identity_key.size(), buf.data(), buf.size()) == olm_error()) {
    throw_olm(olm_session_last_error_code(P(s.mem_)), "olm_create_inbound_session_from");
  }
  return s;
}

Session Session::unpickle(SecretView pickle_key, std::string_view pickle) {
  Session s;
  SecretBytes buf = scratch(pickle);
  if (olm_unpickle_session(P(s.mem_), pickle_key.data(), pickle_key.size(), buf.data(), buf.size()) ==
      olm_error()) {
    throw_olm(olm_session_last_error_code(P(s.mem_)), "olm_unpickle_session");
  }
  return s;
}

std::string Session::pickle(SecretView pickle_key) const {
  return output_string(
      olm_pickle_session_length(P(mem_)),
      [&](uint8_t* out, size_t n) { return olm_pickle_session(P(mem_), pickle_key.data(), pickle_key.size(), out, n); },
      SESSION_ERR, "olm_pickle_session");
}

std::string Session::session_id() const {
  return output_string(
      olm_session_id_length(P(mem_)), [&](uint8_t* out, size_t n) { return olm_session_id(P(mem_), out, n); },
      SESSION_ERR, "olm_session_id");
}

bool Session::has_received_message() const { return olm_session_has_received_message(P(mem_)) != 0; }

bool Session::matches_inbound(std::string_view prekey_message) const {
  check_prekey_message(prekey_message);
  SecretBytes buf = scratch(prekey_message);
  size_t r = olm_matches_inbound_session(P(mem_), buf.data(), buf.size());
  if (r == olm_error()) throw_olm(olm_session_last_error_code(P(mem_)), "olm_matches_inbound_session");
  return r == 1;
}

bool Session::matches_inbound_from(std::string_view their_identity_key, std::string_view prekey_message) const {
  check_prekey_message(prekey_message);
  SecretBytes buf = scratch(prekey_message);
  size_t r = olm_matches_inbound_session_from(P(mem_), their_identity_key.data(), their_identity_key.size(),
                                              buf.data(), buf.size());
  if (r == olm_error()) throw_olm(olm_session_last_error_code(P(mem_)), "olm_matches_inbound_session_from");
  return r == 1;
}

std::string Session::describe() const {
  std::string out(600, '\0');
  olm_session_describe(P(mem_), out.data(), out.size());
  out.resize(std::char_traits<char>::length(out.c_str()));
  return out;
}

OlmMessage Session::encrypt(std::span<const uint8_t> plaintext, RandomSource& rng) {
  OlmMessage m;
  m.type = olm_encrypt_message_type(P(mem_));
  SecretBytes random = rng.bytes(olm_encrypt_random_length(P(mem_)));
  m.body = output_string(
      olm_encrypt_message_length(P(mem_), plaintext.size()),
      [&](uint8_t* out, size_t n) {
        return olm_encrypt(P(mem_), plaintext.data(), plaintext.size(), random.data(), random.size(), out, n);
      },
      SESSION_ERR, "olm_encrypt");
  return m;
}

SecretBytes Session::decrypt(size_t message_type, std::string_view message) {
  if (message_type == 0) check_prekey_message(message);
  SecretBytes buf = scratch(message);
  size_t max = olm_decrypt_max_plaintext_length(P(mem_), message_type, buf.data(), buf.size());
  if (max == olm_error()) throw_olm(olm_session_last_error_code(P(mem_)), "olm_decrypt_max_plaintext_length");
  buf = scratch(message);  // the length query decoded the copy in place
  return output_secret(
      max, [&](uint8_t* out, size_t n) { return olm_decrypt(P(mem_), message_type, buf.data(), buf.size(), out, n); },
      SESSION_ERR, "olm_decrypt");
}

}  // namespace towns::olm
