// Chunked transfer-coding decoder (RFC 9112 section 7.1), see http_parser.h.
//
//   chunked-body   = *chunk last-chunk trailer-section CRLF
//   chunk          = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
//   chunk-size     = 1*HEXDIG
//   last-chunk     = 1*("0") [ chunk-ext ] CRLF
//   chunk-ext      = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
//   chunk-ext-val  = token / quoted-string
//   trailer-section = *( field-line CRLF )
//
// Strict: CRLF only, no whitespace after the size unless a ';' follows, no
// ';' without an extension name, quoted strings must close on the line,
// and chunk data must be followed by CRLF. Every state change happens on a
// single byte, so the result does not depend on how the input is split.
#include <cstring>

#include "http_parser.h"
#include "http_parser_internal.h"

namespace feersum {

namespace {

using detail::isHex;
using detail::isOws;
using detail::isTchar;
using detail::isValueChar;

enum State : uint8_t {
  kSizeStart = 0,   // first HEXDIG of a chunk-size
  kSize,            // more HEXDIGs, or what follows the size
  kSizeBws,         // whitespace after the size: only ';' may follow
  kExtNameStart,    // after ';' (BWS allowed), expecting chunk-ext-name
  kExtName,         // in chunk-ext-name
  kExtNameBws,      // whitespace after a name: '=' or ';' must follow
  kExtValueStart,   // after '=' (BWS allowed), expecting token or '"'
  kExtValueToken,   // in a token value
  kExtQuoted,       // in a quoted-string value
  kExtQuotedEscape, // after '\' in a quoted-string
  kExtAfterValue,   // after a value: ';', BWS or CR
  kExtValueBws,     // whitespace after a value: only ';' may follow
  kSizeLf,          // CR of the size line seen, LF expected
  kData,            // chunk-data
  kDataCr,          // CR expected after chunk-data
  kDataLf,          // LF expected after chunk-data
  kTrailerStart,    // start of a trailer line (or the final CRLF)
  kTrailerName,     // in a trailer field-name
  kTrailerValue,    // in a trailer field-value
  kTrailerLf,       // LF expected after a trailer line
  kFinalLf,         // LF expected after the final CR
  kDone,
  kError,
};

inline uint8_t hexValue(unsigned char c) {
  if (c <= '9') return static_cast<uint8_t>(c - '0');
  return static_cast<uint8_t>((c | 0x20) - 'a' + 10);
}

inline bool isQdtext(unsigned char c) { return detail::kChars.v[c] & detail::kQdtext; }

}  // namespace

void ChunkedDecoder::reset() {
  state_ = kSizeStart;
  flags_ = 0;
  digits_ = 0;
  line_bytes_ = 0;
  chunk_remaining_ = 0;
  body_bytes_ = 0;
}

ChunkedDecoder::Status ChunkedDecoder::feed(const char* in, size_t len, size_t* consumed, DataFn on_data,
                                            void* ctx) {
  if (state_ == kDone) {
    *consumed = 0;
    return Status::Done;
  }
  if (state_ == kError) {
    *consumed = 0;
    return Status::Error;
  }

  size_t i = 0;
  uint8_t state = state_;

  // On error, *consumed is the offset of the offending byte.
  auto fail = [&]() {
    state_ = kError;
    *consumed = i;
    return Status::Error;
  };

  while (i < len) {
    if (state == kData) {
      const size_t avail = len - i;
      const size_t n = chunk_remaining_ < avail ? static_cast<size_t>(chunk_remaining_) : avail;
      if (n) on_data(ctx, in + i, n);
      i += n;
      chunk_remaining_ -= n;
      if (chunk_remaining_ == 0) state = kDataCr;
      continue;
    }

    const unsigned char c = static_cast<unsigned char>(in[i]);

    // The size line (with extensions) and the trailer section are bounded.
    if (state <= kSizeLf) {
      if (++line_bytes_ > kMaxLineBytes) return fail();
    } else if (state >= kTrailerStart && state <= kFinalLf) {
      if (++line_bytes_ > kMaxTrailerBytes) return fail();
    }

    switch (state) {
      case kSizeStart:
        if (!isHex(c)) return fail();
        if (c != '0') {
          digits_ = 1;
          chunk_remaining_ = hexValue(c);
        }
        state = kSize;
        break;

      case kSize:
        if (isHex(c)) {
          if (digits_ || c != '0') {
            // At most 16 significant hex digits: anything longer overflows 64 bits.
            if (++digits_ > 16) return fail();
            chunk_remaining_ = (chunk_remaining_ << 4) | hexValue(c);
          }
        } else if (c == '\r') {
          state = kSizeLf;
        } else if (c == ';') {
          state = kExtNameStart;
        } else if (isOws(c)) {
          state = kSizeBws;
        } else {
          return fail();
        }
        break;

      case kSizeBws:
        if (c == ';') state = kExtNameStart;
        else if (!isOws(c)) return fail();
        break;

      case kExtNameStart:
        if (isTchar(c)) state = kExtName;
        else if (!isOws(c)) return fail();
        break;

      case kExtName:
        if (isTchar(c)) break;
        if (c == '=') state = kExtValueStart;
        else if (c == ';') state = kExtNameStart;
        else if (c == '\r') state = kSizeLf;
        else if (isOws(c)) state = kExtNameBws;
        else return fail();
        break;

      case kExtNameBws:
        if (c == '=') state = kExtValueStart;
        else if (c == ';') state = kExtNameStart;
        else if (!isOws(c)) return fail();
        break;

      case kExtValueStart:
        if (c == '"') state = kExtQuoted;
        else if (isTchar(c)) state = kExtValueToken;
        else if (!isOws(c)) return fail();
        break;

      case kExtValueToken:
        if (isTchar(c)) break;
        if (c == ';') state = kExtNameStart;
        else if (c == '\r') state = kSizeLf;
        else if (isOws(c)) state = kExtValueBws;
        else return fail();
        break;

      case kExtQuoted:
        if (c == '"') state = kExtAfterValue;
        else if (c == '\\') state = kExtQuotedEscape;
        else if (!isQdtext(c)) return fail();
        break;

      case kExtQuotedEscape:
        // quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
        if (!isValueChar(c)) return fail();
        state = kExtQuoted;
        break;

      case kExtAfterValue:
        if (c == ';') state = kExtNameStart;
        else if (c == '\r') state = kSizeLf;
        else if (isOws(c)) state = kExtValueBws;
        else return fail();
        break;

      case kExtValueBws:
        if (c == ';') state = kExtNameStart;
        else if (!isOws(c)) return fail();
        break;

      case kSizeLf:
        if (c != '\n') return fail();
        line_bytes_ = 0;
        if (chunk_remaining_ == 0) {
          state = kTrailerStart;  // last-chunk
        } else {
          if (body_bytes_ + chunk_remaining_ < body_bytes_) return fail();  // total overflows 64 bits
          body_bytes_ += chunk_remaining_;
          state = kData;
        }
        digits_ = 0;
        break;

      case kDataCr:
        if (c != '\r') return fail();
        state = kDataLf;
        break;

      case kDataLf:
        if (c != '\n') return fail();
        state = kSizeStart;
        break;

      case kTrailerStart:
        if (c == '\r') state = kFinalLf;
        else if (isTchar(c)) state = kTrailerName;
        else return fail();  // includes obs-fold (SP/HTAB) and a missing name
        break;

      case kTrailerName:
        if (c == ':') state = kTrailerValue;
        else if (!isTchar(c)) return fail();
        break;

      case kTrailerValue:
        if (c == '\r') state = kTrailerLf;
        else if (!isValueChar(c)) return fail();
        break;

      case kTrailerLf:
        if (c != '\n') return fail();
        state = kTrailerStart;
        break;

      case kFinalLf:
        if (c != '\n') return fail();
        ++i;
        state_ = kDone;
        *consumed = i;
        return Status::Done;

      default:
        return fail();
    }
    ++i;
  }

  state_ = state;
  *consumed = i;
  return Status::NeedMore;
}

uint64_t ChunkedDecoder::pendingChunkBytes() const { return state_ == kData ? chunk_remaining_ : 0; }

}  // namespace feersum
