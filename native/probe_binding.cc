// N-API glue for the request probe (tests only), plain C API.
#include "probe_binding.h"

#include <cstdint>

#include "request_probe.h"

namespace {

#define PB_CHECK(call)                                   \
  do {                                                   \
    if ((call) != napi_ok) return throwLastError(env);   \
  } while (0)

napi_value throwLastError(napi_env env) {
  const napi_extended_error_info* info = nullptr;
  napi_get_last_error_info(env, &info);
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) {
    napi_throw_error(env, nullptr, info && info->error_message ? info->error_message : "N-API call failed");
  }
  return nullptr;
}

bool isNullish(napi_env env, napi_value v) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok) return true;
  return t == napi_undefined || t == napi_null;
}

// Reads an optional non-negative integer argument.
bool optionalUint(napi_env env, napi_value v, double max, double* out, const char* what) {
  if (isNullish(env, v)) return true;
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || !(d >= 0) || d > max || d != static_cast<double>(static_cast<uint64_t>(d))) {
    napi_throw_range_error(env, nullptr, what);
    return false;
  }
  *out = d;
  return true;
}

napi_value latin1(napi_env env, const std::string& s) {
  napi_value v = nullptr;
  napi_create_string_latin1(env, s.data(), s.size(), &v);
  return v;
}

napi_value boolean(napi_env env, bool b) {
  napi_value v = nullptr;
  napi_get_boolean(env, b, &v);
  return v;
}

napi_value number(napi_env env, double d) {
  napi_value v = nullptr;
  napi_create_double(env, d, &v);
  return v;
}

bool setProp(napi_env env, napi_value obj, const char* name, napi_value v) {
  return v && napi_set_named_property(env, obj, name, v) == napi_ok;
}

}  // namespace

napi_value ProbeRequestsBinding(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4] = {nullptr, nullptr, nullptr, nullptr};
  PB_CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (argc < 1) {
    napi_throw_type_error(env, nullptr, "probeRequests(buf, splitEvery?, maxHeadSize?, maxHeaders?)");
    return nullptr;
  }

  const char* data = nullptr;
  size_t len = 0;
  bool is_buffer = false;
  PB_CHECK(napi_is_buffer(env, argv[0], &is_buffer));
  if (is_buffer) {
    void* p = nullptr;
    PB_CHECK(napi_get_buffer_info(env, argv[0], &p, &len));
    data = static_cast<const char*>(p);
  } else {
    bool is_ta = false;
    PB_CHECK(napi_is_typedarray(env, argv[0], &is_ta));
    napi_typedarray_type type = napi_int8_array;
    void* p = nullptr;
    if (is_ta) PB_CHECK(napi_get_typedarray_info(env, argv[0], &type, &len, &p, nullptr, nullptr));
    if (!is_ta || type != napi_uint8_array) {
      napi_throw_type_error(env, nullptr, "probeRequests: buf must be a Buffer or Uint8Array");
      return nullptr;
    }
    data = static_cast<const char*>(p);
  }

  feersum::ParserLimits limits;
  double split = 0, max_head = limits.max_head_size, max_headers = limits.max_headers;
  if (argc > 1 && !optionalUint(env, argv[1], 1e15, &split, "splitEvery must be a non-negative integer"))
    return nullptr;
  if (argc > 2 && !optionalUint(env, argv[2], 4294967295.0, &max_head, "maxHeadSize must be a uint32"))
    return nullptr;
  if (argc > 3 && !optionalUint(env, argv[3], 1e6, &max_headers, "maxHeaders must be an integer <= 1e6"))
    return nullptr;
  limits.max_head_size = static_cast<uint32_t>(max_head);
  limits.max_headers = static_cast<uint32_t>(max_headers);

  feersum::ProbeResult r = feersum::probeRequests(data, len, limits, static_cast<size_t>(split));

  napi_value out, messages;
  PB_CHECK(napi_create_object(env, &out));
  PB_CHECK(napi_create_array_with_length(env, r.messages.size(), &messages));
  for (size_t i = 0; i < r.messages.size(); ++i) {
    const feersum::ProbeMessage& m = r.messages[i];
    napi_value msg, headers, body;
    PB_CHECK(napi_create_object(env, &msg));
    PB_CHECK(napi_create_array_with_length(env, m.headers.size(), &headers));
    for (size_t j = 0; j < m.headers.size(); ++j) {
      napi_value pair;
      PB_CHECK(napi_create_array_with_length(env, 2, &pair));
      PB_CHECK(napi_set_element(env, pair, 0, latin1(env, m.headers[j].first)));
      PB_CHECK(napi_set_element(env, pair, 1, latin1(env, m.headers[j].second)));
      PB_CHECK(napi_set_element(env, headers, static_cast<uint32_t>(j), pair));
    }
    PB_CHECK(napi_create_buffer_copy(env, m.body.size(), m.body.data(), nullptr, &body));
    if (!setProp(env, msg, "method", latin1(env, m.method)) || !setProp(env, msg, "url", latin1(env, m.target)) ||
        !setProp(env, msg, "versionMinor", number(env, m.version_minor)) ||
        !setProp(env, msg, "headers", headers) || !setProp(env, msg, "body", body) ||
        !setProp(env, msg, "chunked", boolean(env, m.chunked)) ||
        !setProp(env, msg, "keepAlive", boolean(env, m.keep_alive)) ||
        !setProp(env, msg, "upgrade", boolean(env, m.upgrade)) ||
        !setProp(env, msg, "expectContinue", boolean(env, m.expect_continue)))
      return throwLastError(env);
    PB_CHECK(napi_set_element(env, messages, static_cast<uint32_t>(i), msg));
  }
  if (!setProp(env, out, "messages", messages) || !setProp(env, out, "error", boolean(env, r.error)) ||
      !setProp(env, out, "status", number(env, r.status)) || !setProp(env, out, "reason", latin1(env, r.reason)) ||
      !setProp(env, out, "errorName", latin1(env, r.error_name)) ||
      !setProp(env, out, "errorOffset", number(env, r.error_offset)) ||
      !setProp(env, out, "incomplete", boolean(env, r.incomplete)) ||
      !setProp(env, out, "rest", number(env, static_cast<double>(r.rest))))
    return throwLastError(env);
  return out;
}

napi_value SetScalarParserBinding(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1] = {nullptr};
  PB_CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  bool force = false;
  if (argc < 1 || napi_get_value_bool(env, argv[0], &force) != napi_ok) {
    napi_throw_type_error(env, nullptr, "setScalarParser(force: boolean)");
    return nullptr;
  }
  feersum::forceScalarParser(force);
  return latin1(env, feersum::activeParserImpl());
}
