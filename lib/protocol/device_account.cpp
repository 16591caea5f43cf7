#include "common/parallel.h"
#include "olm/olm_delegate.h"
#include "towns/crypto/encoding.h"
#include "towns/protocol/encryption_device.h"

namespace towns {

using crypto::SecretBytes;

void check_payload_length(std::string_view payload, std::string_view source) {
  size_t n = utf16_length(payload);
  if (n > kMaxPlaintextLength) {
    throw Error(ErrorCode::PAYLOAD_TOO_LARGE, std::string(source) + ": message too long (" + std::to_string(n) +
                                                  "); the maximum for an encrypted message is " +
                                                  std::to_string(kMaxPlaintextLength));
  }
}

DelegateAccount& DeviceAccount::account() const {
  if (!account_) throw Error(ErrorCode::NOT_INITIALIZED, "the encryption device is not initialised");
  return *account_;
}

void DeviceAccount::save() {
  StoreChanges changes;
  changes.account = account().pickle(ctx_.pickle_key);
  ctx_.store.save_changes(changes);
}

void DeviceAccount::set_account(std::unique_ptr<DelegateAccount> account) {
  account_ = std::move(account);
  if (account_->unpublished_fallback_key().empty()) {
    account_->generate_fallback_key(ctx_.rng);
    save();
  }
  fallback_key_ = account_->unpublished_fallback_key();
  device_key_ = account_->curve25519_key();
  ed25519_key_ = account_->ed25519_key();
}

void DeviceAccount::load_or_create() {
  MutexLock l(mu_);
  account_.reset();
  if (auto pickled = ctx_.store.get_account()) {
    set_account(ctx_.delegate.unpickle_account(ctx_.pickle_key, *pickled));
  } else {
    account_ = ctx_.delegate.create_account(ctx_.rng);
    save();
    set_account(std::move(account_));
  }
}

void DeviceAccount::adopt(std::unique_ptr<DelegateAccount> account) {
  MutexLock l(mu_);
  set_account(std::move(account));
}

std::string DeviceAccount::pickle() const {
  MutexLock l(mu_);
  return account().pickle(ctx_.pickle_key);
}

bool DeviceAccount::initialized() const {
  MutexLock l(mu_);
  return account_ != nullptr;
}

std::string DeviceAccount::device_key() const {
  MutexLock l(mu_);
  account();
  return device_key_;
}

std::string DeviceAccount::fallback_key() const {
  MutexLock l(mu_);
  account();
  return fallback_key_;
}

std::string DeviceAccount::ed25519_key() const {
  MutexLock l(mu_);
  account();
  return ed25519_key_;
}

UserDevice DeviceAccount::user_device() const {
  MutexLock l(mu_);
  account();
  return {device_key_, fallback_key_};
}

std::string DeviceAccount::sign(std::string_view message) const {
  MutexLock l(mu_);
  return account().sign(message);
}

void DeviceAccount::mark_keys_as_published() {
  MutexLock l(mu_);
  account().mark_keys_as_published();
  save();
}

void DeviceAccount::forget_old_fallback_key() {
  MutexLock l(mu_);
  account().forget_old_fallback_key();
  save();
}

std::vector<DeviceCiphertext> DeviceAccount::encrypt_to_devices(std::string_view payload,
                                                                const std::vector<UserDevice>& devices,
                                                                unsigned threads) const {
  return std::move(encrypt_each_to_devices({payload}, devices, threads).at(0));
}

std::vector<std::vector<DeviceCiphertext>> DeviceAccount::encrypt_each_to_devices(
    const std::vector<std::string_view>& payloads, const std::vector<UserDevice>& devices, unsigned threads) const {
  for (auto payload : payloads) check_payload_length(payload, "encryptUsingFallbackKey");
  MutexLock l(mu_);
  const DelegateAccount& acct = account();
  size_t n = payloads.size() * devices.size();
  std::vector<SecretBytes> seeds;
  seeds.reserve(n);
  for (size_t i = 0; i < n; ++i) seeds.push_back(ctx_.rng.bytes(32));
  std::vector<std::vector<DeviceCiphertext>> out(payloads.size(), std::vector<DeviceCiphertext>(devices.size()));
  // The account is only read here (encrypt_to_device is const), and nothing
  // changes it while mu_ is held, so the threads share it.
  parallel_for(n, threads, [&](size_t i) {
    size_t p = i / devices.size(), d = i % devices.size();
    try {
      crypto::SeededRandom r(seeds[i].span());
      out[p][d].value = acct.encrypt_to_device(devices[d].device_key, devices[d].fallback_key,
                                               crypto::as_bytes(payloads[p]), r);
    } catch (const Error& e) {
      out[p][d].error = e;
    }
  });
  return out;
}

SecretBytes DeviceAccount::decrypt_prekey_message(std::string_view ciphertext, std::string_view their_identity_key) {
  check_payload_length(ciphertext, "decryptMessage");  // before NOT_INITIALIZED, as always
  auto out = decrypt_prekey_messages({{ciphertext, their_identity_key}}, 1);
  if (out[0].error) throw *out[0].error;
  return std::move(*out[0].value);
}

std::vector<Outcome<SecretBytes>> DeviceAccount::decrypt_prekey_messages(
    const std::vector<std::pair<std::string_view, std::string_view>>& messages, unsigned threads) {
  std::vector<Outcome<SecretBytes>> out(messages.size());
  for (size_t i = 0; i < messages.size(); ++i) {
    try {
      check_payload_length(messages[i].first, "decryptMessage");
    } catch (const Error& e) {
      out[i].error = e;
    }
  }
  MutexLock l(mu_);
  DelegateAccount& acct = account();
  // With fallback keys, making an inbound session leaves the account as it was
  // (no one-time key is used up), so nothing is written back; the libolm
  // account is only read, so threads share it while mu_ is held (another
  // delegate's account is used one message at a time).
  if (!decrypts_without_writing(acct)) threads = 1;
  parallel_for(messages.size(), threads, [&](size_t i) {
    if (out[i].error) return;
    auto [ciphertext, their_identity_key] = messages[i];
    try {
      out[i].value = acct.decrypt_prekey_message(their_identity_key, ciphertext);
    } catch (const Error& e) {
      out[i].error = is_olm_error(e.code()) ? Error(ErrorCode::DECRYPTION_FAILED, "error decrypting pre-key message: " +
                                                                                     std::string(e.code_name()))
                                            : e;
    }
  });
  return out;
}

}  // namespace towns
