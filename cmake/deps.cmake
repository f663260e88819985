# Third-party dependencies, all from Debian packages (nothing is downloaded at build time).
# On the GPU machine the same packages are unpacked with dpkg -x into a prefix named by
# GPTOSS_DEPS_PREFIX (scripts/gpu_job.sh does this); CMAKE_PREFIX_PATH then points into it.
if(DEFINED GPTOSS_DEPS_PREFIX)
  list(APPEND CMAKE_PREFIX_PATH
       "${GPTOSS_DEPS_PREFIX}/usr"
       "${GPTOSS_DEPS_PREFIX}/usr/lib/x86_64-linux-gnu/cmake"
       "${GPTOSS_DEPS_PREFIX}/usr/share/cmake"
       "${GPTOSS_DEPS_PREFIX}/usr/lib/cmake")
endif()

find_package(fmt REQUIRED)
find_package(CLI11 REQUIRED)
find_package(nlohmann_json 3.10 REQUIRED)
find_package(Catch2 2 REQUIRED)

# xxHash is used header-only (XXH_INLINE_ALL), so no shared library has to travel anywhere.
find_path(XXHASH_INCLUDE_DIR xxhash.h REQUIRED)
# PCRE2 (8-bit, with JIT) for the o200k pre-tokenizer; linked statically for the same reason.
find_path(PCRE2_INCLUDE_DIR pcre2.h REQUIRED)
find_library(PCRE2_LIBRARY NAMES libpcre2-8.a pcre2-8 REQUIRED)

add_library(gptoss_deps INTERFACE)
target_link_libraries(gptoss_deps INTERFACE fmt::fmt-header-only CLI11::CLI11
                      nlohmann_json::nlohmann_json "${PCRE2_LIBRARY}")
target_include_directories(gptoss_deps SYSTEM INTERFACE "${XXHASH_INCLUDE_DIR}" "${PCRE2_INCLUDE_DIR}")
target_compile_definitions(gptoss_deps INTERFACE PCRE2_CODE_UNIT_WIDTH=8 PCRE2_STATIC)
