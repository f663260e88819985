# The only place that enables a GPU language. GPTOSS_GPU=CUDA builds for Hopper (sm_90a);
# GPTOSS_GPU=HIP compiles the same .cu files as LANGUAGE HIP (default target gfx90a).
if(GPTOSS_GPU STREQUAL "CUDA")
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
    set(CMAKE_CUDA_ARCHITECTURES 90a)
  endif()
  enable_language(CUDA)
  find_package(CUDAToolkit REQUIRED)
  set(CMAKE_CUDA_STANDARD 17)
  set(CMAKE_CUDA_STANDARD_REQUIRED ON)
  set(GPTOSS_GPU_LINK CUDA::cudart_static)
elseif(GPTOSS_GPU STREQUAL "HIP")
  # Written for Debian 12's hipcc + libamdhip64-dev (ROCm 5.2.3, clang 15), which target gfx90a
  # (MI200) and older, not MI300. Compiled only: nothing HIP has run on AMD hardware.
  if(NOT DEFINED CMAKE_HIP_ARCHITECTURES)
    set(CMAKE_HIP_ARCHITECTURES gfx90a CACHE STRING "AMD GPU targets (gfx90a = MI200)")
  endif()
  # Device code is compiled for one wavefront size (dev::kWavefrontSize): 64 on GCN/CDNA (gfx8,
  # gfx9), 32 on RDNA (gfx10+, wave32 by default). The host checks it against the device.
  set(GPTOSS_WAVEFRONT_SIZE "")
  foreach(_arch IN LISTS CMAKE_HIP_ARCHITECTURES)
    string(REGEX REPLACE ":.*$" "" _arch "${_arch}")  # drop target features (gfx90a:xnack-)
    if(_arch MATCHES "^gfx[89]")
      set(_wave 64)
    elseif(_arch MATCHES "^gfx1[0-9]")
      set(_wave 32)
    else()
      message(FATAL_ERROR "GPTOSS_GPU=HIP: unknown AMD target '${_arch}'")
    endif()
    if(GPTOSS_WAVEFRONT_SIZE AND NOT GPTOSS_WAVEFRONT_SIZE EQUAL _wave)
      message(FATAL_ERROR "GPTOSS_GPU=HIP: CMAKE_HIP_ARCHITECTURES mixes wave32 and wave64 targets")
    endif()
    set(GPTOSS_WAVEFRONT_SIZE ${_wave})
  endforeach()
  # CMake 3.25 wants <rocm root>/lib/cmake/hip-lang; Debian installs the HIP packages under
  # /usr/lib/<multiarch>/cmake. A root of symbolic links in the build tree bridges the two.
  set(_debian_cmake "/usr/lib/${CMAKE_LIBRARY_ARCHITECTURE}/cmake")
  if(NOT DEFINED CMAKE_HIP_COMPILER_ROCM_ROOT AND NOT EXISTS "/usr/lib/cmake/hip-lang"
     AND EXISTS "${_debian_cmake}/hip-lang")
    set(_root "${CMAKE_BINARY_DIR}/rocm-root")
    file(MAKE_DIRECTORY "${_root}/lib/cmake")
    foreach(_pkg hip-lang hip amd_comgr hsa-runtime64)
      if(EXISTS "${_debian_cmake}/${_pkg}" AND NOT EXISTS "${_root}/lib/cmake/${_pkg}")
        file(CREATE_LINK "${_debian_cmake}/${_pkg}" "${_root}/lib/cmake/${_pkg}" SYMBOLIC)
      endif()
    endforeach()
    set(CMAKE_HIP_COMPILER_ROCM_ROOT "${_root}" CACHE PATH "ROCm root for enable_language(HIP)")
    set(amd_comgr_DIR "${_debian_cmake}/amd_comgr" CACHE PATH "")
    list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES amd_comgr_DIR)
    # The clang and device libraries Debian's hipcc uses (hipcc itself is a wrapper CMake cannot
    # drive). Without --rocm-path clang does not find the HIP headers.
    if(NOT CMAKE_HIP_COMPILER AND NOT DEFINED ENV{HIPCXX})
      find_program(GPTOSS_HIP_CLANG NAMES clang++-15 PATHS /usr/lib/llvm-15/bin REQUIRED)
      set(CMAKE_HIP_COMPILER "${GPTOSS_HIP_CLANG}")
    endif()
    set(CMAKE_HIP_FLAGS_INIT "--rocm-path=/usr")
    if(EXISTS "/usr/lib/${CMAKE_LIBRARY_ARCHITECTURE}/amdgcn/bitcode")
      string(APPEND CMAKE_HIP_FLAGS_INIT
             " --hip-device-lib-path=/usr/lib/${CMAKE_LIBRARY_ARCHITECTURE}/amdgcn/bitcode")
    endif()
  endif()
  enable_language(HIP)
  set(CMAKE_HIP_STANDARD 17)  # hipcc's default is C++11
  set(CMAKE_HIP_STANDARD_REQUIRED ON)
  set(CMAKE_HIP_EXTENSIONS OFF)
  set(GPTOSS_GPU_LINK hip-lang::host)
  message(STATUS "gptoss: HIP for ${CMAKE_HIP_ARCHITECTURES} (wavefront ${GPTOSS_WAVEFRONT_SIZE}); "
                 "compile-only: not run on AMD hardware")
elseif(NOT GPTOSS_GPU STREQUAL "OFF")
  message(FATAL_ERROR "GPTOSS_GPU must be CUDA, HIP or OFF (got '${GPTOSS_GPU}')")
endif()

# Applies the backend's compile settings to a target that holds .cu sources.
function(gptoss_setup_gpu_target target)
  if(GPTOSS_GPU STREQUAL "CUDA")
    set_target_properties(${target} PROPERTIES CUDA_SEPARABLE_COMPILATION OFF
                                               CUDA_ARCHITECTURES "${CMAKE_CUDA_ARCHITECTURES}")
    target_compile_options(${target} PRIVATE
      $<$<COMPILE_LANGUAGE:CUDA>:--expt-relaxed-constexpr -lineinfo>)
    target_link_libraries(${target} PUBLIC ${GPTOSS_GPU_LINK})
    target_include_directories(${target} PUBLIC "${PROJECT_SOURCE_DIR}")
  elseif(GPTOSS_GPU STREQUAL "HIP")
    # The .cu sources are CUDA-flavoured C++17 that hipcc's clang takes as HIP.
    get_target_property(_sources ${target} SOURCES)
    list(FILTER _sources INCLUDE REGEX "\\.cu$")
    set_source_files_properties(${_sources} TARGET_DIRECTORY ${target} PROPERTIES LANGUAGE HIP)
    set_target_properties(${target} PROPERTIES HIP_ARCHITECTURES "${CMAKE_HIP_ARCHITECTURES}")
    target_compile_definitions(${target} PRIVATE GPTOSS_WAVEFRONT_SIZE=${GPTOSS_WAVEFRONT_SIZE})
    target_link_libraries(${target} PUBLIC ${GPTOSS_GPU_LINK})
    target_include_directories(${target} PUBLIC "${PROJECT_SOURCE_DIR}")
  endif()
endfunction()
