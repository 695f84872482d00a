// Implementation of TlsContext (see tls_context.h).
#include "tls_context.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cstring>

namespace feersum {

namespace {

// The last OpenSSL error as text (and the queue cleared for the next call).
std::string opensslError(const char* what) {
  unsigned long code = ERR_peek_last_error();
  std::string out = what;
  if (code) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof buf);
    const char* reason = ERR_reason_error_string(code);
    out += ": ";
    out += reason ? reason : buf;
  }
  ERR_clear_error();
  return out;
}

int passphraseCallback(char* buf, int size, int, void* userdata) {
  const std::string* pass = static_cast<const std::string*>(userdata);
  if (!pass || pass->empty()) return 0;
  int n = static_cast<int>(pass->size());
  if (n > size) n = size;
  std::memcpy(buf, pass->data(), static_cast<size_t>(n));
  return n;
}

BIO* memBio(const std::string& s) { return BIO_new_mem_buf(s.data(), static_cast<int>(s.size())); }

bool useIdentity(SSL_CTX* ctx, const TlsCertKey& id, std::string* error) {
  BIO* bio = memBio(id.cert_pem);
  X509* leaf = PEM_read_bio_X509_AUX(bio, nullptr, nullptr, nullptr);
  if (!leaf) {
    BIO_free(bio);
    *error = opensslError("cannot read the certificate (PEM expected)");
    return false;
  }
  bool ok = SSL_CTX_use_certificate(ctx, leaf) == 1;
  X509_free(leaf);
  // The rest of the PEM is the chain up to (not necessarily including) the root.
  SSL_CTX_clear_chain_certs(ctx);
  while (ok) {
    X509* extra = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
    if (!extra) break;
    if (SSL_CTX_add0_chain_cert(ctx, extra) != 1) {
      X509_free(extra);
      ok = false;
    }
  }
  BIO_free(bio);
  ERR_clear_error();  // the end of the chain reads as an error
  if (!ok) {
    *error = opensslError("cannot use the certificate");
    return false;
  }
  bio = memBio(id.key_pem);
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio, nullptr, passphraseCallback,
                                          const_cast<std::string*>(&id.passphrase));
  BIO_free(bio);
  if (!key) {
    *error = opensslError(id.passphrase.empty() ? "cannot read the private key (encrypted keys need a passphrase)"
                                                : "cannot read the private key (wrong passphrase?)");
    return false;
  }
  ok = SSL_CTX_use_PrivateKey(ctx, key) == 1;
  EVP_PKEY_free(key);
  if (!ok || SSL_CTX_check_private_key(ctx) != 1) {
    *error = opensslError("the private key does not match the certificate");
    return false;
  }
  return true;
}

// Only http/1.1 is spoken; a client offering just h2 goes on without ALPN.
int selectAlpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
               unsigned int inlen, void*) {
  static const unsigned char kHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, kHttp11, sizeof kHttp11, in, inlen) == OPENSSL_NPN_NEGOTIATED) {
    *out = selected;
    return SSL_TLSEXT_ERR_OK;
  }
  return SSL_TLSEXT_ERR_NOACK;
}

// With reject_unauthorized off a client certificate that fails verification
// is still accepted; the outcome reaches the application as SSL_CLIENT_VERIFY.
int acceptAnyCertificate(int, X509_STORE_CTX*) { return 1; }

SSL_CTX* newContext(const TlsConfig& config, std::string* error) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx) {
    *error = opensslError("cannot create a TLS context");
    return nullptr;
  }
  SSL_CTX_set_min_proto_version(ctx, config.min_version);
  // No renegotiation (a DoS lever and a source of attacks), no compression,
  // the server's cipher order, and buffers released on idle connections.
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  return ctx;
}

