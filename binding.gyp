{
  "targets": [
    {
      "target_name": "feersum",
      "sources": [
        "native/addon.cc",
        "native/addon_setup.cc",
        "native/engine.cc",
        "native/listener.cc",
        "native/proxy_protocol.cc",
        "native/tls_context.cc",
        "native/tls_session.cc",
        "native/connection.cc",
        "native/connection_requests.cc",
        "native/connection_output.cc",
        "native/response.cc",
        "native/write_queue.cc",
        "native/response_writer.cc",
        "native/loop_context.cc",
        "native/timers.cc",
        "native/http_parser.cc",
        "native/http_scan.cc",
        "native/chunked_decoder.cc",
        "native/request_probe.cc",
        "native/probe_binding.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions", "-O2", "-O1", "-O0"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17", "-std=gnu++20", "-O2", "-O1", "-O0"],
      "cflags": ["-O3", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers", "-fvisibility=hidden"],
      "cflags_cc": ["-std=c++17", "-O3", "-fno-exceptions", "-fno-rtti"],
      "conditions": [
        ["OS=='mac'", {
          "xcode_settings": {
            "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
            "GCC_OPTIMIZATION_LEVEL": "3",
            "WARNING_CFLAGS": ["-Wall", "-Wextra", "-Wno-unused-parameter"]
          }
        }],
        ["sanitize=='true'", {
          "cflags": ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-g"],
          "cflags_cc": ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-g"],
          "ldflags": ["-fsanitize=address,undefined"]
        }]
      ]
    }
  ],
  "variables": {
    "sanitize%": "false"
  }
}
