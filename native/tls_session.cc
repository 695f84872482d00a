// Implementation of TlsSession (see tls_session.h).
#include "tls_session.h"

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cstring>

#include "tls_context.h"

namespace feersum {

TlsSession* TlsSession::create(TlsContext* context) {
  SSL* ssl = SSL_new(context->ctx());
  if (!ssl) return nullptr;
  TlsSession* s = new TlsSession();
  context->ref();
  s->context_ = context;
  s->ssl_ = ssl;
  s->rbio_ = BIO_new(BIO_s_mem());
  s->wbio_ = BIO_new(BIO_s_mem());
  // An empty read BIO means "wait for more", not end of file.
  BIO_set_mem_eof_return(s->rbio_, -1);
  SSL_set_bio(ssl, s->rbio_, s->wbio_);  // the SSL owns both BIOs now
  SSL_set_accept_state(ssl);
  return s;
}

TlsSession::~TlsSession() {
  if (ssl_) SSL_free(ssl_);
  if (context_) context_->unref();
}

TlsSession::Status TlsSession::feed(const char* data, size_t len, char* scratch, size_t scratch_len,
                                    PlainFn on_plain, void* ctx) {
  if (len && BIO_write(rbio_, data, static_cast<int>(len)) != static_cast<int>(len)) return Status::Error;
  for (;;) {
    int n = SSL_read(ssl_, scratch, static_cast<int>(scratch_len));
    if (!handshake_done_ && SSL_is_init_finished(ssl_)) handshake_done_ = true;
    if (n > 0) {
      if (!on_plain(ctx, scratch, static_cast<size_t>(n))) return Status::Ok;
      continue;
    }
    switch (SSL_get_error(ssl_, n)) {
      case SSL_ERROR_WANT_READ:
      case SSL_ERROR_WANT_WRITE:  // memory BIOs never block; output is taken by the caller
        return Status::Ok;
      case SSL_ERROR_ZERO_RETURN:
        return Status::PeerClosed;
      default: {
        unsigned long code = ERR_get_error();
        const char* reason = code ? ERR_reason_error_string(code) : nullptr;
        last_error_ = reason ? reason : "TLS error";
        ERR_clear_error();
        return Status::Error;
      }
    }
  }
}

bool TlsSession::takeOutput(OutQueue& out) {
  char* p = nullptr;
  long n = BIO_get_mem_data(wbio_, &p);
  if (n <= 0) return true;
  bool ok = out.appendCopy(p, static_cast<size_t>(n));
  (void)BIO_reset(wbio_);
  return ok;
}

bool TlsSession::encryptInPlace(const char* data, size_t len) {
  while (len > 0) {
    // At most one full record per call keeps records as large as possible.
    int chunk = len > 16384 ? 16384 : static_cast<int>(len);
    int n = SSL_write(ssl_, data, chunk);
    if (n <= 0) {
      ERR_clear_error();
      return false;
    }
    data += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

size_t TlsSession::peekOutput(const char** data) const {
  char* p = nullptr;
  long n = BIO_get_mem_data(wbio_, &p);
  *data = p;
  return n > 0 ? static_cast<size_t>(n) : 0;
}

void TlsSession::discardOutput() { (void)BIO_reset(wbio_); }

bool TlsSession::encrypt(const char* data, size_t len, OutQueue& out) {
  return encryptInPlace(data, len) && takeOutput(out);
}

void TlsSession::close(OutQueue& out) {
  if (handshake_done_) SSL_shutdown(ssl_);
  ERR_clear_error();
  takeOutput(out);
}

namespace {

void appendName(ByteBuffer& out, X509_NAME* name) {
  BIO* bio = BIO_new(BIO_s_mem());
  X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253);
  char* p = nullptr;
  long n = BIO_get_mem_data(bio, &p);
  if (n > 0) out.append(p, static_cast<size_t>(n));
  BIO_free(bio);
}

}  // namespace

void TlsSession::describe(ByteBuffer& out) const {
  const char* version = SSL_get_version(ssl_);
  out.append(version, std::strlen(version));
  out.append("", 1);
  const char* cipher = SSL_get_cipher_name(ssl_);
  if (cipher) out.append(cipher, std::strlen(cipher));
  out.append("", 1);
  const char* sni = SSL_get_servername(ssl_, TLSEXT_NAMETYPE_host_name);
  if (sni) out.append(sni, std::strlen(sni));
  out.append("", 1);
  X509* peer = SSL_get1_peer_certificate(ssl_);
  if (!peer) {
    out.appendLiteral("NONE");
    out.append("\0\0\0\0", 4);  // no subject, issuer, serial or certificate
    return;
  }
  long verify = SSL_get_verify_result(ssl_);
  if (verify == X509_V_OK) {
    out.appendLiteral("SUCCESS");
  } else {
    out.appendLiteral("FAILED:");
    const char* why = X509_verify_cert_error_string(verify);
    out.append(why, std::strlen(why));
  }
  out.append("", 1);
  appendName(out, X509_get_subject_name(peer));
  out.append("", 1);
  appendName(out, X509_get_issuer_name(peer));
  out.append("", 1);
  BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get_serialNumber(peer), nullptr);
  if (bn) {
    char* hex = BN_bn2hex(bn);
    if (hex) out.append(hex, std::strlen(hex));
    OPENSSL_free(hex);
    BN_free(bn);
  }
  out.append("", 1);
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, peer);
  char* p = nullptr;
  long n = BIO_get_mem_data(bio, &p);
  if (n > 0) out.append(p, static_cast<size_t>(n));
  BIO_free(bio);
  X509_free(peer);
}

}  // namespace feersum