// Everything but the certificate, shared by the listener's context and its
// SNI contexts (after SNI switches context, verification uses the new one).
bool applySettings(SSL_CTX* ctx, const TlsConfig& config, std::string* error) {
  if (!config.ciphers.empty() && SSL_CTX_set_cipher_list(ctx, config.ciphers.c_str()) != 1) {
    *error = opensslError("invalid ciphers");
    return false;
  }
  if (!config.ciphersuites.empty() && SSL_CTX_set_ciphersuites(ctx, config.ciphersuites.c_str()) != 1) {
    *error = opensslError("invalid TLS 1.3 cipher suites");
    return false;
  }
  SSL_CTX_set_alpn_select_cb(ctx, selectAlpn, nullptr);
  // Session resumption: the server-side cache (TLS 1.2 session ids) and
  // tickets (TLS 1.2 and 1.3), both on by default in OpenSSL; the id context
  // is required for the cache once client certificates are in play.
  static const unsigned char kSidCtx[] = "feersum-ts";
  SSL_CTX_set_session_id_context(ctx, kSidCtx, sizeof kSidCtx - 1);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
  if (!config.ticket_keys.empty() &&
      (config.ticket_keys.size() != 80 ||
       SSL_CTX_set_tlsext_ticket_keys(ctx, const_cast<char*>(config.ticket_keys.data()), 80) != 1)) {
    *error = "ticketKeys must be 80 bytes";
    return false;
  }
  if (!config.ca_pem.empty()) {
    X509_STORE* store = SSL_CTX_get_cert_store(ctx);
    STACK_OF(X509_NAME)* names = sk_X509_NAME_new_null();
    BIO* bio = memBio(config.ca_pem);
    int count = 0;
    while (X509* ca = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
      X509_STORE_add_cert(store, ca);
      sk_X509_NAME_push(names, X509_NAME_dup(X509_get_subject_name(ca)));
      X509_free(ca);
      ++count;
    }
    BIO_free(bio);
    ERR_clear_error();
    if (count == 0) {
      sk_X509_NAME_pop_free(names, X509_NAME_free);
      *error = "cannot read the CA certificates (PEM expected)";
      return false;
    }
    SSL_CTX_set_client_CA_list(ctx, names);  // tells clients which CAs are accepted
  }
  if (config.request_cert) {
    int mode = SSL_VERIFY_PEER;
    if (config.reject_unauthorized) mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_CTX_set_verify(ctx, mode, config.reject_unauthorized ? nullptr : acceptAnyCertificate);
  }
  return true;
}

SSL_CTX* buildContext(const TlsConfig& config, const TlsCertKey& id, std::string* error) {
  SSL_CTX* ctx = newContext(config, error);
  if (!ctx) return nullptr;
  if (!useIdentity(ctx, id, error) || !applySettings(ctx, config, error)) {
    SSL_CTX_free(ctx);
    return nullptr;
  }
  return ctx;
}

}  // namespace

TlsContext* TlsContext::create(const TlsConfig& config, std::string* error) {
  ERR_clear_error();
  SSL_CTX* ctx = buildContext(config, config.identity, error);
  if (!ctx) return nullptr;
  TlsContext* tc = new TlsContext();
  tc->ctx_ = ctx;
  for (const auto& [name, id] : config.sni) {
    SSL_CTX* sctx = buildContext(config, id, error);
    if (!sctx) {
      *error = "SNI '" + name + "': " + *error;
      delete tc;
      return nullptr;
    }
    tc->sni_.emplace_back(name, sctx);
  }
  if (!tc->sni_.empty()) {
    SSL_CTX_set_tlsext_servername_callback(ctx, onServerName);
    SSL_CTX_set_tlsext_servername_arg(ctx, tc);
  }
  return tc;
}

TlsContext::~TlsContext() {
  for (auto& [name, sctx] : sni_) SSL_CTX_free(sctx);
  if (ctx_) SSL_CTX_free(ctx_);
}

// Picks the certificate for the requested name ("*.example.com" matches one
// label); an unknown name keeps the default certificate.
int TlsContext::onServerName(SSL* ssl, int*, void* arg) {
  TlsContext* tc = static_cast<TlsContext*>(arg);
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (!name) return SSL_TLSEXT_ERR_OK;
  for (const auto& [pattern, sctx] : tc->sni_) {
    bool match = strcasecmp(pattern.c_str(), name) == 0;
    if (!match && pattern.size() > 2 && pattern[0] == '*' && pattern[1] == '.') {
      const char* dot = std::strchr(name, '.');
      match = dot && strcasecmp(pattern.c_str() + 1, dot) == 0;
    }
    if (match) {
      SSL_set_SSL_CTX(ssl, sctx);  // same settings, another certificate
      return SSL_TLSEXT_ERR_OK;
    }
  }
  return SSL_TLSEXT_ERR_OK;
}

}  // namespace feersum
