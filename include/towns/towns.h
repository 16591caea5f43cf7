/* towns.h: the C ABI of towns-e2ee (C99), for other languages to link
 * libtowns-e2ee.so. docs/c-api.md explains it with an example.
 *
 * Handles: towns_store, towns_crypto (towns::GroupEncryptionCrypto),
 * towns_key_exchange (towns::KeyExchange) and towns_stream_solicitations
 * (towns::StreamSolicitations) are opaque. Each is made by a towns_*_create /
 * towns_store_open_* function and released by its towns_*_free; free(NULL) does
 * nothing. A handle keeps alive what it uses: a crypto keeps its store, a key
 * exchange its crypto, so handles may be freed in any order.
 *
 * Errors: every fallible function returns towns_status: TOWNS_OK (0) or one of
 * the TOWNS_E_* codes below (towns::ErrorCode, with stable values: new codes
 * are only ever appended). towns_last_error_message() gives the message of the
 * last failure on the calling thread. No C++ exception crosses this boundary;
 * a NULL where a value is required is TOWNS_E_INVALID_ARGUMENT. On failure, the
 * out-parameters are left empty (NULL / 0), with two exceptions said at their
 * functions: towns_crypto_decrypt_group_event's *message_index (-1) and
 * towns_crypto_decrypt_group_events' results (each {the call's status, empty,
 * -1, empty}). A NULL out-parameter is refused before anything is changed.
 *
 * Memory: bytes in are (const uint8_t *data, size_t len) (data may be NULL when
 * len is 0); strings in are NUL-terminated UTF-8. Bytes out come in a
 * towns_buffer, text out in a towns_string (NUL-terminated), both owned by the
 * caller, who releases them with towns_buffer_free / towns_string_free, which
 * wipe the bytes first (decrypted plaintext and exported keys come out this
 * way). An out struct is overwritten, not freed, by the call: pass an empty one.
 *
 * Wire messages cross as their protobuf bytes: EncryptedData,
 * UserInboxPayload.GroupEncryptionSessions, MemberPayload.KeySolicitation and
 * MemberPayload.KeyFulfillment of the Towns protocol. A malformed one is
 * TOWNS_E_INVALID_ARGUMENT. Lists and compound results are JSON text with the
 * schemas written at each function (keys in camelCase). Enums are int-sized
 * (each has a *_MAX_ENUM member, which is no value); an unknown value is
 * TOWNS_E_INVALID_ARGUMENT.
 *
 * Threads: a towns_store and a towns_crypto may be used from several threads at
 * once, once created (as GroupEncryptionCrypto after init); a crypto's
 * share_host callbacks are then called from the threads that encrypt. A
 * towns_key_exchange and a towns_stream_solicitations are not thread-safe: one
 * thread at a time drives one of them; the host callbacks are made on that
 * thread from inside towns_key_exchange_run / _tick / _advance (and may call
 * back into the library, including into the same key exchange's enqueue
 * functions). From such a callback, a run / tick / advance of the same key
 * exchange is refused (INVALID_ARGUMENT), and towns_key_exchange_free of it is
 * deferred: the engine stops after the current unit of work and is freed when
 * the outer run / tick / advance returns (any other call on it meanwhile is
 * INVALID_ARGUMENT). towns_last_error_message is per thread.
 */
#ifndef TOWNS_TOWNS_H
#define TOWNS_TOWNS_H

#include <stddef.h>
#include <stdint.h>

#include "towns/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Status codes */

typedef int towns_status;

/* TOWNS_E_<name> = the position of towns::ErrorCode::<name> plus one. Fixed:
 * a new code is only ever appended, after the last one. */
