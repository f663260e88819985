# check_layers.cmake — fails when a source file includes a project header from a folder its layer
# may not use (docs/ARCHITECTURE.md). The link dependencies of the gptoss_* libraries catch calls
# that run back up a layer; this catches header-only uses, which link whatever they include.
# Run as: cmake -DSRC=<source root> -P cmake/check_layers.cmake (ctest: check_layers, label cpu).

cmake_minimum_required(VERSION 3.25)

# folder -> the folders it may include from (besides itself). Folders not listed (tests/, fuzz/)
# sit on top and may include anything.
set(allowed_model "")
set(allowed_device_ops "")
set(allowed_host "model;device_ops")
set(allowed_host/archive "host;model")
set(allowed_host/text "host;model")
set(allowed_host/sampling "host;model")
set(allowed_megakernel "device_ops;model")
set(allowed_host/reference "host;model;megakernel")
set(allowed_prefill "host;device_ops;model;megakernel")
set(allowed_host/runtime "host;model;device_ops;megakernel;prefill;host/sampling")
set(allowed_converter "host;host/archive;model")
# bench/bench_<op>.cu reuse the tests' harness and references (STYLE.md F).
set(allowed_bench "host;host/archive;host/text;host/reference;host/runtime;megakernel;model;device_ops;tests;tests/reference")
set(allowed_host/cli "host;host/archive;host/text;host/sampling;host/reference;host/runtime;converter;bench;megakernel;model;device_ops;host/server")
# host/server/ (gptoss serve) is part of the CLI layer and library: it stands on host/cli/session.
set(allowed_host/server "host;host/text;host/sampling;host/cli;model")
set(layers model device_ops host host/archive host/text host/sampling megakernel prefill host/reference host/runtime
           converter bench host/cli host/server)

set(violations "")
foreach(layer IN LISTS layers)
  file(GLOB files "${SRC}/${layer}/*.h" "${SRC}/${layer}/*.cpp" "${SRC}/${layer}/*.cu"
                  "${SRC}/${layer}/*.cuh" "${SRC}/${layer}/*.inc")
  foreach(f IN LISTS files)
    file(STRINGS "${f}" lines REGEX "^[ \t]*#[ \t]*include[ \t]*\"[^\"]+\"")
    foreach(line IN LISTS lines)
      string(REGEX REPLACE "^[^\"]*\"([^\"]+)\".*$" "\\1" inc "${line}")
      if(NOT EXISTS "${SRC}/${inc}")
        continue()  # a file next to the includer (generated data, ...) or a system header
      endif()
      get_filename_component(dir "${inc}" DIRECTORY)
      if(dir STREQUAL layer OR dir IN_LIST allowed_${layer})
        continue()
      endif()
      file(RELATIVE_PATH rel "${SRC}" "${f}")
      list(APPEND violations "${rel} includes ${inc} (${layer}/ may include: ${allowed_${layer}})")
    endforeach()
  endforeach()
endforeach()
if(violations)
  list(JOIN violations "\n  " text)
  message(FATAL_ERROR "includes that run against the layers (docs/ARCHITECTURE.md):\n  ${text}")
endif()
message(STATUS "check_layers: every include runs down a layer")
