// Implementation of the per-loop shared buffers and the cork (see loop_context.h).
#include "loop_context.h"

#include "connection.h"

namespace feersum {

void Cork::addCopy(const char* p, size_t n) {
  if (n == 0) return;
  char* dst = buf + len;
  std::memcpy(dst, p, n);
  len += static_cast<uint32_t>(n);
  if (nsegs > 0) {
    Segment& last = segs[nsegs - 1];
    if (!last.ref && last.data + last.len == dst) {
      last.len += static_cast<uint32_t>(n);
      return;
    }
  }
  segs[nsegs++] = Segment{dst, static_cast<uint32_t>(n), nullptr};
}

void Cork::addRef(const char* p, size_t n, napi_ref ref) {
  segs[nsegs++] = Segment{p, static_cast<uint32_t>(n), ref};
}

size_t Cork::bytes() const {
  size_t n = 0;
  for (int i = 0; i < nsegs; ++i) n += segs[i].len;
  return n;
}

void LoopContext::flushCork() {
  Connection* c = cork.owner;
  if (!c) return;
  // Ownership ends before writing: the write may close the connection.
  cork.owner = nullptr;
  c->writeCorked(cork);
  for (int i = 0; i < cork.nsegs; ++i)
    if (cork.segs[i].ref) napi_delete_reference(env, cork.segs[i].ref);
  cork.reset();
}

void LoopContext::dropCorkIfOwner(Connection* c) {
  if (cork.owner != c) return;
  for (int i = 0; i < cork.nsegs; ++i)
    if (cork.segs[i].ref) napi_delete_reference(env, cork.segs[i].ref);
  cork.reset();
}

namespace {

void freeContext(napi_env, void* data, void*) {
  LoopContext* ctx = static_cast<LoopContext*>(data);
  std::free(ctx->read_buffer);
  std::free(ctx->tls_plain);
  std::free(ctx->cork.buf);
  delete ctx;
}

}  // namespace

LoopContext* LoopContext::forEnv(napi_env env) {
  void* data = nullptr;
  napi_get_instance_data(env, &data);
  if (data) return static_cast<LoopContext*>(data);
  LoopContext* ctx = new LoopContext();
  ctx->env = env;
  napi_get_uv_event_loop(env, &ctx->loop);
  ctx->read_buffer = static_cast<char*>(std::malloc(kReadBufferSize));
  ctx->tls_plain = static_cast<char*>(std::malloc(kTlsPlainSize));
  ctx->cork.buf = static_cast<char*>(std::malloc(Cork::kSize));
  napi_set_instance_data(env, ctx, freeContext, nullptr);
  return ctx;
}

}  // namespace feersum