#define TOWNS_OK 0
#define TOWNS_E_INVALID_ARGUMENT 1
#define TOWNS_E_UNKNOWN_COMMAND 2
#define TOWNS_E_NOT_INITIALIZED 3
#define TOWNS_E_INTERNAL 4
#define TOWNS_E_LIMIT_EXCEEDED 5
#define TOWNS_E_GROUP_DECRYPTION_MISSING_FIELDS 6
#define TOWNS_E_GROUP_DECRYPTION_UNSET_ALGORITHM 7
#define TOWNS_E_GROUP_DECRYPTION_UNKNOWN_ALGORITHM 8
#define TOWNS_E_GROUP_DECRYPTION_INVALID_VERSION 9
#define TOWNS_E_HYBRID_GROUP_DECRYPTION_MISSING_FIELDS 10
#define TOWNS_E_SESSION_NOT_FOUND 11
#define TOWNS_E_DECRYPTION_FAILED 12
#define TOWNS_E_PAYLOAD_TOO_LARGE 13
#define TOWNS_E_EMPTY_PAYLOAD 14
#define TOWNS_E_IMPORT_FAILED 15
#define TOWNS_E_REPLAY 16
#define TOWNS_E_UNKNOWN_ALGORITHM 17
#define TOWNS_E_BAD_ENCODING 18
#define TOWNS_E_OLM_NOT_ENOUGH_RANDOM 19
#define TOWNS_E_OLM_OUTPUT_BUFFER_TOO_SMALL 20
#define TOWNS_E_OLM_BAD_MESSAGE_VERSION 21
#define TOWNS_E_OLM_BAD_MESSAGE_FORMAT 22
#define TOWNS_E_OLM_BAD_MESSAGE_MAC 23
#define TOWNS_E_OLM_BAD_MESSAGE_KEY_ID 24
#define TOWNS_E_OLM_INVALID_BASE64 25
#define TOWNS_E_OLM_BAD_ACCOUNT_KEY 26
#define TOWNS_E_OLM_UNKNOWN_PICKLE_VERSION 27
#define TOWNS_E_OLM_CORRUPTED_PICKLE 28
#define TOWNS_E_OLM_BAD_SESSION_KEY 29
#define TOWNS_E_OLM_UNKNOWN_MESSAGE_INDEX 30
#define TOWNS_E_OLM_BAD_LEGACY_ACCOUNT_PICKLE 31
#define TOWNS_E_OLM_BAD_SIGNATURE 32
#define TOWNS_E_OLM_INPUT_BUFFER_TOO_SMALL 33
#define TOWNS_E_OLM_SAS_THEIR_KEY_NOT_SET 34
#define TOWNS_E_OLM_PICKLE_EXTRA_DATA 35
#define TOWNS_E_OLM_UNKNOWN_ERROR 36
#define TOWNS_E_STORE_ERROR 37
#define TOWNS_E_STORE_WRONG_PICKLE_KEY 38
#define TOWNS_E_STORE_CORRUPT 39
#define TOWNS_E_STORE_NEWER_SCHEMA 40
#define TOWNS_E_STORE_BUSY 41
/* The highest code of this version of the header. */
#define TOWNS_E_LAST TOWNS_E_STORE_BUSY

/* "OK", or the code's name without the prefix ("SESSION_NOT_FOUND"); NULL for
 * a value that is no code. Static storage. */
TOWNS_API const char *towns_status_name(towns_status status);

/* The message of the last failure on the calling thread ("" after a success).
 * Valid until the next towns_* call on this thread. Never NULL. Messages never
 * hold key material or plaintext. */
TOWNS_API const char *towns_last_error_message(void);

/* The library's version ("0.1.0"). Static storage. */
TOWNS_API const char *towns_version(void);

/* ---- Buffers */

/* Bytes out. Owned by the caller; release with towns_buffer_free. */
typedef struct {
  uint8_t *data;
  size_t len;
} towns_buffer;

/* NUL-terminated text out (len excludes the NUL). Owned by the caller; release
 * with towns_string_free. */
typedef struct {
  char *data;
  size_t len;
} towns_string;

/* Bytes in, for lists of messages. */
typedef struct {
  const uint8_t *data;
  size_t len;
} towns_bytes;

/* Wipe the bytes, free them and reset the struct to empty. NULL, or an empty
 * struct, is fine. */
TOWNS_API void towns_buffer_free(towns_buffer *buffer);
TOWNS_API void towns_string_free(towns_string *string);

/* ---- Common values */

typedef enum {
  TOWNS_ALGORITHM_GROUP_ENCRYPTION = 0,       /* megolm: "r.group-encryption.v1.aes-sha2" */
  TOWNS_ALGORITHM_HYBRID_GROUP_ENCRYPTION = 1, /* "grpaes" */
  TOWNS_ALGORITHM_MAX_ENUM = 0x7fffffff /* not a value: makes the enum an int of any value */
} towns_algorithm;

/* The miniblock a new hybrid (grpaes) session is bound to. */
typedef struct {
  int64_t miniblock_num;
  const uint8_t *miniblock_hash;
  size_t miniblock_hash_len;
} towns_miniblock_info;

