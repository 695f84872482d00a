// Response framing for one request: the head (status line, application
// headers, Content-Length / chunked / close-delimited, Connection, Date),
// body writes in that framing, and the end of the response. The addon calls
// these on behalf of JavaScript.
#pragma once

#include <node_api.h>

#include "request.h"
#include "response.h"

namespace feersum {

class Engine;

enum ResponseResult : int {
  kOk = 0,
  kErrGone = -1,            // the request is finished or its connection closed
  kErrAlreadyStarted = -2,  // a response was already started
  kErrBadHeaders = -3,      // see the HeadError
  kErrBadStatus = -4,
  kErrLengthMismatch = -5,  // body length differs from the declared Content-Length
  kErrNotStreaming = -6,    // write/end without startStreaming
  kErrNoMemory = -7,
  kErrBadBody = -8,         // body is not a string, Buffer/Uint8Array or a flat array of them
  kErrOverflow = -9,        // more than maxWriteBuffer queued: the connection was dropped
};

// A piece of body: bytes to copy, or bytes of a JavaScript Buffer kept
// alive by `ref` until written (released here if never queued).
struct BodyPart {
  const char* data;
  size_t len;
  napi_ref ref;
};

struct HeaderBlock {
  const char* data;
  size_t len;
  uint32_t count;
};

// Complete response with the given body parts.
int respond(Engine* e, Request* r, int status, const HeaderBlock& headers, BodyPart* parts,
            size_t nparts, HeadError* head_error);
// Head of a streamed response; body follows through writeBody, then endResponse.
int startStreaming(Engine* e, Request* r, int status, const HeaderBlock& headers, HeadError* head_error);
int writeBody(Engine* e, Request* r, BodyPart& part);
int endResponse(Engine* e, Request* r);
// A 1xx response before the final one (ignored for HTTP/1.0 clients).
int informational(Engine* e, Request* r, int status, const HeaderBlock& headers, HeadError* head_error);

}  // namespace feersum
