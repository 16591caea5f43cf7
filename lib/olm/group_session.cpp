#include <olm/inbound_group_session.h>
#include <olm/outbound_group_session.h>

#include "common.h"

namespace towns::olm {
using namespace detail;

namespace {
OlmOutboundGroupSession* O(const detail::Memory& m) {
  return live(static_cast<OlmOutboundGroupSession*>(m.get()));
}
OlmInboundGroupSession* I(const detail::Memory& m) { return live(static_cast<OlmInboundGroupSession*>(m.get())); }
}  // namespace

#define OUT_ERR [this] { return olm_outbound_group_session_last_error_code(O(mem_)); }
#define IN_ERR [this] { return olm_inbound_group_session_last_error_code(I(mem_)); }

// ---- OutboundGroupSession

OutboundGroupSession::OutboundGroupSession()
    : mem_(olm_outbound_group_session_size(),
           [](void* p) { olm_clear_outbound_group_session(static_cast<OlmOutboundGroupSession*>(p)); }) {
  olm_outbound_group_session(mem_.get());
}

OutboundGroupSession OutboundGroupSession::create(RandomSource& rng) {
  OutboundGroupSession s;
  SecretBytes random = rng.bytes(olm_init_outbound_group_session_random_length(O(s.mem_)));
  if (olm_init_outbound_group_session(O(s.mem_), random.data(), random.size()) == olm_error()) {
    throw_olm(olm_outbound_group_session_last_error_code(O(s.mem_)), "olm_init_outbound_group_session");
  }
  return s;
}

OutboundGroupSession OutboundGroupSession::unpickle(SecretView pickle_key, std::string_view pickle) {
  OutboundGroupSession s;
  SecretBytes buf = scratch(pickle);
  if (olm_unpickle_outbound_group_session(O(s.mem_), pickle_key.data(), pickle_key.size(), buf.data(),
                                          buf.size()) == olm_error()) {
    throw_olm(olm_outbound_group_session_last_error_code(O(s.mem_)), "olm_unpickle_outbound_group_session");
  }
  return s;
}

std::string OutboundGroupSession::pickle(SecretView pickle_key) const {
  return output_string(
      olm_pickle_outbound_group_session_length(O(mem_)),
      [&](uint8_t* out, size_t n) {
        return olm_pickle_outbound_group_session(O(mem_), pickle_key.data(), pickle_key.size(), out, n);
      },
      OUT_ERR, "olm_pickle_outbound_group_session");
}

std::string OutboundGroupSession::session_id() const {
  return output_string(
      olm_outbound_group_session_id_length(O(mem_)),
      [&](uint8_t* out, size_t n) { return olm_outbound_group_session_id(O(mem_), out, n); }, OUT_ERR,
      "olm_outbound_group_session_id");
}

SecretBytes OutboundGroupSession::session_key() const {
  return output_secret(
      olm_outbound_group_session_key_length(O(mem_)),
      [&](uint8_t* out, size_t n) { return olm_outbound_group_session_key(O(mem_), out, n); }, OUT_ERR,
      "olm_outbound_group_session_key");
}

uint32_t OutboundGroupSession::message_index() const { return olm_outbound_group_session_message_index(O(mem_)); }

std::string OutboundGroupSession::encrypt(std::span<const uint8_t> plaintext) {
  return output_string(
      olm_group_encrypt_message_length(O(mem_), plaintext.size()),
      [&](uint8_t* out, size_t n) { return olm_group_encrypt(O(mem_), plaintext.data(), plaintext.size(), out, n); },
      OUT_ERR, "olm_group_encrypt");
}

// ---- InboundGroupSession

InboundGroupSession::InboundGroupSession()
    : mem_(olm_inbound_group_session_size(),
           [](void* p) { olm_clear_inbound_group_session(static_cast<OlmInboundGroupSession*>(p)); }) {
  olm_inbound_group_session(mem_.get());
}

InboundGroupSession InboundGroupSession::create(SecretView session_key) {
  InboundGroupSession s;
  SecretBytes buf(session_key.span());
  if (olm_init_inbound_group_session(I(s.mem_), buf.data(), buf.size()) == olm_error()) {
    throw_olm(olm_inbound_group_session_last_error_code(I(s.mem_)), "olm_init_inbound_group_session");
  }
  return s;
}

InboundGroupSession InboundGroupSession::import_session(SecretView exported_key) {
  InboundGroupSession s;
  SecretBytes buf(exported_key.span());
  if (olm_import_inbound_group_session(I(s.mem_), buf.data(), buf.size()) == olm_error()) {
    throw_olm(olm_inbound_group_session_last_error_code(I(s.mem_)), "olm_import_inbound_group_session");
  }
  return s;
}

InboundGroupSession InboundGroupSession::unpickle(SecretView pickle_key, std::string_view pickle) {
  InboundGroupSession s;
  SecretBytes buf = scratch(pickle);
  if (olm_unpickle_inbound_group_session(I(s.mem_), pickle_key.data(), pickle_key.size(), buf.data(),
                                         buf.size()) == olm_error()) {
    throw_olm(olm_inbound_group_session_last_error_code(I(s.mem_)), "olm_unpickle_inbound_group_session");
  }
  return s;
}

std::string InboundGroupSession::pickle(SecretView pickle_key) const {
  return output_string(
      olm_pickle_inbound_group_session_length(I(mem_)),
      [&](uint8_t* out, size_t n) {
        return olm_pickle_inbound_group_session(I(mem_), pickle_key.data(), pickle_key.size(), out, n);
      },
      IN_ERR, "olm_pickle_inbound_group_session");
}

std::string InboundGroupSession::session_id() const {
  return output_string(
      olm_inbound_group_session_id_length(I(mem_)),
      [&](uint8_t* out, size_t n) { return olm_inbound_group_session_id(I(mem_), out, n); }, IN_ERR,
      "olm_inbound_group_session_id");
}

uint32_t InboundGroupSession::first_known_index() const { return olm_inbound_group_session_first_known_index(I(mem_)); }

bool InboundGroupSession::is_verified() const { return olm_inbound_group_session_is_verified(I(mem_)) != 0; }

SecretBytes InboundGroupSession::export_session(uint32_t message_index) const {
  return output_secret(
      olm_export_inbound_group_session_length(I(mem_)),
      [&](uint8_t* out, size_t n) { return olm_export_inbound_group_session(I(mem_), out, n, message_index); },
      IN_ERR, "olm_export_inbound_group_session");
}

GroupPlaintext InboundGroupSession::decrypt(std::string_view message) {
  SecretBytes buf = scratch(message);
  size_t max = olm_group_decrypt_max_plaintext_length(I(mem_), buf.data(), buf.size());
  if (max == olm_error()) {
    throw_olm(olm_inbound_group_session_last_error_code(I(mem_)), "olm_group_decrypt_max_plaintext_length");
  }
  buf = scratch(message);  // the length query decoded the copy in place
  GroupPlaintext result;
  result.plaintext = output_secret(
      max,
      [&](uint8_t* out, size_t n) {
        return olm_group_decrypt(I(mem_), buf.data(), buf.size(), out, n, &result.message_index);
      },
      IN_ERR, "olm_group_decrypt");
  return result;
}

}  // namespace towns::olm
