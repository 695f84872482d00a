// Implementation of Listener (see listener.h). Sockets are created with
// plain syscalls and handed to libuv, so every listener kind (including
// abstract Unix sockets and SO_REUSEPORT) works on every libuv Node ships.
#include "listener.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

#include "connection.h"
#include "engine.h"
#include "tls_context.h"

namespace feersum {

Listener::Listener(Engine* engine, bool is_pipe) : engine_(engine), is_pipe_(is_pipe) {}

namespace {

int closeWithError(int fd) {
  int e = errno;
  ::close(fd);
  return -e;
}

}  // namespace

namespace {

// socket() + bind() for a numeric TCP address; returns the fd or -errno.
int boundTcpSocket(const char* host, int port, bool ipv6_only, bool reuse_port) {
  sockaddr_storage ss;
  std::memset(&ss, 0, sizeof ss);
  socklen_t len;
  int family;
  if (uv_ip4_addr(host, port, reinterpret_cast<sockaddr_in*>(&ss)) == 0) {
    family = AF_INET;
    len = sizeof(sockaddr_in);
  } else if (uv_ip6_addr(host, port, reinterpret_cast<sockaddr_in6*>(&ss)) == 0) {
    family = AF_INET6;
    len = sizeof(sockaddr_in6);
  } else {
    return UV_EINVAL;
  }
  int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -errno;
  int on = 1;
  // As Node and nginx do: a restarted server can bind while old connections
  // sit in TIME_WAIT.
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  if (reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0) return closeWithError(fd);
  if (family == AF_INET6) {
    int v6only = ipv6_only ? 1 : 0;
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only);
  }
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) return closeWithError(fd);
  return fd;
}

// socket() + bind() for a Unix path or "@abstract" name; returns the fd or -errno.
int boundUnixSocket(const char* path) {
  sockaddr_un sun;
  std::memset(&sun, 0, sizeof sun);
  sun.sun_family = AF_UNIX;
  size_t n = std::strlen(path);
  bool abstract_name = path[0] == '@';
  if (n == 0 || n >= sizeof(sun.sun_path)) return UV_ENAMETOOLONG;
  std::memcpy(sun.sun_path, path, n);
  // Abstract names are bound at their exact length (no trailing NULs), as
  // systemd, socat and curl do.
  if (abstract_name) sun.sun_path[0] = '\0';
  socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + n + (abstract_name ? 0 : 1));
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -errno;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&sun), len) != 0) return closeWithError(fd);
  return fd;
}

int listenOrClose(int fd, int backlog) {
  if (fd < 0) return fd;
  if (::listen(fd, backlog > 0 ? backlog : 511) != 0) return closeWithError(fd);
  return fd;
}

}  // namespace

int Listener::bindTcp(const char* host, int port, int backlog, bool ipv6_only, bool reuse_port) {
  return listenOrClose(boundTcpSocket(host, port, ipv6_only, reuse_port), backlog);
}

int Listener::bindUnix(const char* path, int backlog) { return listenOrClose(boundUnixSocket(path), backlog); }

Listener* Listener::listenTcp(Engine* engine, const char* host, int port, int backlog, bool ipv6_only,
                              bool reuse_port, int* err) {
  int fd = boundTcpSocket(host, port, ipv6_only, reuse_port);
  if (fd < 0) {
    *err = fd;
    return nullptr;
  }
  return fromOpenFd(engine, fd, backlog, true, err);
}

Listener* Listener::listenUnix(Engine* engine, const char* path, int backlog, int* err) {
  int fd = boundUnixSocket(path);
  if (fd < 0) {
    *err = fd;
    return nullptr;
  }
  Listener* l = fromOpenFd(engine, fd, backlog, true, err);
  if (l) l->address_.address = path;
  return l;
}

Listener* Listener::listenFd(Engine* engine, int fd, int backlog, int* err) {
  int type = 0;
  socklen_t tl = sizeof type;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) != 0) {
    *err = -errno;
    return nullptr;
  }
  if (type != SOCK_STREAM) {
    *err = UV_ENOTSUP;
    return nullptr;
  }
  return fromOpenFd(engine, fd, backlog, false, err);
}

Listener* Listener::fromOpenFd(Engine* engine, int fd, int backlog, bool owned, int* err) {
  sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    *err = owned ? closeWithError(fd) : -errno;
    return nullptr;
  }
  bool is_pipe = ss.ss_family == AF_UNIX;
  Listener* l = new Listener(engine, is_pipe);
  uv_loop_t* loop = engine->ctx().loop;
  int r = is_pipe ? uv_pipe_init(loop, &l->pipe_, 0) : uv_tcp_init(loop, &l->tcp_);
  if (r == 0) r = is_pipe ? uv_pipe_open(&l->pipe_, fd) : uv_tcp_open(&l->tcp_, fd);
  l->handle_.data = l;
  if (r != 0) {
    if (owned) ::close(fd);
    *err = r;
    l->close();  // an initialised handle must be closed through libuv
    return nullptr;
  }
  // From here the handle owns fd: closing the listener closes it.
  r = l->startListening(backlog);
  if (r == 0) r = l->describe();
  if (r != 0) {
    *err = r;
    l->close();
    return nullptr;
  }
  return l;
}

int Listener::startListening(int backlog) {
  return uv_listen(&stream_, backlog > 0 ? backlog : 511, onConnection);
}

int Listener::describe() {
  sockaddr_storage ss;
  socklen_t len = sizeof ss;
  int fd = -1;
  uv_fileno(&handle_, &fd);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return -errno;
  char buf[INET6_ADDRSTRLEN + 1] = {0};
  if (ss.ss_family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    uv_ip4_name(a, buf, sizeof buf);
    address_ = {buf, ntohs(a->sin_port), "IPv4"};
  } else if (ss.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    uv_ip6_name(a, buf, sizeof buf);
    address_ = {buf, ntohs(a->sin6_port), "IPv6"};
  } else {
    auto* a = reinterpret_cast<sockaddr_un*>(&ss);
    size_t n = len > offsetof(sockaddr_un, sun_path) ? len - offsetof(sockaddr_un, sun_path) : 0;
    std::string path(a->sun_path, n);
    if (!path.empty() && path[0] == '\0') path[0] = '@';
    else path = path.c_str();  // drop the terminating NUL
    address_ = {path, 0, "unix"};
  }
  return 0;
}

void Listener::onConnection(uv_stream_t* server, int status) {
  Listener* l = static_cast<Listener*>(server->data);
  // Errors here are EMFILE/ENFILE after libuv has already shed the pending
  // connections; accepting resumes by itself when descriptors free up.
  if (status < 0 || l->closing_) return;
  Engine* e = l->engine_;
  e->enter();
  Connection* c = Connection::create(e, l->index, l->is_pipe_);
  if (c) {
    int r = c->accept(server, l->proxy_protocol, l->tls_);
    if (r != 0 || e->overConnectionLimit() || e->shuttingDown()) c->destroy();
  }
  e->leave();
}

void Listener::close() {
  if (closing_) return;
  closing_ = true;
  uv_close(&handle_, onClose);
}

void Listener::onClose(uv_handle_t* h) {
  Listener* l = static_cast<Listener*>(h->data);
  l->setTls(nullptr);
  delete l;
}

void Listener::setTls(TlsContext* tls) {
  if (tls) tls->ref();
  if (tls_) tls_->unref();
  tls_ = tls;
}

}  // namespace feersum
