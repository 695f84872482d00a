// The N-API surface: the Engine class JavaScript drives (lib/binding.ts
// describes it). The per-request methods live here and use the plain N-API C
// interface with few calls each; the cold setup methods (addon_setup.cc) use
// node-addon-api for readability.
#include <napi.h>

#include <vector>

#include "addon_setup.h"
#include "engine.h"
#include "probe_binding.h"
#include "response_writer.h"

namespace feersum {

namespace {

// Buffers larger than this are written by reference (zero-copy); smaller
// ones are cheaper to copy than to keep alive with a reference.
constexpr size_t kCopyThreshold = 16 * 1024;

struct Args {
  static constexpr size_t kMax = 6;
  napi_value argv[kMax];
  size_t argc = kMax;
  Engine* engine = nullptr;
  Args(napi_env env, napi_callback_info info) {
    napi_value self;
    napi_get_cb_info(env, info, &argc, argv, &self, nullptr);
    void* p = nullptr;
    napi_unwrap(env, self, &p);
    engine = static_cast<Engine*>(p);
    for (size_t i = argc; i < kMax; ++i) napi_get_undefined(env, &argv[i]);
  }
};

napi_value toJs(napi_env env, int32_t v) {
  napi_value out;
  napi_create_int32(env, v, &out);
  return out;
}

Request* requestArg(Engine* e, napi_env env, napi_value v) {
  int64_t id = 0;
  if (napi_get_value_int64(env, v, &id) != napi_ok || id <= 0) return nullptr;
  return e->findRequest(static_cast<uint64_t>(id));
}

int32_t intArg(napi_env env, napi_value v, int32_t fallback = 0) {
  int32_t out = fallback;
  napi_get_value_int32(env, v, &out);
  return out;
}

// The header block: "name\nvalue\n..." as UTF-8 (see response.h for why).
struct HeaderArg {
  HeaderBlock block{nullptr, 0, 0};
  bool ok = true;
};

bool readString(napi_env env, napi_value v, ByteBuffer& buf, size_t* off, size_t* len) {
  // One call in the common case: write into the free space, and only ask
  // for the exact length when the string may not have fit (V8 stops at a
  // character boundary, so up to 3 bytes short of the end means "maybe").
  size_t start = buf.size();
  if (!buf.reserve(start + 256)) return false;
  size_t room = 256;
  size_t copied = 0;
  if (napi_get_value_string_utf8(env, v, buf.data() + start, room, &copied) != napi_ok) return false;
  if (copied + 4 >= room) {
    size_t need = 0;
    napi_get_value_string_utf8(env, v, nullptr, 0, &need);
    if (!buf.reserve(start + need + 1)) return false;
    napi_get_value_string_utf8(env, v, buf.data() + start, need + 1, &copied);
  }
  buf.resize(start + copied);
  *off = start;
  *len = copied;
  return true;
}

HeaderArg headerArg(napi_env env, ByteBuffer& buf, napi_value block, napi_value count) {
  HeaderArg h;
  napi_valuetype t;
  napi_typeof(env, block, &t);
  if (t != napi_string) {
    h.ok = t == napi_undefined;
    return h;
  }
  size_t off, len;
  if (!readString(env, block, buf, &off, &len)) {
    h.ok = false;
    return h;
  }
  h.block.data = buf.data() + off;
  h.block.len = len;
  h.block.count = static_cast<uint32_t>(intArg(env, count));
  return h;
}

// Turns a body value (string, Buffer/Uint8Array, or an array of them) into
// parts. String bytes land in `strings`; their pointers are fixed up once
// all are read because the buffer may move while growing.
bool collectParts(napi_env env, napi_value v, ByteBuffer& strings, std::vector<BodyPart>& parts,
                  std::vector<size_t>& string_parts, int depth = 0) {
  napi_valuetype t;
  napi_typeof(env, v, &t);
  if (t == napi_undefined || t == napi_null) return true;
  if (t == napi_string) {
    size_t off, len;
    if (!readString(env, v, strings, &off, &len)) return false;
    string_parts.push_back(parts.size());
    parts.push_back(BodyPart{reinterpret_cast<const char*>(off), len, nullptr});
    return true;
  }
  bool is_typed = false;
  napi_is_typedarray(env, v, &is_typed);
  if (is_typed) {
    napi_typedarray_type type;
    size_t length;
    void* data;
    napi_value ab;
    size_t offset;
    napi_get_typedarray_info(env, v, &type, &length, &data, &ab, &offset);
    if (type != napi_uint8_array) return false;
    napi_ref ref = nullptr;
    if (length > kCopyThreshold) napi_create_reference(env, v, 1, &ref);
    parts.push_back(BodyPart{static_cast<const char*>(data), length, ref});
    return true;
  }
  bool is_array = false;
  napi_is_array(env, v, &is_array);
  if (!is_array || depth > 0) return false;
  uint32_t n = 0;
  napi_get_array_length(env, v, &n);
  for (uint32_t i = 0; i < n; ++i) {
    napi_value item;
    napi_get_element(env, v, i, &item);
    if (!collectParts(env, item, strings, parts, string_parts, depth + 1)) return false;
  }
  return true;
}

struct Body {
  std::vector<BodyPart> parts;
  bool ok;
};

Body bodyArg(Engine* e, napi_env env, napi_value v) {
  static thread_local ByteBuffer strings;
  static thread_local std::vector<size_t> string_parts;
  strings.clear();
  string_parts.clear();
  Body b;
  b.ok = collectParts(env, v, strings, b.parts, string_parts);
  for (size_t i : string_parts)
    b.parts[i].data = strings.data() + reinterpret_cast<size_t>(b.parts[i].data);
  if (!b.ok) {
    for (BodyPart& p : b.parts)
      if (p.ref) napi_delete_reference(env, p.ref);
    b.parts.clear();
  }
  return b;
}

thread_local HeadError last_head_error = HeadError::None;

// Output that queued past the high-water mark makes write() return false.
// Looked up by id: flushing may have closed the connection and freed it.
int32_t backpressure(Engine* e, uint64_t id) {
  Request* r = e->findRequest(id);
  if (!r) return kErrGone;
  size_t queued = r->conn->isHead(r) ? r->conn->queuedBytes() : r->held.bytes();
  return queued < e->config().write_high_water ? 1 : 0;
}

// ---------------------------------------------------------------- methods

napi_value Construct(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], self;
  napi_get_cb_info(env, info, &argc, argv, &self, nullptr);
  Engine* e = new Engine(env, self, argv[1], argv[2]);
  if (!e->setInfoArray(argv[0])) {
    napi_throw_type_error(env, nullptr, "Engine(info: Int32Array, onRequest, onEvent)");
    return nullptr;
  }
  napi_wrap(env, self, e, [](napi_env, void* p, void*) { delete static_cast<Engine*>(p); }, nullptr, nullptr);
  return self;
}

napi_value Respond(napi_env env, napi_callback_info info) {
  Args a(env, info);
  Engine* e = a.engine;
  Request* r = requestArg(e, env, a.argv[0]);
  if (!r) return toJs(env, kErrGone);
  ByteBuffer& hbuf = e->ctx().header_scratch;
  hbuf.clear();
  HeaderArg h = headerArg(env, hbuf, a.argv[2], a.argv[3]);
  Body body = bodyArg(e, env, a.argv[4]);
  if (!h.ok || !body.ok) {
    last_head_error = h.ok ? HeadError::None : HeadError::BadHeaderCount;
    for (BodyPart& p : body.parts)
      if (p.ref) napi_delete_reference(env, p.ref);
    return toJs(env, h.ok ? kErrBadBody : kErrBadHeaders);
  }
  int rc = respond(e, r, intArg(env, a.argv[1]), h.block, body.parts.data(), body.parts.size(), &last_head_error);
  e->afterJsCall();
  return toJs(env, rc);
}

napi_value Start(napi_env env, napi_callback_info info) {
  Args a(env, info);
  Engine* e = a.engine;
  Request* r = requestArg(e, env, a.argv[0]);
  if (!r) return toJs(env, kErrGone);
  ByteBuffer& hbuf = e->ctx().header_scratch;
  hbuf.clear();
  HeaderArg h = headerArg(env, hbuf, a.argv[2], a.argv[3]);
  if (!h.ok) return toJs(env, kErrBadHeaders);
  int rc = startStreaming(e, r, intArg(env, a.argv[1]), h.block, &last_head_error);
  e->afterJsCall();
  return toJs(env, rc);
}

napi_value Informational(napi_env env, napi_callback_info info) {
  Args a(env, info);
  Engine* e = a.engine;
  Request* r = requestArg(e, env, a.argv[0]);
  if (!r) return toJs(env, kErrGone);
  ByteBuffer& hbuf = e->ctx().header_scratch;
  hbuf.clear();
  HeaderArg h = headerArg(env, hbuf, a.argv[2], a.argv[3]);
  if (!h.ok) return toJs(env, kErrBadHeaders);
  int rc = informational(e, r, intArg(env, a.argv[1]), h.block, &last_head_error);
  e->afterJsCall();
  return toJs(env, rc);
}

// write(id, chunk) -> 1 (keep writing), 0 (past the high-water mark), < 0 error
napi_value Write(napi_env env, napi_callback_info info) {
  Args a(env, info);
  Engine* e = a.engine;
  Request* r = requestArg(e, env, a.argv[0]);
  if (!r) return toJs(env, kErrGone);
  Body body = bodyArg(e, env, a.argv[1]);
  if (!body.ok) return toJs(env, kErrBadBody);
  uint64_t id = r->id();
  int rc = kOk;
  for (BodyPart& p : body.parts)
    if (rc == kOk) rc = writeBody(e, r, p);  // r stays valid memory even if the connection closed
    else if (p.ref) napi_delete_reference(env, p.ref);
  e->afterJsCall();
  return toJs(env, rc == kOk ? backpressure(e, id) : rc);
}

napi_value End(napi_env env, napi_callback_info info) {
  Args a(env, info);
  Engine* e = a.engine;
  Request* r = requestArg(e, env, a.argv[0]);
  if (!r) return toJs(env, kErrGone);
  int rc = endResponse(e, r);
  e->afterJsCall();
  return toJs(env, rc);
}

// pollDrain(id) -> 1 when the output is drained now, 0 when a Drain event
// will follow, -1 when the request is gone.
napi_value PollDrain(napi_env env, napi_callback_info info) {
  Args a(env, info);
  Request* r = requestArg(a.engine, env, a.argv[0]);
  if (!r) return toJs(env, kErrGone);
  if (r->conn->isHead(r) && r->conn->drained()) return toJs(env, 1);
  r->want_drain = true;
  r->notify = true;
  return toJs(env, 0);
}

napi_value SetNotify(napi_env env, napi_callback_info info) {
  Args a(env, info);
  Request* r = requestArg(a.engine, env, a.argv[0]);
  if (!r) return toJs(env, kErrGone);
  return toJs(env, r->conn->watch(r));
}

napi_value PauseBody(napi_env env, napi_callback_info info) {
  Args a(env, info);
  Request* r = requestArg(a.engine, env, a.argv[0]);
  if (!r) return toJs(env, kErrGone);
  bool pause = false;
  napi_get_value_bool(env, a.argv[1], &pause);
  if (pause) r->conn->pauseReading(kPauseApp);
  else r->conn->resumeReading(kPauseApp);
  a.engine->afterJsCall();
  return toJs(env, 0);
}

napi_value Fileno(napi_env env, napi_callback_info info) {
  Args a(env, info);
  Request* r = requestArg(a.engine, env, a.argv[0]);
  return toJs(env, r ? r->conn->fileno() : -1);
}

napi_value ForceVersion(napi_env env, napi_callback_info info) {
  Args a(env, info);
  Request* r = requestArg(a.engine, env, a.argv[0]);
  if (!r) return toJs(env, kErrGone);
  if (r->response != ResponseState::None) return toJs(env, kErrAlreadyStarted);
  int v = intArg(env, a.argv[1]);
  r->force_http10 = v == 10;
  r->force_http11 = v == 11;
  return toJs(env, 0);
}

napi_value Abort(napi_env env, napi_callback_info info) {
  Args a(env, info);
  Request* r = requestArg(a.engine, env, a.argv[0]);
  if (!r) return toJs(env, kErrGone);
  r->conn->destroy();
  a.engine->afterJsCall();
  return toJs(env, 0);
}

// detach(id) -> [fd, head: Buffer, pending: Buffer] or a negative error code
napi_value Detach(napi_env env, napi_callback_info info) {
  Args a(env, info);
  Request* r = requestArg(a.engine, env, a.argv[0]);
  if (!r) return toJs(env, kErrGone);
  ByteBuffer head, pending;
  int fd = r->conn->detach(head, pending);
  a.engine->afterJsCall();
  if (fd < 0) return toJs(env, fd);
  napi_value out, v;
  napi_create_array_with_length(env, 3, &out);
  napi_set_element(env, out, 0, toJs(env, fd));
  napi_create_buffer_copy(env, head.size(), head.data(), nullptr, &v);
  napi_set_element(env, out, 1, v);
  napi_create_buffer_copy(env, pending.size(), pending.data(), nullptr, &v);
  napi_set_element(env, out, 2, v);
  return out;
}

// tunnel(id) -> 0 or a negative error: psgix.io on a TLS connection.
napi_value Tunnel(napi_env env, napi_callback_info info) {
  Args a(env, info);
  Request* r = requestArg(a.engine, env, a.argv[0]);
  if (!r) return toJs(env, kErrGone);
  int rc = r->conn->startTunnel(r);
  a.engine->afterJsCall();
  return toJs(env, rc);
}

napi_value LastHeadError(napi_env env, napi_callback_info info) {
  napi_value out;
  napi_create_string_utf8(env, describe(last_head_error), NAPI_AUTO_LENGTH, &out);
  return out;
}

template <Napi::Value (*F)(const Napi::CallbackInfo&)>
napi_value wrapCold(napi_env env, napi_callback_info info) {
  Napi::CallbackInfo ci(env, info);
  Napi::Value v = F(ci);
  return v;
}

napi_value CreateEngineClass(napi_env env) {
  napi_property_descriptor methods[] = {
      {"respond", nullptr, Respond, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"start", nullptr, Start, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"write", nullptr, Write, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"end", nullptr, End, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"informational", nullptr, Informational, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"pollDrain", nullptr, PollDrain, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"setNotify", nullptr, SetNotify, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"pauseBody", nullptr, PauseBody, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"fileno", nullptr, Fileno, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"forceVersion", nullptr, ForceVersion, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"abort", nullptr, Abort, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"detach", nullptr, Detach, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"tunnel", nullptr, Tunnel, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"lastHeadError", nullptr, LastHeadError, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"configure", nullptr, wrapCold<setup::Configure>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"listenTcp", nullptr, wrapCold<setup::ListenTcp>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"listenUnix", nullptr, wrapCold<setup::ListenUnix>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"listenFd", nullptr, wrapCold<setup::ListenFd>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"unlisten", nullptr, wrapCold<setup::Unlisten>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"shutdown", nullptr, wrapCold<setup::Shutdown>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"drain", nullptr, wrapCold<setup::Drain>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"stats", nullptr, wrapCold<setup::Stats>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"setListenerTls", nullptr, wrapCold<setup::SetListenerTls>, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_value cls;
  napi_define_class(env, "Engine", NAPI_AUTO_LENGTH, Construct, nullptr, sizeof methods / sizeof methods[0],
                    methods, &cls);
  return cls;
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("Engine", Napi::Value(env, CreateEngineClass(env)));
  napi_value fn;
  napi_create_function(env, "probeRequests", NAPI_AUTO_LENGTH, ProbeRequestsBinding, nullptr, &fn);
  exports.Set("probeRequests", Napi::Value(env, fn));
  napi_create_function(env, "setScalarParser", NAPI_AUTO_LENGTH, SetScalarParserBinding, nullptr, &fn);
  exports.Set("setScalarParser", Napi::Value(env, fn));
  exports.Set("bindSocket", Napi::Function::New(env, setup::BindSocket));
  exports.Set("createTlsContext", Napi::Function::New(env, setup::CreateTlsContext));
  return exports;
}

NODE_API_MODULE(feersum, Init)

}  // namespace feersum
