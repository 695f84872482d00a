// The cold half of the N-API surface: engine configuration, listeners, TLS
// contexts and stats, called a few times per process (addon.cc registers them).
#include "addon_setup.h"

#include <fcntl.h>
#include <unistd.h>

#include <string>

#include "engine.h"
#include "listener.h"
#include "tls_context.h"

namespace feersum::setup {

namespace {

Engine* unwrap(const Napi::CallbackInfo& info) {
  void* p = nullptr;
  napi_unwrap(info.Env(), info.This(), &p);
  return static_cast<Engine*>(p);
}

Napi::Value throwUvError(Napi::Env env, int err) {
  Napi::Error error = Napi::Error::New(env, std::string(uv_strerror(err)));
  error.Set("code", Napi::String::New(env, uv_err_name(err)));
  error.Set("errno", Napi::Number::New(env, err));
  error.ThrowAsJavaScriptException();
  return env.Undefined();
}

TlsContext* tlsContextOf(const Napi::Value& v) {
  if (!v.IsExternal()) return nullptr;
  return v.As<Napi::External<TlsContext>>().Data();
}

// The listener options object: { proxyProtocol, tls } (tls from createTlsContext).
void applyListenerOptions(Listener* l, const Napi::Value& v) {
  if (!l || !v.IsObject()) return;
  Napi::Object o = v.As<Napi::Object>();
  l->proxy_protocol = o.Get("proxyProtocol").ToBoolean();
  if (TlsContext* tls = tlsContextOf(o.Get("tls"))) l->setTls(tls);
}

std::string stringProp(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  return v.IsString() ? v.As<Napi::String>().Utf8Value() : std::string();
}

TlsCertKey certKey(const Napi::Object& o) {
  return TlsCertKey{stringProp(o, "cert"), stringProp(o, "key"), stringProp(o, "passphrase")};
}

Napi::Value ListenResult(Napi::Env env, Engine* e, Listener* l, int err) {
  if (!l) return throwUvError(env, err);
  int index = e->addListener(l);
  Napi::Object out = Napi::Object::New(env);
  out.Set("index", index);
  out.Set("address", l->address().address);
  out.Set("port", l->address().port);
  out.Set("family", l->address().family);
  return out;
}

}  // namespace

Napi::Value Configure(const Napi::CallbackInfo& info) {
  Engine* e = unwrap(info);
  Napi::Object o = info[0].As<Napi::Object>();
  EngineConfig& c = e->mutableConfig();
  auto num = [&](const char* key, double* out) {
    Napi::Value v = o.Get(key);
    if (!v.IsNumber()) return false;
    *out = v.As<Napi::Number>().DoubleValue();
    return true;
  };
  double v;
  if (num("maxHeaderSize", &v)) c.limits.max_head_size = static_cast<uint32_t>(v);
  if (num("maxHeaderLineSize", &v)) c.limits.max_line_size = static_cast<uint32_t>(v);
  if (num("maxHeaderCount", &v)) {
    c.limits.max_headers = static_cast<uint32_t>(v);
    e->setFieldCapacity(c.limits.max_headers);
  }
  if (num("maxBodySize", &v)) c.max_body_size = static_cast<uint64_t>(v);
  if (num("bodyBufferSize", &v)) c.body_buffer_size = static_cast<uint32_t>(v);
  if (num("maxKeepaliveRequests", &v)) c.max_keepalive_requests = static_cast<uint32_t>(v);
  if (num("maxConnections", &v)) c.max_connections = static_cast<uint32_t>(v);
  if (num("writeHighWaterMark", &v)) c.write_high_water = static_cast<uint32_t>(v);
  if (num("maxPipeline", &v)) c.max_pipeline = static_cast<uint32_t>(v);
  if (num("maxWriteBuffer", &v)) c.max_write_buffer = static_cast<uint64_t>(v);
  Napi::Value server = o.Get("serverHeader");
  if (server.IsString()) {
    std::string s = server.As<Napi::String>().Utf8Value();
    bool ok = true;  // a token-ish product string: no CR, LF or other controls
    for (unsigned char ch : s) ok = ok && ch >= 0x20 && ch != 0x7f;
    c.server_header = ok && !s.empty() ? "Server: " + s + "\r\n" : std::string();
  }
  double t[static_cast<int>(TimeoutKind::Count)];
  const char* keys[] = {"headerTimeout", "readTimeout", "keepaliveTimeout", "writeTimeout", "lingerTimeout",
                        "handlerTimeout"};
  for (int k = 0; k < static_cast<int>(TimeoutKind::Count); ++k)
    if (!num(keys[k], &t[k])) t[k] = -1;
  e->applyTimeouts(t);
  if (info.Length() > 1 && info[1].IsTypedArray()) e->setInfoArray(info[1]);
  return info.Env().Undefined();
}

// createTlsContext({ cert, key, passphrase?, ca?, requestCert?, rejectUnauthorized?,
//   ciphers?, ciphersuites?, minVersion?, sni?: [[name, {cert, key, passphrase?}], ...],
//   ticketKeys?: Buffer }) -> handle for listen options. Throws with the reason on bad input.
Napi::Value CreateTlsContext(const Napi::CallbackInfo& info) {
  Napi::Object o = info[0].As<Napi::Object>();
  TlsConfig config;
  config.identity = certKey(o);
  config.ca_pem = stringProp(o, "ca");
  config.request_cert = o.Get("requestCert").ToBoolean();
  Napi::Value reject = o.Get("rejectUnauthorized");
  config.reject_unauthorized = reject.IsUndefined() ? true : reject.ToBoolean().Value();
  config.ciphers = stringProp(o, "ciphers");
  config.ciphersuites = stringProp(o, "ciphersuites");
  if (stringProp(o, "minVersion") == "TLSv1.3") config.min_version = TLS1_3_VERSION;
  Napi::Value sni = o.Get("sni");
  if (sni.IsArray()) {
    Napi::Array list = sni.As<Napi::Array>();
    for (uint32_t i = 0; i < list.Length(); ++i) {
      Napi::Array pair = list.Get(i).As<Napi::Array>();
      config.sni.emplace_back(pair.Get(0u).As<Napi::String>().Utf8Value(), certKey(pair.Get(1u).As<Napi::Object>()));
    }
  }
  Napi::Value keys = o.Get("ticketKeys");
  if (keys.IsBuffer()) {
    Napi::Buffer<char> b = keys.As<Napi::Buffer<char>>();
    config.ticket_keys.assign(b.Data(), b.Length());
  }
  std::string error;
  TlsContext* tc = TlsContext::create(config, &error);
  if (!tc) {
    Napi::Error::New(info.Env(), error).ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  // JavaScript holds one reference; listeners take their own.
  return Napi::External<TlsContext>::New(info.Env(), tc, [](Napi::Env, TlsContext* t) { t->unref(); });
}

// setListenerTls(index, handle): new connections on that listener use the
// new certificates; open ones keep theirs (reloadTls, SIGHUP).
Napi::Value SetListenerTls(const Napi::CallbackInfo& info) {
  Engine* e = unwrap(info);
  int index = info[0].As<Napi::Number>().Int32Value();
  TlsContext* tls = tlsContextOf(info[1]);
  if (index < 0 || static_cast<size_t>(index) >= e->listenerCount() || !e->listener(index) || !tls) {
    Napi::TypeError::New(info.Env(), "no such TLS listener").ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  e->listener(index)->setTls(tls);
  return info.Env().Undefined();
}

Napi::Value ListenTcp(const Napi::CallbackInfo& info) {
  Engine* e = unwrap(info);
  std::string host = info[0].As<Napi::String>();
  int err = 0;
  Listener* l = Listener::listenTcp(e, host.c_str(), info[1].As<Napi::Number>().Int32Value(),
                                    info[2].As<Napi::Number>().Int32Value(), info[3].ToBoolean(),
                                    info[4].ToBoolean(), &err);
  applyListenerOptions(l, info[5]);
  return ListenResult(info.Env(), e, l, err);
}

Napi::Value ListenUnix(const Napi::CallbackInfo& info) {
  Engine* e = unwrap(info);
  std::string path = info[0].As<Napi::String>();
  int err = 0;
  Listener* l = Listener::listenUnix(e, path.c_str(), info[1].As<Napi::Number>().Int32Value(), &err);
  applyListenerOptions(l, info[2]);
  return ListenResult(info.Env(), e, l, err);
}

// listenFd(fd, backlog, duplicate): `duplicate` keeps the caller's fd open
// (useSocket hands over a dup of a net.Server's descriptor).
Napi::Value ListenFd(const Napi::CallbackInfo& info) {
  Engine* e = unwrap(info);
  int fd = info[0].As<Napi::Number>().Int32Value();
  if (info[2].ToBoolean()) fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  int err = fd < 0 ? -errno : 0;
  Listener* l = fd < 0 ? nullptr : Listener::listenFd(e, fd, info[1].As<Napi::Number>().Int32Value(), &err);
  if (!l && fd >= 0 && info[2].ToBoolean()) close(fd);
  applyListenerOptions(l, info[3]);
  return ListenResult(info.Env(), e, l, err);
}

// bindSocket({ host, port } | { path }, backlog, ipv6Only, reusePort) -> fd:
// a listening socket nobody accepts on yet (for the pre-fork supervisor).
Napi::Value BindSocket(const Napi::CallbackInfo& info) {
  Napi::Object o = info[0].As<Napi::Object>();
  int backlog = info[1].IsNumber() ? info[1].As<Napi::Number>().Int32Value() : 511;
  int fd;
  if (o.Has("path")) {
    std::string path = o.Get("path").As<Napi::String>();
    fd = Listener::bindUnix(path.c_str(), backlog);
  } else {
    std::string host = o.Get("host").As<Napi::String>();
    fd = Listener::bindTcp(host.c_str(), o.Get("port").As<Napi::Number>().Int32Value(), backlog,
                           info[2].ToBoolean(), info[3].ToBoolean());
  }
  if (fd < 0) return throwUvError(info.Env(), fd);
  return Napi::Number::New(info.Env(), fd);
}

Napi::Value Unlisten(const Napi::CallbackInfo& info) {
  unwrap(info)->unlisten();
  return info.Env().Undefined();
}

Napi::Value Drain(const Napi::CallbackInfo& info) {
  unwrap(info)->drain(info[0].ToBoolean());
  return info.Env().Undefined();
}

Napi::Value Shutdown(const Napi::CallbackInfo& info) {
  Engine* e = unwrap(info);
  e->beginShutdown(info[0]);
  e->afterJsCall();
  return info.Env().Undefined();
}

Napi::Value Stats(const Napi::CallbackInfo& info) {
  Engine* e = unwrap(info);
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("connections", static_cast<double>(e->connectionCount()));
  out.Set("requests", static_cast<double>(e->liveRequests()));
  out.Set("tlsHandshakes", static_cast<double>(e->tlsFullHandshakes()));
  out.Set("tlsResumed", static_cast<double>(e->tlsResumedHandshakes()));
  return out;
}

}  // namespace feersum::setup
