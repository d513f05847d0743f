{
  "targets": [
    {
      "target_name": "dmabuf_sync",
      "sources": [
        "native/addon.cc",
        "native/errors.cc",
        "native/dma_buf.cc",
        "native/sync_file.cc",
        "native/fd_wait.cc",
        "native/fd.cc",
        "native/mapping.cc",
        "native/write_guard.cc",
        "native/alloc.cc",
        "native/vgem.cc",
        "native/kms.cc",
        "native/store.cc",
        "native/futex.cc",
        "native/fd_passing.cc",
        "native/v4l2.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Wno-missing-field-initializers", "-Wno-psabi"],
      # libstdc++ linked in, its symbols kept local to the addon: prebuilds then load on board images whose
      # libstdc++ is older than the build machine's; only glibc (and libgcc_s) are needed at run time.
      # The version script exports only Node's two entry points, so no symbol of ours (template instances
      # included) can be interposed by the Node executable's own copy (native/exports.map says why).
      "ldflags": ["-static-libstdc++", "-Wl,--exclude-libs,ALL", "-Wl,--version-script=<(module_root_dir)/native/exports.map"]
    }
  ]
}
