// The TLS layer of one connection: an OpenSSL SSL object between two memory
// BIOs, so the socket stays libuv's and every read and write stays on the
// loop. Ciphertext comes in through feed(), plaintext goes out through
// encrypt(); what the connection sees in between is plain HTTP.
#pragma once

#include <openssl/ssl.h>

#include "byte_buffer.h"
#include "write_queue.h"

namespace feersum {

class TlsContext;

class TlsSession {
 public:
  static TlsSession* create(TlsContext* context);
  ~TlsSession();

  enum class Status : uint8_t { Ok, PeerClosed, Error };
  using PlainFn = bool (*)(void* ctx, const char* data, size_t len);  // false: stop (connection closed)

  // Consumes ciphertext, running the handshake as needed; decrypted bytes
  // are passed to on_plain in pieces of at most `scratch_len`.
  Status feed(const char* data, size_t len, char* scratch, size_t scratch_len, PlainFn on_plain, void* ctx);
  // Encrypts plaintext (one TLS record per 16 KiB); ciphertext is queued on out.
  bool encrypt(const char* data, size_t len, OutQueue& out);
  // Moves ciphertext the session produced by itself (handshake, tickets,
  // alerts, close_notify) to out.
  bool takeOutput(OutQueue& out);
  // Encrypts into the session's own buffer; peekOutput/discardOutput then let
  // the caller write the records straight from it (no copy on the fast path).
  bool encryptInPlace(const char* data, size_t len);
  size_t peekOutput(const char** data) const;
  void discardOutput();
  // Queues a close_notify alert.
  void close(OutQueue& out);

  bool handshakeDone() const { return handshake_done_; }
  bool resumed() const { return SSL_session_reused(ssl_) == 1; }
  // The values the env reports, NUL-separated in this order: SSL_PROTOCOL,
  // SSL_CIPHER, SSL_SERVER_NAME, SSL_CLIENT_VERIFY, SSL_CLIENT_S_DN,
  // SSL_CLIENT_I_DN, SSL_CLIENT_SERIAL, SSL_CLIENT_CERT.
  void describe(ByteBuffer& out) const;
  // Why the handshake or a record failed, for logs.
  const char* lastError() const { return last_error_; }

 private:
  TlsSession() = default;

  // Kept alive for the session: OpenSSL callbacks (SNI) reach it through
  // the SSL_CTX, which may outlive the listener's use of it (reloadTls).
  TlsContext* context_ = nullptr;
  SSL* ssl_ = nullptr;
  BIO* rbio_ = nullptr;  // ciphertext in
  BIO* wbio_ = nullptr;  // ciphertext out
  bool handshake_done_ = false;
  const char* last_error_ = "";
};

}  // namespace feersum
