# The only place that enables a GPU language. GPTOSS_GPU=CUDA builds for Hopper (sm_90a);
# HIP (a later issue) will mark the same .cu files as LANGUAGE HIP here.
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
  message(FATAL_ERROR "GPTOSS_GPU=HIP is not implemented yet (see the HIP/ROCm issue); "
                      "use -DGPTOSS_GPU=CUDA or -DGPTOSS_GPU=OFF")
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
  endif()
endfunction()
