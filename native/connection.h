// One client connection: reads into the loop's buffer, parses heads, reads
// bodies (buffered or streamed), keeps pipelined responses in request order,
// frames responses and writes them with writev, and runs the keep-alive,
// timeout and close logic. Bytes cross the socket only in readSocket /
// writeSocket, the seam where TLS sits between socket and HTTP.
#pragma once

#include <uv.h>

#include "http_parser.h"
#include "request.h"
#include "timers.h"
#include "tls_session.h"
#include "write_queue.h"

namespace feersum {

class Engine;
class TlsContext;
struct LoopContext;
struct Cork;

// Why reading is paused; reading runs only when none is set.
enum PauseReason : uint8_t {
  kPauseApp = 1,        // request-body consumer asked for backpressure
  kPausePipeline = 2,   // too many requests awaiting responses
  kPauseUpgrade = 4,    // Upgrade/CONNECT or non-keep-alive request: wait for its response
  kPauseOutput = 8,     // too much output queued for a client that reads slowly
};

// Events delivered to JavaScript (see Engine::queueEvent).
enum class ConnEvent : uint8_t {
  BodyData = 1,   // chunk of a streamed request body
  BodyEnd = 2,    // streamed body complete
  BodyAbort = 3,  // streamed body will never complete
  Drain = 4,      // output queue empty and socket writable (pollCb)
  Complete = 5,   // response fully written to the socket
  Abort = 6,      // connection lost before the response was complete
  ShutdownDone = 7,  // graceful shutdown finished (no request id)
};

class Connection {
 public:
  static Connection* create(Engine* engine, int listener_index, bool is_pipe);
  // Accepts from `server` into this connection and starts reading. Returns
  // a libuv error code; on error the connection must be closed.
  int accept(uv_stream_t* server, bool proxy_protocol, TlsContext* tls);

  // Application output for request r, in its order on the connection.
  bool emitCopy(Request* r, const char* p, size_t n);
  bool emitRef(Request* r, const char* p, size_t n, napi_ref ref);
  // Called by the engine when the app finished the response of r.
  void responseComplete(Request* r);
  // JavaScript wants COMPLETE (or ABORT) for r. Returns 0, or kGone (-1)
  // when r's response is already fully written (nothing left to report).
  int watch(Request* r);

  // Writes the cork's bytes (this connection owns it) to the socket.
  void writeCorked(Cork& cork);

  void pauseReading(PauseReason why);
  void resumeReading(PauseReason why);
  // Processes input that was held while reading was paused (safe point only).
  void processHeldInput();

  // Closes immediately, aborting everything in flight.
  void destroy();
  // Finishes the current responses, then closes (graceful shutdown).
  void closeWhenIdle();
  bool idle() const { return req_head_ == nullptr && body_req_ == nullptr && inbuf_len_ == 0; }

  size_t queuedBytes() const;  // output not yet written, for write() backpressure
  bool drained() const { return wq_.empty() && tls_out_.empty() && !write_in_flight_ && !corked(); }
  bool isHead(const Request* r) const { return req_head_ == r; }
  bool closed() const { return closed_; }
  int fileno() const;
  uv_stream_t* stream() { return &stream_; }
  bool isTls() const { return tls_ != nullptr; }
  // The TLS values the env reports (TlsSession::describe), once the handshake is done.
  const ByteBuffer& tlsEnv() const { return tls_env_; }

  // Detaches the socket for psgix.io: returns a dup of the fd and moves the
  // unread input into `head_out` and unwritten output into `pending_out`.
  int detach(ByteBuffer& head_out, ByteBuffer& pending_out);
  // psgix.io on a TLS connection, whose session cannot leave this process
  // side: from now on every decrypted byte after r's head goes to JavaScript
  // as r's body, and r's "response" is raw bytes (write) until end.
  int startTunnel(Request* r);
  bool isTunnel() const { return tunnel_ != nullptr; }

  void onTimeout(TimerNode* node, TimeoutKind kind);

  // Intrusive list of the engine's connections.
  Connection* prev = nullptr;
  Connection* next = nullptr;
  TimerNode read_timer;   // header / body / keep-alive / linger
  TimerNode write_timer;  // write progress

  int listener_index;
  char remote_addr[48];  // text form, "" for Unix sockets
  uint8_t remote_addr_len = 0;
  int32_t remote_port = -1;

 private:
  explicit Connection(Engine* engine, int listener_index);

  static void onAlloc(uv_handle_t* h, size_t suggested, uv_buf_t* buf);
  static void onRead(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf);
  static void onWrite(uv_write_t* req, int status);
  static void onShutdown(uv_shutdown_t* req, int status);
  static void onClose(uv_handle_t* h);
  static void onChunkData(void* ctx, const char* data, size_t len);