typedef struct towns_store towns_store;
typedef struct towns_crypto towns_crypto;
typedef struct towns_key_exchange towns_key_exchange;
typedef struct towns_stream_solicitations towns_stream_solicitations;
typedef struct towns_key_exchange_host towns_key_exchange_host;

/* ---- Stores (include/towns/store/) */

typedef enum {
  TOWNS_STORE_CREATE = 0, /* a new store; STORE_ERROR when the path exists */
  TOWNS_STORE_OPEN = 1,   /* an existing store; STORE_ERROR when it does not exist */
  TOWNS_STORE_EITHER = 2, /* the existing store, or a new one */
  TOWNS_STORE_OPEN_MODE_MAX_ENUM = 0x7fffffff
} towns_store_open_mode;

/* A SQLite store file (towns::SqliteCryptoStore, default options). The pickle
 * key protects the file (not empty): STORE_WRONG_PICKLE_KEY, STORE_CORRUPT,
 * STORE_NEWER_SCHEMA, STORE_ERROR. */
TOWNS_API towns_status towns_store_open_sqlite(const char *path, const uint8_t *pickle_key, size_t pickle_key_len,
                                               towns_store_open_mode mode, towns_store **out);
/* A store in process memory (towns::MemoryCryptoStore). */
TOWNS_API towns_status towns_store_create_memory(towns_store **out);
TOWNS_API void towns_store_free(towns_store *store);

/* ---- The device (towns::GroupEncryptionCrypto) */

/* Creates and initialises a device over the store: its stored account, or a new
 * one, or (exported_device not NULL) the device recreated from
 * towns_crypto_export_device's bytes. pickle_key protects every pickle (not
 * empty; OLM_BAD_ACCOUNT_KEY when the stored account does not open with it;
 * INVALID_ARGUMENT for bytes that are not an ExportedDevice, IMPORT_FAILED for
 * a well-formed export that does not open).
 * share_host: NULL, or the host whose users' devices receive every new outbound
 * session (towns::StreamSessionSharer: the stream's users entitled to key
 * exchange, our own device skipped), and which gives the miniblock of a new
 * hybrid session; a device driven by a towns_key_exchange passes the same host.
 * A share_host needs only what sharing calls: send_group_encryption_sessions,
 * user_devices, and users_entitled_to_key_exchange or stream_members (else
 * INVALID_ARGUMENT); get_miniblock_info is optional (without it a new hybrid
 * session needs its miniblock given to towns_crypto_ensure_outbound_session);
 * the other callbacks are not called and may be NULL.
 * The struct is copied; its user_data must outlive the crypto. With NULL, new
 * sessions are not shared (share them with towns_build_group_encryption_sessions)
 * and a new hybrid session needs its miniblock in
 * towns_crypto_ensure_outbound_session. */
TOWNS_API towns_status towns_crypto_create(towns_store *store, const uint8_t *pickle_key, size_t pickle_key_len,
                                           const uint8_t *exported_device, size_t exported_device_len,
                                           const towns_key_exchange_host *share_host, towns_crypto **out);
TOWNS_API void towns_crypto_free(towns_crypto *crypto);

/* Threads used by the batch operations (1: sequential; 0 counts as 1). */
TOWNS_API towns_status towns_crypto_set_parallelism(towns_crypto *crypto, unsigned threads);

/* Our device's curve25519 key and fallback key (unpadded base64), as published. */
TOWNS_API towns_status towns_crypto_device_keys(towns_crypto *crypto, towns_string *device_key,
                                                towns_string *fallback_key);

/* The binary ExportedDevice protobuf (secret: every key of the device). */
TOWNS_API towns_status towns_crypto_export_device(towns_crypto *crypto, towns_buffer *out);

/* The stream's outbound session id of the algorithm, creating (and, with a
 * share_host, sharing) one when there is none. miniblock may be NULL (the
 * share_host is asked when a hybrid session must be made; INVALID_ARGUMENT
 * without either). */
TOWNS_API towns_status towns_crypto_ensure_outbound_session(towns_crypto *crypto, const char *stream_id,
                                                            towns_algorithm algorithm,
                                                            const towns_miniblock_info *miniblock,
                                                            towns_string *session_id);
/* *out = 1 when the stream has an outbound session of the algorithm, else 0. */
TOWNS_API towns_status towns_crypto_has_outbound_session(towns_crypto *crypto, const char *stream_id,
                                                         towns_algorithm algorithm, int *out);
