// A listening socket owned by an engine: TCP (IPv4/IPv6), Unix (filesystem
// or abstract "@name"), or an inherited fd. Accepted connections become
// Connections; libuv's accept path already survives EMFILE without spinning.
#pragma once

#include <uv.h>

#include <string>

namespace feersum {

class Engine;
class TlsContext;

struct ListenAddress {
  std::string address;  // numeric host, or the socket path ("@name" for abstract)
  int port = 0;         // 0 for Unix sockets
  std::string family;   // "IPv4", "IPv6" or "unix"
};

class Listener {
 public:
  // Each returns nullptr and sets *err (a negative libuv/errno code) on failure.
  static Listener* listenTcp(Engine* engine, const char* host, int port, int backlog, bool ipv6_only,
                             bool reuse_port, int* err);
  static Listener* listenUnix(Engine* engine, const char* path, int backlog, int* err);
  static Listener* listenFd(Engine* engine, int fd, int backlog, int* err);

  // Creates a bound, listening socket and returns its fd (or a negative
  // errno) without watching it: the pre-fork supervisor binds every listener
  // once, up front, and hands the fds to its workers.
  static int bindTcp(const char* host, int port, int backlog, bool ipv6_only, bool reuse_port);
  static int bindUnix(const char* path, int backlog);

  void close();  // stops accepting; the object frees itself once closed
  const ListenAddress& address() const { return address_; }
  bool isPipe() const { return is_pipe_; }
  int index = -1;
  bool proxy_protocol = false;  // connections start with a PROXY v1/v2 header
  // TLS listener: new connections use this context (reloadable; connections
  // keep the one they started with).
  void setTls(TlsContext* tls);
  TlsContext* tls() const { return tls_; }

 private:
  Listener(Engine* engine, bool is_pipe);
  int startListening(int backlog);
  int describe();
  static Listener* fromOpenFd(Engine* engine, int fd, int backlog, bool owned, int* err);
  static void onConnection(uv_stream_t* server, int status);
  static void onClose(uv_handle_t* h);

  Engine* engine_;
  union {
    uv_handle_t handle_;
    uv_stream_t stream_;
    uv_tcp_t tcp_;
    uv_pipe_t pipe_;
  };
  bool is_pipe_;
  bool closing_ = false;
  TlsContext* tls_ = nullptr;
  ListenAddress address_;
};

}  // namespace feersum