  // Input.
  void readSocket(ssize_t nread, const uv_buf_t* buf);
  void readTls(const char* data, size_t len);
  static bool onTlsPlain(void* self, const char* data, size_t len);
  void consumeInput(const char* data, size_t len);
  size_t process(const char* data, size_t len);
  void keepUnconsumed(const char* data, size_t len, size_t used);
  void markConsumed(const char* p) { proc_pos_ = static_cast<size_t>(p - proc_data_); }
  bool parsingBlocked() const;
  size_t startRequest(const char* base, const RequestHead& head, size_t avail);
  bool dispatchPinned(Request* r, const char* base, const RequestHead& head, const char* body,
                      size_t body_len);
  size_t readBody(const char* data, size_t len);
  void bodyData(const char* data, size_t len);
  void finishBody(Request* r);
  void abortBody(Request* r);
  void rejectBody(Request* r, int status, const char* reason);
  void dispatchSaved(Request* r, bool streaming);
  void sendContinue(Request* r);
  void handleEof(int status);
  bool wantsInput() const;
  void updateReading();
  void becameIdleMaybe();

  bool readProxyHeader(const char* data, size_t len, size_t* pos);

  // Errors the engine answers itself.
  void failRequest(int status, const char* reason);
  void writeErrorResponse();
  void writeErrorResponseFor(Request* r);
 public:
  // Answers r with an error of the engine's own (the body could not be read,
  // the handler missed its deadline): as its response if none started, else
  // by closing. JavaScript hears the request aborted.
  void answerInsteadOfApp(Request* r, int status, const char* reason);
 private:

  // Output.
  bool useCork(size_t n, bool by_ref);
  void flushQueue();
  void flushSocket();
  void encryptPending();
  void encryptPendingAll();
  void checkDrained();
  void reportWritten();
  void armWriteTimer();
  int tryWriteSocket(uv_buf_t* iov, int n);
  void written(size_t n);
  void afterOutputDrained();
  void startClosing();
  void closeIdle();
  void maybeFree(Request* r);
  bool corked() const;

  Engine* engine_;
  union {
    uv_handle_t handle_;
    uv_stream_t stream_;
    uv_tcp_t tcp_;
    uv_pipe_t pipe_;
  };

  // Requests awaiting (the end of) their response, oldest first; the head
  // writes to the socket, the others hold their output until their turn.
  Request* req_head_ = nullptr;
  Request* req_tail_ = nullptr;
  uint32_t in_flight_ = 0;
  // Complete responses not yet fully written, whose requests want to know.
  Request* done_head_ = nullptr;
  Request* done_tail_ = nullptr;
  // The request whose body is being read (at most one: bodies are in order).
  Request* body_req_ = nullptr;
  Request* tunnel_ = nullptr;  // see startTunnel; null again once its output ended
  // Requests of a destroyed connection: unreachable from JavaScript at once,
  // freed in onClose, so native code still holding one on the stack stays safe.
  Request* graveyard_ = nullptr;
  bool tunneled_ = false;      // counted in the engine's tunnels
  uint64_t body_remaining_ = 0;  // Content-Length framing
  bool body_chunked_ = false;
  ChunkedDecoder chunked_;
  // Saved head of a request whose buffered body is still arriving.
  ByteBuffer saved_head_;

  // Unconsumed input (unfinished head, or input held while paused).
  char* inbuf_ = nullptr;
  uint32_t inbuf_len_ = 0;
  uint32_t inbuf_cap_ = 0;
  uint32_t scanned_ = 0;  // parser's resume hint for the head in inbuf_

  // Output waiting for the socket; for TLS, plaintext waiting to be
  // encrypted (tls_out_ then holds the records waiting for the socket).
  OutQueue wq_;
  TlsSession* tls_ = nullptr;
  OutQueue tls_out_;
  ByteBuffer tls_env_;
  uv_write_t* write_req_ = nullptr;
  size_t write_in_flight_ = 0;
  uint64_t out_pos_ = 0;      // bytes handed to the output stream
  uint64_t written_pos_ = 0;  // bytes the socket accepted

  // The buffer process() is working through, so a detach during dispatch
  // can hand over the bytes after the current request.
  const char* proc_data_ = nullptr;
  size_t proc_len_ = 0;
  size_t proc_pos_ = 0;

  uint64_t discarded_ = 0;       // bytes of an unread body dropped so far
  uint16_t body_reject_status_ = 0;

  uint32_t requests_ = 0;  // requests started on this connection
  uint16_t error_status_ = 0;  // a refused request waits for earlier responses
  const char* error_reason_ = nullptr;
  uint8_t paused_ = 0;     // PauseReason bits
  bool reading_ = false;
  bool stop_parsing_ = false;   // last request on this connection was parsed
  bool peer_ended_ = false;     // EOF received
  bool close_after_output_ = false;
  bool lingering_ = false;
  bool closed_ = false;
  bool is_pipe_;
  bool head_timer_running_ = false;
  bool in_process_ = false;     // inside process(): input must not be re-entered
  bool awaiting_proxy_ = false; // PROXY listener: the header has not arrived yet
  bool tls_counted_ = false;    // handshake reported to the engine's statistics
  bool tls_close_sent_ = false; // close_notify queued
 public:
  bool held_scheduled = false;  // on the engine's list of held input to process
};

}  // namespace feersum