/* *out = 1 when the session's key is held (for decryption), else 0. */
TOWNS_API towns_status towns_crypto_has_session_key(towns_crypto *crypto, const char *stream_id,
                                                    const char *session_id, towns_algorithm algorithm, int *out);

/* Encrypts an event's payload bytes (version 1) into EncryptedData protobuf
 * bytes. EMPTY_PAYLOAD (hybrid), PAYLOAD_TOO_LARGE. */
TOWNS_API towns_status towns_crypto_encrypt_group_event(towns_crypto *crypto, const char *stream_id,
                                                        const uint8_t *payload, size_t payload_len,
                                                        towns_algorithm algorithm, towns_buffer *encrypted_data);

/* Decrypts EncryptedData protobuf bytes: the payload bytes (version 0: the
 * UTF-8 text) into *plaintext; *message_index (may be NULL) gets the megolm
 * message index, or -1 (hybrid, and on failure). INVALID_ARGUMENT when the bytes are not an
 * EncryptedData; SESSION_NOT_FOUND when no session is held (the error that
 * starts a key solicitation); GROUP_DECRYPTION_*, DECRYPTION_FAILED, REPLAY. */
TOWNS_API towns_status towns_crypto_decrypt_group_event(towns_crypto *crypto, const char *stream_id,
                                                        const uint8_t *encrypted_data, size_t encrypted_data_len,
                                                        towns_buffer *plaintext, int64_t *message_index);

/* One result of towns_crypto_decrypt_group_events. */
typedef struct {
  towns_status status;  /* TOWNS_OK, or what decrypting that event alone gives */
  towns_buffer plaintext;
  int64_t message_index; /* -1 when none */
  towns_string error_message; /* the failure's message; empty (NULL) on success */
} towns_decrypt_result;

/* A backlog of one stream's events (towns::GroupEncryptionCrypto::
 * decrypt_group_events): results[i] (the caller's array of count entries,
 * overwritten) is exactly what towns_crypto_decrypt_group_event would give for
 * events[i] in that order. Release with towns_decrypt_results_free. When the
 * call itself fails (NULL crypto, stream_id or events, out of memory), every
 * results[i] is {that status, empty, -1, empty}: nothing to free. */
TOWNS_API towns_status towns_crypto_decrypt_group_events(towns_crypto *crypto, const char *stream_id,
                                                         const towns_bytes *events, size_t count,
                                                         towns_decrypt_result *results);
/* Frees (wiping) what each of the count results holds; the array itself is the caller's. */
TOWNS_API void towns_decrypt_results_free(towns_decrypt_result *results, size_t count);

/* Session keys as JSON (the client's export shape, secret):
 *   {"streamId": hex, "sessionId": str, "sessionKey": str, "algorithm": str}
 * export_group_session gives one (SESSION_NOT_FOUND when not held);
 * export_room_keys an array of every held session of both algorithms. */
TOWNS_API towns_status towns_crypto_export_group_session(towns_crypto *crypto, const char *stream_id,
                                                         const char *session_id, towns_string *session_json);
TOWNS_API towns_status towns_crypto_export_room_keys(towns_crypto *crypto, towns_string *keys_json);

/* Imports keys from such a JSON array. The result:
 *   {"imported": [session id...], "failed": [...], "skipped": [...]}
 * (a refused key is reported, not an error; INVALID_ARGUMENT when the text is
 * not such an array). import_room_keys_as_json imports each key under its own
 * streamId; import_session_keys imports them all under stream_id (each key's
 * own streamId is ignored, as the client does). */
TOWNS_API towns_status towns_crypto_import_room_keys_as_json(towns_crypto *crypto, const char *keys_json,
                                                             towns_string *result_json);
TOWNS_API towns_status towns_crypto_import_session_keys(towns_crypto *crypto, const char *stream_id,
                                                        const char *keys_json, towns_string *result_json);

/* Device-to-device olm messages. devices_json: [{"deviceKey": str,
 * "fallbackKey": str}, ...]. The result: {device key: olm pre-key body, ...}
 * (our own device is not skipped). PAYLOAD_TOO_LARGE. */
TOWNS_API towns_status towns_crypto_encrypt_with_device_keys(towns_crypto *crypto, const char *payload,
                                                             const char *devices_json, towns_string *result_json);
/* Decrypts a pre-key body sent to our device. DECRYPTION_FAILED. */
TOWNS_API towns_status towns_crypto_decrypt_with_device_key(towns_crypto *crypto, const char *ciphertext,
                                                            const char *sender_device_key, towns_buffer *plaintext);

