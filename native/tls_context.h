// A TLS listener's configuration as an OpenSSL SSL_CTX (Node's own OpenSSL,
// which Node exports to addons): certificate and key, client-certificate
// verification, protocol and cipher choices, ALPN (http/1.1) and SNI.
// Built and checked when listen() is called, so a bad key fails there and
// never at a handshake.
#pragma once

#include <openssl/ssl.h>

#include <string>
#include <vector>

namespace feersum {

struct TlsCertKey {
  std::string cert_pem;  // leaf certificate followed by its chain
  std::string key_pem;
  std::string passphrase;
};

struct TlsConfig {
  TlsCertKey identity;
  std::string ca_pem;              // CAs for client certificates (may hold several)
  bool request_cert = false;       // ask for a client certificate
  bool reject_unauthorized = true; // with request_cert: refuse missing or unverified ones
  std::string ciphers;             // TLS 1.2 cipher list (OpenSSL syntax); empty = default
  std::string ciphersuites;        // TLS 1.3 suites; empty = default
  int min_version = TLS1_2_VERSION;
  std::vector<std::pair<std::string, TlsCertKey>> sni;  // server name -> identity
  std::string ticket_keys;         // 80 bytes shared by pre-fork workers; empty = per process
};

class TlsContext {
 public:
  // Returns nullptr and sets *error to a one-line explanation on failure.
  static TlsContext* create(const TlsConfig& config, std::string* error);

  void ref() { ++refs_; }
  void unref() {
    if (--refs_ == 0) delete this;
  }
  SSL_CTX* ctx() const { return ctx_; }

 private:
  TlsContext() = default;
  ~TlsContext();
  static int onServerName(SSL* ssl, int* alert, void* arg);

  SSL_CTX* ctx_ = nullptr;
  // Certificates per server name; they share the default context's verify
  // settings (the SSL keeps its original SSL_CTX for everything but the
  // certificate).
  std::vector<std::pair<std::string, SSL_CTX*>> sni_;
  int refs_ = 1;
};

}  // namespace feersum
