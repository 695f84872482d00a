// The cold half of the N-API surface (addon_setup.cc): configuration,
// listeners, TLS contexts, stats. Methods are called with `this` = Engine.
#pragma once

#include <napi.h>

namespace feersum::setup {

// Engine methods.
Napi::Value Configure(const Napi::CallbackInfo& info);
Napi::Value ListenTcp(const Napi::CallbackInfo& info);
Napi::Value ListenUnix(const Napi::CallbackInfo& info);
Napi::Value ListenFd(const Napi::CallbackInfo& info);
Napi::Value SetListenerTls(const Napi::CallbackInfo& info);
Napi::Value Unlisten(const Napi::CallbackInfo& info);
Napi::Value Drain(const Napi::CallbackInfo& info);
Napi::Value Shutdown(const Napi::CallbackInfo& info);
Napi::Value Stats(const Napi::CallbackInfo& info);

// Module functions.
Napi::Value BindSocket(const Napi::CallbackInfo& info);
Napi::Value CreateTlsContext(const Napi::CallbackInfo& info);

}  // namespace feersum::setup