/* ---- Session sharing (include/towns/protocol/session_sharing.h) */

/* The GroupEncryptionSessions message (protobuf bytes) that shares sessions
 * (sessions_json: an array as towns_crypto_export_room_keys gives) of the
 * stream and algorithm with a user's devices (devices_json as above); our own
 * device is skipped, and so is a device whose keys olm refuses:
 * *skipped_devices_json (may be NULL) gets their keys, [device key, ...]. */
TOWNS_API towns_status towns_build_group_encryption_sessions(towns_crypto *crypto, const char *stream_id,
                                                             towns_algorithm algorithm, const char *sessions_json,
                                                             const char *devices_json, towns_buffer *message,
                                                             towns_string *skipped_devices_json);

/* Receives a GroupEncryptionSessions message (protobuf bytes): the sessions
 * for our device that we do not hold are imported. The result:
 *   {"status": "imported" | "nothing_missing" | "not_for_this_device" |
 *              "unknown_algorithm",
 *    "streamId": hex, "algorithm": str, "imported": [id...], "failed": [id...]}
 * DECRYPTION_FAILED when our ciphertext does not decrypt, IMPORT_FAILED when
 * its cleartext is not session keys (nothing is imported then). */
TOWNS_API towns_status towns_receive_group_encryption_sessions(towns_crypto *crypto, const uint8_t *message,
                                                               size_t message_len, towns_string *result_json);
/* An inbox backlog in one store write: an array of count entries, each the
 * result above or {"error": {"code": int, "name": str, "message": str}}, what
 * that message alone would have raised (it imports nothing). */
TOWNS_API towns_status towns_receive_group_encryption_sessions_batch(towns_crypto *crypto,
                                                                     const towns_bytes *messages, size_t count,
                                                                     towns_string *results_json);

/* ---- Stream solicitations (towns::StreamSolicitations): the stored
 * solicitations of one stream as its state records them; a host keeps one per
 * stream and returns it from its key_solicitations callback. */

TOWNS_API towns_status towns_stream_solicitations_create(towns_stream_solicitations **out);
TOWNS_API void towns_stream_solicitations_free(towns_stream_solicitations *solicitations);
/* A KeySolicitation event by a member: replaces that member's solicitation for
 * the same device key; *stored gets it as stored (KeySolicitation bytes), which
 * the host passes to towns_key_exchange_enqueue_key_solicitation. */
TOWNS_API towns_status towns_stream_solicitations_apply_solicitation(towns_stream_solicitations *solicitations,
                                                                     const char *user_id,
                                                                     const uint8_t *solicitation,
                                                                     size_t solicitation_len, towns_buffer *stored);
/* A stored KeyFulfillment: *found = 1 and the requester's updated solicitation
 * (its user id, KeySolicitation bytes) when there was one, else *found = 0. */
TOWNS_API towns_status towns_stream_solicitations_apply_fulfillment(towns_stream_solicitations *solicitations,
                                                                    const uint8_t *fulfillment,
                                                                    size_t fulfillment_len, int *found,
                                                                    towns_string *user_id,
                                                                    towns_buffer *solicitation);
/* A member left: its solicitations go with it. */
TOWNS_API towns_status towns_stream_solicitations_remove_member(towns_stream_solicitations *solicitations,
                                                                const char *user_id);

/* ---- The key exchange engine (towns::KeyExchange) */

/* What a callback hands back: it calls towns_reply_set once (the library
 * copies the bytes); not calling it means empty. Valid during the callback. */
typedef struct towns_reply towns_reply;
TOWNS_API towns_status towns_reply_set(towns_reply *reply, const uint8_t *data, size_t len);

/* The host: what the engine needs from the application (the Towns node).
 * Pointers given to a callback are valid for that call only. A callback that
 * returns other than TOWNS_OK fails the engine call that made it with that
 * status. Callbacks marked optional may be NULL (a share_host needs fewer:
 * see towns_crypto_create). */
struct towns_key_exchange_host {
  void *user_data;
  /* Post a KeySolicitation (protobuf bytes) on the stream. */
  towns_status (*send_key_solicitation)(void *user_data, const char *stream_id, const uint8_t *solicitation,
                                        size_t len, int ephemeral);
  /* Post a KeyFulfillment; *accepted = 0 when the node refused it as a
   * duplicate (another device fulfilled first), else leave it at 1. */
  towns_status (*send_key_fulfillment)(void *user_data, const char *stream_id, const uint8_t *fulfillment,
                                       size_t len, int ephemeral, int *accepted);
  /* Post a GroupEncryptionSessions message to the user's inbox. */
  towns_status (*send_group_encryption_sessions)(void *user_data, const char *to_user_id, const uint8_t *message,
                                                 size_t len);
  /* The user's published devices: reply [{"deviceKey", "fallbackKey"}, ...]. */
  towns_status (*user_devices)(void *user_data, const char *user_id, towns_reply *reply);
  /* Users whose join is confirmed: reply [user id, ...]. */
  towns_status (*stream_members)(void *user_data, const char *stream_id, towns_reply *reply);
  /* Optional: users entitled to key exchange (default: stream_members), same reply. */
  towns_status (*users_entitled_to_key_exchange)(void *user_data, const char *stream_id, towns_reply *reply);
  /* The on-chain Read check: *entitled = 1 or 0 (it starts at 1). */
  towns_status (*is_user_entitled)(void *user_data, const char *stream_id, const char *user_id, int *entitled);
  /* The stream's stored solicitations: *out = the host's
   * towns_stream_solicitations for the stream (borrowed), or NULL for none. */
  towns_status (*key_solicitations)(void *user_data, const char *stream_id, towns_stream_solicitations **out);
  /* The stream's latest miniblock (for a new hybrid session): *miniblock_num,
   * and its hash through the reply. */
  towns_status (*get_miniblock_info)(void *user_data, const char *stream_id, int64_t *miniblock_num,
                                     towns_reply *miniblock_hash);
  /* Optional results. on_decrypted: an enqueued event decrypted (message_index
   * -1 for hybrid). on_decryption_error: it failed; missing_session = 1 when it
   * waits for keys (a solicitation may follow). Their return value is ignored. */
  void (*on_decrypted)(void *user_data, const char *stream_id, const char *event_id, const uint8_t *plaintext,
                       size_t plaintext_len, int64_t message_index);
  void (*on_decryption_error)(void *user_data, const char *stream_id, const char *event_id, towns_status status,
                              const char *message, int missing_session);
};

/* Engine options (towns::KeyExchangeOptions and the clock). Fill with
 * towns_key_exchange_options_default, then change fields. */
typedef struct {
  size_t struct_size;           /* sizeof(towns_key_exchange_options), set by the default */
  int ephemeral_solicitations;  /* 1: solicit ephemerally first (default 1) */
  int64_t ephemeral_timeout_ms; /* then as a stream event after this (default 30000) */
  int respond_delay;            /* 1: answer after the random delay of section 10 (default 1) */
  int manual_clock;             /* 0: the system clock (default); 1: the engine's time is
                                   start_time_ms, then what set_time / advance set */
  int64_t start_time_ms;        /* with manual_clock (default 0) */
} towns_key_exchange_options;
TOWNS_API void towns_key_exchange_options_default(towns_key_exchange_options *options);

/* crypto: the device (created with share_host = host to share its new
 * sessions); host: copied, its user_data must outlive the engine; user_id: our
 * user's hex address; options may be NULL (the defaults). */
TOWNS_API towns_status towns_key_exchange_create(towns_crypto *crypto, const towns_key_exchange_host *host,
                                                 const char *user_id, const towns_key_exchange_options *options,
                                                 towns_key_exchange **out);
/* From one of its own host callbacks: deferred to the end of the run / tick /
 * advance in progress (see Threads above). */
TOWNS_API void towns_key_exchange_free(towns_key_exchange *exchange);

/* Inputs: what the host sees. Each is queued; the work is done by run/tick. */
TOWNS_API towns_status towns_key_exchange_enqueue_encrypted_content(towns_key_exchange *exchange,
                                                                    const char *stream_id, const char *event_id,
                                                                    const uint8_t *encrypted_data, size_t len);
TOWNS_API towns_status towns_key_exchange_enqueue_new_group_sessions(towns_key_exchange *exchange,
                                                                     const uint8_t *message, size_t len);
/* A KeySolicitation seen on a stream (a stored one as
 * towns_stream_solicitations_apply_* returned it). event_hash may be NULL. */
TOWNS_API towns_status towns_key_exchange_enqueue_key_solicitation(towns_key_exchange *exchange,
                                                                   const char *stream_id, const char *from_user_id,
                                                                   const uint8_t *solicitation, size_t len,
                                                                   int ephemeral, const char *event_hash);
/* The stream was read from a snapshot: its stored solicitations (members in
 * the order they first solicited). */
TOWNS_API towns_status towns_key_exchange_enqueue_init_key_solicitations(
    towns_key_exchange *exchange, const char *stream_id, const towns_stream_solicitations *stored);
/* An ephemeral KeyFulfillment seen on a stream. */
TOWNS_API towns_status towns_key_exchange_on_ephemeral_key_fulfillment(towns_key_exchange *exchange,
                                                                       const char *stream_id,
                                                                       const uint8_t *fulfillment, size_t len);
/* Membership changed: try the stream's waiting events again. */
TOWNS_API towns_status towns_key_exchange_retry_decryption_failures(towns_key_exchange *exchange,
                                                                    const char *stream_id);

/* Work: tick does one unit (*did = 1, or 0 when nothing is due; did may be
 * NULL); run ticks until nothing is due now (*units may be NULL). These and
 * advance make the host callbacks; one of them called from a callback of the
 * same key exchange is INVALID_ARGUMENT. */
TOWNS_API towns_status towns_key_exchange_tick(towns_key_exchange *exchange, int *did);
TOWNS_API towns_status towns_key_exchange_run(towns_key_exchange *exchange, size_t *units);
/* Manual clock only (else INVALID_ARGUMENT): set_time sets the engine's time
 * (not backwards); advance runs every moment something is due up to to_ms, in
 * order, then sets the time to to_ms and runs. */
TOWNS_API towns_status towns_key_exchange_set_time(towns_key_exchange *exchange, int64_t now_ms);
TOWNS_API towns_status towns_key_exchange_advance(towns_key_exchange *exchange, int64_t to_ms);
/* *has = 1 and *due_ms = the earliest time something becomes due, or *has = 0. */
TOWNS_API towns_status towns_key_exchange_next_due(towns_key_exchange *exchange, int *has, int64_t *due_ms);

typedef enum {
  TOWNS_KEY_EXCHANGE_IDLE = 0,
  TOWNS_KEY_EXCHANGE_WORKING = 1,
  TOWNS_KEY_EXCHANGE_WAITING = 2,
  TOWNS_KEY_EXCHANGE_STATUS_MAX_ENUM = 0x7fffffff
} towns_key_exchange_status;

typedef struct {
  uint64_t decrypted;
  uint64_t decryption_failures; /* missing session */
  uint64_t decryption_errors;   /* any other error */
  uint64_t solicitations_sent;
  uint64_t fulfillments_sent;
  uint64_t fulfillments_refused;
  uint64_t shares_sent;
  uint64_t sessions_imported;
  uint64_t bytes_sent;
  uint64_t waiting_events;
  uint64_t pending_solicitations;
  int status; /* a towns_key_exchange_status */
} towns_key_exchange_stats;
TOWNS_API towns_status towns_key_exchange_stats_get(towns_key_exchange *exchange, towns_key_exchange_stats *out);
/* Session ids of the stream that events wait for: [id, ...] sorted. */
TOWNS_API towns_status towns_key_exchange_missing_session_ids(towns_key_exchange *exchange, const char *stream_id,
                                                              towns_string *ids_json);

/* ---- Test vectors (docs/vectors.md) */

/* Verifies this library against the conformance corpus: every test of every
 * *.json file in dir (regular files, in name order), each run through the
 * library (towns::vectors::verify). *passed and *failed count the tests (a
 * malformed file or group, or a file whose numberOfTests is wrong, counts as
 * one failure more). report_json may be NULL; else it receives the failures as
 * a JSON array of strings, one per failure, in order:
 *   "<file> tcId <n> (<type>, <comment>): expected <valid|CODE>, got <...>"
 *   "<file>: <why>" (a file that is not JSON, lacks its testGroups, ...)
 *   "<dir>: no vector files"
 * ("[]" when nothing failed). TOWNS_OK whenever the files were checked, however
 * many failed: failures are the result, not an error. INVALID_ARGUMENT when dir
 * (or passed, failed) is NULL, or dir is not a directory that can be listed. */
TOWNS_API towns_status towns_vectors_verify(const char *dir, size_t *passed, size_t *failed, towns_string *report_json);

#ifdef __cplusplus
}
#endif

#endif /* TOWNS_TOWNS_H */
